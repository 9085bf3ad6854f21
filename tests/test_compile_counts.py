"""Vision grids as data through the callers: the train step, the sampler's vision encoder, and
the multi-process combination of vision inputs.

- A stream of 50 batches of mixed grids (images of five sizes; videos of 4, 16 and 64 frames at
  32x32 and 64x96 px), at one fixed token length, through the jitted train step (place_batch ->
  jit_train_step) and through the sampler's vision encoder (Sampler.add), compiles no more
  programs than there are vision buckets hit (counted by the jit caches and by JAX's own
  backend-compile event), and far fewer than grid mixes.
- Parity on the same stream: each step's loss equals the next-token NLL computed from
  transformers' logits (lr 0, so the parameters stay the reference's); each segment's sampler
  features equal transformers' vision features, in token order. Tolerance 1e-4 (fp32).
- The multi-process combination: two processes with different grids (one without videos)
  combine into global VisionInputs whose layout and tower outputs equal transformers' vision
  on all grids concatenated in process order (HF order).
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx

from hf_reference import hf_logits, make_inputs, segment
from seeker_jax.data.batch import from_arrays
from seeker_jax.generation.decoding import encode_visual
from seeker_jax.models.qwen3_vl import from_pretrained
from seeker_jax.models.qwen3_vl.vision_inputs import (VisionBuckets, build_vision_inputs,
                                                      layout_pixels)
from seeker_jax.generation.sampler import Sampler
from seeker_jax.training.train_state import create_train_state, jit_train_step, place_batch
from seeker_jax.training.vision_batch import global_vision_inputs, slot_pixels
from vision_stream import CompileCounter, hf_vision, mixed_stream, patches

TOL = 1e-4
N_BATCHES = 50


@pytest.fixture(scope="module")
def pair(tiny_hf):
    return tiny_hf.torch_model, from_pretrained(tiny_hf.path)


def _parts(images, videos):
    """Row 0: images between text; row 1: videos (timestamped groups) between text."""
    rows = [[("text", 3)], [("text", 4)]]
    for g in ([] if images is None else images.tolist()):
        rows[0] += [("image", tuple(g[1:])), ("text", 2)]
    for g in ([] if videos is None else videos.tolist()):
        rows[1] += [("video", tuple(g)), ("text", 2)]
    return [r + [("text", 8)] for r in rows]


def _padded(inputs, L: int) -> dict:
    """Token arrays right-padded to L (only vision shapes vary), learning the last 8 tokens."""
    extra = L - inputs.input_ids.shape[1]
    arrays = {k: np.pad(getattr(inputs, k), ((0, 0), (0, extra))).astype(np.int32)
              for k in ("input_ids", "attention_mask", "mm_token_type_ids")}
    n = inputs.attention_mask.sum(1)
    loss = np.zeros_like(arrays["input_ids"])
    for b, length in enumerate(n):
        loss[b, length - 8:length] = 1
    return {**arrays, "loss_mask": loss, "pixel_values": inputs.pixel_values,
            "image_grid_thw": inputs.image_grid_thw,
            "pixel_values_videos": inputs.pixel_values_videos,
            "video_grid_thw": inputs.video_grid_thw}


def _hf_loss(hf, inputs, arrays) -> float:
    """Mean NLL of the learned tokens from transformers' logits (position t predicts t + 1)."""
    logits = torch.from_numpy(hf_logits(hf, inputs))
    logp = torch.log_softmax(logits[:, :-1].double(), -1)
    L = inputs.input_ids.shape[1]
    target = torch.from_numpy(arrays["input_ids"][:, 1:L].astype(np.int64))
    picked = logp.gather(-1, target[..., None])[..., 0].numpy()
    learned = (arrays["loss_mask"][:, 1:L] * arrays["attention_mask"][:, 1:L]) > 0
    return float(-picked[learned].mean())


def _signature(batch, merge: int, side: int, buckets: VisionBuckets):
    return tuple(None if g is None else
                 build_vision_inputs(g, merge=merge, side=side, buckets=buckets).block_shape
                 for g in (batch["image_grid_thw"], batch["video_grid_thw"]))


# A coarser ladder than the default (which gives 18 (image, video) bucket pairs on this stream,
# 18 compiles of the step: ~10 min on a loaded 2-core machine, all checks passing).
TRAIN_BUCKETS = VisionBuckets(min_block_size=64, min_blocks=4, steps_per_octave=1)


@pytest.mark.slow  # 7 compiles of the (tiny) train step: minutes on a loaded 2-core machine
def test_train_step_stream_compiles_once_per_bucket(pair):
    hf, model = pair
    vcfg = model.config.vision
    stream = [make_inputs(_parts(im, vid), seed=i)
              for i, (im, vid) in enumerate(mixed_stream(N_BATCHES, seed=5))]
    L = max(x.input_ids.shape[1] for x in stream)
    tx = optax.sgd(0.0)  # parameters stay the reference's: every loss is checked against it
    state = create_train_state(model, tx, None, freeze_vision=True)
    step = jit_train_step(tx, None, None)
    signatures, mixes, worst = set(), set(), 0.0
    with CompileCounter() as compiles:
        for i, inputs in enumerate(stream):
            arrays = _padded(inputs, L)
            signatures.add(_signature(arrays, vcfg.spatial_merge_size, vcfg.num_grid_per_side,
                                      TRAIN_BUCKETS))
            mixes.add((str(arrays["image_grid_thw"]), str(arrays["video_grid_thw"])))
            placed, vision = place_batch(from_arrays(arrays), model, None,
                                         buckets=TRAIN_BUCKETS)
            state.trainable, state.opt_state, metrics = step(
                state.graphdef, state.trainable, state.frozen, state.rest, state.opt_state,
                placed, vision)
            if i % 5 == 0:
                worst = max(worst, abs(float(metrics["loss"]) - _hf_loss(hf, inputs, arrays)))
    print(f"\n{N_BATCHES} batches ({len(mixes)} grid mixes) through the train step: "
          f"{len(signatures)} vision buckets, {step._cache_size()} step programs, "
          f"{compiles.count} backend compiles, max |loss - transformers| {worst:.2e}")
    assert step._cache_size() <= len(signatures)
    assert compiles.count <= len(signatures)  # nothing else compiles per batch either
    assert len(signatures) < len(mixes) // 3  # the buckets really merge grid mixes
    assert worst <= TOL


# Slow (~20 s): test_vision_buckets checks compile-once-per-bucket in the default suite.
@pytest.mark.slow
def test_sampler_vision_encoder_compiles_once_per_bucket(pair):
    hf, model = pair
    vcfg = model.config.vision
    sampler = Sampler(model, batch_size=1, max_len=2048)
    before = encode_visual._cache_size()  # process-wide cache: other tests may have filled it
    shapes, mixes, worst = set(), set(), 0.0
    for i, (images, videos) in enumerate(mixed_stream(N_BATCHES, seed=6)):
        parts = [p for row in _parts(images, videos) for p in row]
        seg = segment(parts, seed=i)
        for g in (seg.image_grid_thw, seg.video_grid_thw):
            if g is not None:
                shapes.add(build_vision_inputs(g, merge=vcfg.spatial_merge_size,
                                               side=vcfg.num_grid_per_side).block_shape)
        mixes.add((str(seg.image_grid_thw), str(seg.video_grid_thw)))
        sampler.reset_row(0)
        sampler.add(0, seg)
        if i % 5 == 0:  # features in token order against transformers' vision tower
            feats = np.asarray(sampler.rows[0].pending_visual[0][0])
            types = seg.mm_token_type_ids[seg.mm_token_type_ids != 0]
            expected = np.zeros_like(feats)
            for kind, px, g in ((1, seg.pixel_values, seg.image_grid_thw),
                                (2, seg.pixel_values_videos, seg.video_grid_thw)):
                if px is not None:
                    expected[types == kind] = hf_vision(hf, px, g)[0]
            worst = max(worst, float(np.abs(feats - expected).max()))
    compiled = encode_visual._cache_size() - before
    print(f"\n{N_BATCHES} segments ({len(mixes)} grid mixes) through the sampler's vision "
          f"encoder: {len(shapes)} vision buckets, {compiled} new programs (sampler counted "
          f"{sampler.compilations['vision']}), max |features - transformers| {worst:.2e}")
    assert compiled <= len(shapes) and sampler.compilations["vision"] <= len(shapes)
    assert len(shapes) < len(mixes) // 3
    assert worst <= TOL


def test_two_processes_different_grids_combine_to_hf_order(pair):
    """Process 0: two images and a 16-frame video; process 1: three images, no video (its video
    inputs are all padding). The combined inputs lay out all pixels in process order and the
    tower on them gives transformers' features of all grids concatenated."""
    hf, model = pair
    vcfg = model.config.vision
    kw = dict(merge=vcfg.spatial_merge_size, side=vcfg.num_grid_per_side)
    grids = {"image": [np.array([[1, 4, 6], [1, 2, 2]]), np.array([[1, 8, 8], [1, 6, 8],
                                                                   [1, 4, 4]])],
             "video": [np.array([[8, 4, 6]]), None]}
    tower = nnx.jit(lambda m, p, v: m.model.visual(p, inputs=v))
    for name, per_process in grids.items():
        parts, combined = global_vision_inputs(per_process, **kw)
        assert len({p.block_shape for p in parts}) == 1
        assert combined.block_shape == (2 * parts[0].block_shape[0], parts[0].block_shape[1])
        pixels = [None if g is None else patches(g, seed=7 + p) for p, g in enumerate(per_process)]
        # each process lays out only its own pixels; concatenated, that is the global layout
        local = np.concatenate([slot_pixels(x, part, vcfg.patch_dim)
                                for x, part in zip(pixels, parts)])
        flat = np.concatenate([x for x in pixels if x is not None])
        np.testing.assert_array_equal(local, layout_pixels(flat, combined))
        grid = np.concatenate([g for g in per_process if g is not None])
        assert int(combined.num_features) == int(grid.prod(-1).sum()) // 4
        out = tower(model, jnp.asarray(local), jax.device_put(combined))
        n = int(combined.num_features)
        ref, ref_deep = hf_vision(hf, flat, grid)
        errs = [np.abs(np.asarray(out.embeds)[:n] - ref).max()]
        errs += [np.abs(np.asarray(o)[:n] - r).max() for o, r in zip(out.deepstack, ref_deep)]
        print(f"\n{name}: combined over 2 processes vs transformers: max |diff| {max(errs):.2e}")
        assert max(errs) <= TOL
    assert global_vision_inputs([None, None], **kw) is None
