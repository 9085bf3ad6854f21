"""Vision grids as data: bucketed shapes, compile counts, and parity with padding present.

- A stream of 60 batches of mixed grids (images of five sizes; videos of 4, 16 and 64 frames at
  32x32 and 64x96 px) compiles no more programs than there are (bucketed) shapes, through the
  jitted vision tower and through `forward`. Compiles are counted by JAX's own backend-compile
  event, not inferred.
- The padded / packed path matches transformers (fp32, max |diff| <= 1e-4; seen ~1e-6): the
  vision model's features and DeepStack features, and the whole model's logits.
- Padding invariance: the same grids under different bucket sizes give the same features
  (max |diff| <= 1e-5; seen ~1e-7, float reassociation only).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hf_reference import hf_logits, make_inputs
from seeker_jax.models.qwen3_vl import forward, from_pretrained
from seeker_jax.models.qwen3_vl.modeling import prepare_vision
from seeker_jax.models.qwen3_vl.vision_inputs import (VisionBuckets, bucket_size,
                                                      build_vision_inputs)
from vision_stream import CompileCounter, hf_vision, mixed_stream, patches

TOL = 1e-4


@pytest.fixture(scope="module")
def pair(tiny_hf):
    return tiny_hf.torch_model, from_pretrained(tiny_hf.path)


def test_bucket_ladder_hand_worked():
    assert [bucket_size(n, 64, 2, 4) for n in (1, 64, 65, 97, 130, 200, 3600)] == \
        [64, 64, 96, 128, 192, 256, 4096]
    assert [bucket_size(n, 1, 2) for n in range(1, 10)] == [1, 2, 3, 4, 6, 6, 8, 8, 12]


def test_vision_inputs_layout_hand_worked():
    """An image of 2x4 patches and a 2-group video of 2x2, in blocks of 8 (no ladder)."""
    grid = np.array([[1, 2, 4], [2, 2, 2]])
    vi = build_vision_inputs(grid, merge=2, side=4, block_size=8, n_blocks=3)
    # groups: image (8 patches) -> block 0; video groups (4 each) -> block 1 at 0 and 4
    np.testing.assert_array_equal(vi.segment_ids, [[0] * 8, [1] * 4 + [2] * 4, [-1] * 8])
    np.testing.assert_array_equal(vi.patch_index[:16], np.arange(16))
    assert vi.valid.sum() == 16 and not vi.valid[16:].any()
    np.testing.assert_array_equal(vi.feature_index, [0, 1, 2, 3, 4, 5])
    assert int(vi.num_features) == 4
    assert (vi.pos_embed_weight[16:] == 0).all()
    np.testing.assert_allclose(vi.pos_embed_weight[:16].sum(-1), 1, atol=1e-6)


def test_bad_grids_are_clear_errors():
    with pytest.raises(ValueError, match="not divisible by spatial_merge_size"):
        build_vision_inputs(np.array([[1, 3, 4]]), merge=2, side=4)
    with pytest.raises(ValueError, match="n_blocks 1 is too few"):
        build_vision_inputs(np.array([[4, 4, 4]]), merge=2, side=4, block_size=16, n_blocks=1)
    with pytest.raises(ValueError, match="hold the largest temporal group"):
        build_vision_inputs(np.array([[1, 8, 8]]), merge=2, side=4, block_size=32)


def test_packed_vision_matches_transformers_with_padding(pair):
    """Images and videos of several sizes in one call, with padded slots and padded blocks."""
    hf, m = pair
    grid = np.array([[1, 4, 6], [8, 2, 2], [1, 8, 8], [2, 4, 6], [1, 2, 2]])
    x = patches(grid, seed=1)
    px, vi = prepare_vision(m, x, grid, VisionBuckets(min_block_size=64, min_blocks=8))
    assert vi.block_shape == (8, 64) and not vi.valid.all()
    out = nnx.jit(lambda model, p, v: model.model.visual(p, inputs=v))(m, jnp.asarray(px), vi)
    n = int(vi.num_features)
    ref, ref_deep = hf_vision(hf, x, grid)
    errs = [np.abs(np.asarray(out.embeds)[:n] - ref).max()]
    errs += [np.abs(np.asarray(o)[:n] - r).max() for o, r in zip(out.deepstack, ref_deep)]
    print(f"\npacked vision vs transformers: max |diff| {max(errs):.2e}")
    assert max(errs) <= TOL
    assert np.isfinite(np.asarray(out.embeds)).all()  # padded rows too


def test_padding_invariance(pair):
    """Same grids, three bucket settings (incl. one block per group): same real features."""
    _, m = pair
    grid = np.array([[2, 4, 6], [1, 6, 8], [4, 2, 2]])
    x = patches(grid, seed=2)
    outs = []
    for kw in (dict(buckets=VisionBuckets()), dict(buckets=VisionBuckets(128, 4, 1)),
               dict(block_size=48, n_blocks=7)):
        px, vi = prepare_vision(m, x, grid, **kw)
        out = m.model.visual(jnp.asarray(px), inputs=vi)
        n = int(vi.num_features)
        outs.append((vi.block_shape, [np.asarray(a)[:n] for a in (out.embeds, *out.deepstack)]))
    assert len({shape for shape, _ in outs}) == 3
    for _, arrays in outs[1:]:
        for a, b in zip(arrays, outs[0][1]):
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_vision_tower_stream_compiles_once_per_bucket(pair):
    """60 mixed batches through the jitted tower: compiles <= distinct (bucketed) shapes."""
    hf, m = pair
    tower = nnx.jit(lambda model, p, v: model.model.visual(p, inputs=v))
    stream = mixed_stream(60, seed=3)
    shapes, grids, worst = set(), set(), 0.0
    with CompileCounter() as compiles:
        for i, (images, videos) in enumerate(stream):
            grid = images if images is not None else videos
            x = patches(grid, seed=i)
            px, vi = prepare_vision(m, x, grid)
            px, vi = jax.device_put((px, vi))  # jnp.asarray would compile a copy per shape
            shapes.add(vi.block_shape)
            grids.add(tuple(map(tuple, grid.tolist())))
            out = tower(m, px, vi)
            if i % 6 == 0:  # parity on a sample of the stream
                ref, _ = hf_vision(hf, x, grid)
                worst = max(worst, float(np.abs(np.asarray(out.embeds)[:len(ref)] - ref).max()))
    print(f"\n{len(stream)} batches, {len(grids)} distinct grid mixes, {len(shapes)} bucketed "
          f"shapes {sorted(shapes)}, {compiles.count} compiles, max |diff| {worst:.2e}")
    assert compiles.count <= len(shapes)
    assert len(shapes) < len(grids) // 3      # the buckets really do merge grid mixes
    assert worst <= TOL


def pad_to(inputs, L: int):
    """Right-pads a batch's token arrays to L so that only vision shapes vary."""
    extra = L - inputs.input_ids.shape[1]
    assert extra >= 0
    for name in ("input_ids", "attention_mask", "mm_token_type_ids"):
        setattr(inputs, name, np.pad(getattr(inputs, name), ((0, 0), (0, extra))))
    return inputs


@pytest.mark.slow  # ~20 compiles of the whole (tiny) model: ~2 min on a loaded 2-core machine
def test_forward_stream_compiles_once_per_bucket(pair):
    """60 mixed batches through `forward` at a fixed token length: compiles <= buckets hit,
    and the logits match transformers on a sample of the stream."""
    hf, m = pair
    batches = []
    for i, (images, videos) in enumerate(mixed_stream(60, seed=4)):
        parts = [("text", 3)]
        for g in ([] if images is None else images.tolist()):
            parts += [("image", tuple(g[1:])), ("text", 2)]
        for g in ([] if videos is None else videos.tolist()):
            parts += [("video", tuple(g)), ("text", 2)]
        batches.append(make_inputs([parts], seed=i))
    L = max(b.input_ids.shape[1] for b in batches)
    signatures, worst = set(), 0.0
    mixes = {(str(b.image_grid_thw), str(b.video_grid_thw)) for b in batches}
    with CompileCounter() as compiles:
        for i, inputs in enumerate(batches):
            inputs = pad_to(inputs, L)
            sig = tuple(None if g is None else
                        build_vision_inputs(g, merge=2, side=8).block_shape
                        for g in (inputs.image_grid_thw, inputs.video_grid_thw))
            signatures.add(sig)
            logits = np.asarray(forward(m, **inputs.arrays()).logits)
            if i % 10 == 0:
                real = inputs.attention_mask.astype(bool)
                worst = max(worst, float(np.abs(logits - hf_logits(hf, inputs))[real].max()))
    print(f"\n{len(batches)} batches ({len(mixes)} grid mixes) through forward: "
          f"{len(signatures)} bucket signatures, "
          f"{compiles.count} compiles, max |logits diff| {worst:.2e}")
    assert compiles.count <= len(signatures)
    assert len(signatures) < len(mixes)       # buckets merge grid mixes
    assert worst <= TOL


def test_model_takes_vision_inputs_eagerly_and_checks_counts(pair):
    """The model called with image_inputs / video_inputs (no grids) equals transformers, and a
    token / feature mismatch is still caught on the host."""
    hf, m = pair
    inputs = make_inputs([[("text", 3), ("image", (4, 6)), ("text", 2), ("video", (3, 2, 4)),
                           ("text", 4)]], seed=5)
    px, vi = prepare_vision(m, inputs.pixel_values, inputs.image_grid_thw)
    pxv, viv = prepare_vision(m, inputs.pixel_values_videos, inputs.video_grid_thw)
    pos, _ = m.get_rope_index(inputs.input_ids, inputs.mm_token_type_ids, inputs.image_grid_thw,
                              inputs.video_grid_thw)
    logits = m(inputs.input_ids, position_ids=pos, pixel_values=px, pixel_values_videos=pxv,
               image_inputs=vi, video_inputs=viv).logits
    err = np.abs(np.asarray(logits) - hf_logits(hf, inputs)).max()
    assert err <= TOL, err
    with pytest.raises(ValueError, match="video features and video tokens do not match"):
        m(inputs.input_ids[:, :-6], position_ids=pos[:, :, :-6], pixel_values=px,
          pixel_values_videos=pxv, image_inputs=vi, video_inputs=viv)
