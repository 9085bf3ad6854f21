"""Layer-by-layer parity with the matching transformers modules (float32, max |diff| <= 1e-4;
seen: <= 2e-5 on outputs of magnitude ~10).

Each test feeds the same input to one torch module of a tiny random reference and to the
Flax module loaded from the same weights.
"""
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import vision_utils

from hf_reference import IMAGE, VIDEO, make_inputs
from seeker_jax.models.qwen3_vl import from_pretrained
from seeker_jax.models.qwen3_vl.rope import (get_rope_index_np, mrope_cos_sin,
                                             vision_position_ids_np, vision_rotary_cos_sin)
from seeker_jax.models.qwen3_vl.vision_inputs import layout_pixels

TOL = 1e-4
GRID = np.array([[1, 4, 6], [2, 6, 4]])  # an image and a 2-group video, non-square


@pytest.fixture(scope="module")
def pair(tiny_hf):
    return tiny_hf.torch_model, from_pretrained(tiny_hf.path)


def close(ours, ref, tol=TOL):
    ref = ref.detach().float().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    err = np.abs(np.asarray(ours, np.float32) - ref).max()
    assert np.asarray(ours).shape == ref.shape
    assert err <= tol, f"max |diff| {err:.2e} > {tol}"
    return err


def patches(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 1536)).astype(np.float32)


def test_patch_embed(pair):
    hf, m = pair
    x = patches(int(GRID.prod(-1).sum()))
    with torch.no_grad():
        ref = hf.model.visual.patch_embed(torch.from_numpy(x))
    close(m.model.visual.patch_embed(jnp.asarray(x)), ref)


def test_position_embedding_interpolation(pair):
    """Against F.interpolate(bilinear, align_corners=True) of the learned grid itself."""
    hf, m = pair
    table = hf.model.visual.pos_embed.weight.detach()
    side = int(table.shape[0] ** 0.5)
    grid_img = table.T.reshape(1, -1, side, side)
    refs = []
    for t, h, w in GRID.tolist():
        up = F.interpolate(grid_img, size=(h, w), mode="bilinear", align_corners=True)[0]
        pos = vision_position_ids_np(np.array([[t, h, w]]), 2)  # merge-block order
        refs.append(up[:, pos[:, 0], pos[:, 1]].T)
    close(m.model.visual.position_embedding(GRID), torch.cat(refs))


def test_vision_rotary(pair):
    hf, m = pair
    x = torch.zeros(int(GRID.prod(-1).sum()), 32)
    pos = vision_utils.get_vision_position_ids(torch.from_numpy(GRID), 2)
    cos, sin = hf.model.visual.rotary_pos_emb(x, pos)
    ours_cos, ours_sin = m.model.visual.rotary(GRID)
    close(ours_cos, cos), close(ours_sin, sin)


def in_patch_order(vi):
    """The slots of the packed layout that hold patches 0, 1, 2, ... of the flat order."""
    real = np.flatnonzero(vi.valid)
    return real[np.argsort(vi.patch_index[real])]


def test_vision_block_attends_within_temporal_groups(pair):
    """One block on the packed layout (two groups share a block, padding present) vs HF's
    block with cu_seqlens on the flat patches."""
    hf, m = pair
    n = int(GRID.prod(-1).sum())
    x = np.random.default_rng(1).standard_normal((n, 32)).astype(np.float32)
    tg = torch.from_numpy(GRID)
    cos, sin = hf.model.visual.rotary_pos_emb(torch.from_numpy(x),
                                              vision_utils.get_vision_position_ids(tg, 2))
    cu, _ = vision_utils.get_vision_attention_seqlens(tg, hf.config.vision_config)
    with torch.no_grad():
        ref = hf.model.visual.blocks[1](torch.from_numpy(x), cu_seqlens=cu,
                                        position_embeddings=(cos, sin))
    vi = m.model.visual.vision_inputs(GRID)
    B, S = vi.block_shape
    assert (B, S) == (2, 64) and not vi.valid.all()  # 3 groups of 24: 2 + 1, padding
    ours_cos, ours_sin = vision_rotary_cos_sin(jnp.asarray(vi.rotary_pos), 16, 10000.0)
    out = m.model.visual.blocks[1](jnp.asarray(layout_pixels(x, vi)).reshape(B, S, 32),
                                   ours_cos.reshape(B, S, 16), ours_sin.reshape(B, S, 16),
                                   jnp.asarray(vi.segment_ids))
    close(np.asarray(out).reshape(B * S, 32)[in_patch_order(vi)], ref)


@pytest.mark.parametrize("which", ["merger", "deepstack_merger"])
def test_mergers(pair, which):
    hf, m = pair
    x = np.random.default_rng(2).standard_normal((48, 32)).astype(np.float32)
    if which == "merger":
        torch_mod, ours = hf.model.visual.merger, m.model.visual.merger
    else:
        torch_mod, ours = (hf.model.visual.deepstack_merger_list[1],
                           m.model.visual.deepstack_merger_list[1])
    with torch.no_grad():
        ref = torch_mod(torch.from_numpy(x))
    close(ours(jnp.asarray(x)), ref)


@pytest.mark.parametrize("padding", ["left", "right"])
def test_rope_index(pair, padding):
    hf, _ = pair
    inputs = make_inputs([[("text", 3), ("image", (4, 6)), ("text", 2), ("video", (3, 4, 4)),
                           ("text", 4)],
                          [("text", 5), ("video", (2, 6, 4))]], seed=3, padding=padding)
    ref_pos, ref_delta = hf.model.get_rope_index(
        torch.from_numpy(inputs.input_ids), torch.from_numpy(inputs.mm_token_type_ids),
        torch.from_numpy(inputs.image_grid_thw), torch.from_numpy(inputs.video_grid_thw),
        attention_mask=torch.from_numpy(inputs.attention_mask))
    pos, delta = get_rope_index_np(inputs.input_ids, inputs.mm_token_type_ids,
                                   inputs.image_grid_thw, inputs.video_grid_thw,
                                   inputs.attention_mask)
    np.testing.assert_array_equal(pos, ref_pos.numpy())
    np.testing.assert_array_equal(delta, ref_delta.numpy())


def test_rope_index_hand_worked():
    """text(2), one image of 2x2 merged tokens, text(1): positions by hand."""
    ids = np.array([[5, 6, IMAGE, IMAGE, IMAGE, IMAGE, 7]])
    types = (ids == IMAGE).astype(np.int64) + 2 * (ids == VIDEO)
    pos, delta = get_rope_index_np(ids, types, np.array([[1, 4, 4]]))
    np.testing.assert_array_equal(pos[:, 0], [[0, 1, 2, 2, 2, 2, 4],   # T
                                              [0, 1, 2, 2, 3, 3, 4],   # H = cur + row
                                              [0, 1, 2, 3, 2, 3, 4]])  # W = cur + col
    assert delta[0, 0] == 5 - 7


def test_text_mrope(pair):
    hf, _ = pair
    pos = np.random.default_rng(4).integers(0, 50, (3, 2, 9))
    x = torch.zeros(2, 9, 64)
    cos, sin = hf.model.language_model.rotary_emb(x, torch.from_numpy(pos))
    ours_cos, ours_sin = mrope_cos_sin(jnp.asarray(pos), 16, 10000.0, (2, 3, 3), jnp.float32)
    close(ours_cos, cos), close(ours_sin, sin)


def test_text_decoder_layer_with_padding_mask(pair):
    hf, m = pair
    rng = np.random.default_rng(5)
    B, L = 2, 11
    x = rng.standard_normal((B, L, 64)).astype(np.float32)
    pos = np.broadcast_to(np.arange(L), (3, B, L)).copy()
    pad = np.ones((B, L), bool)
    pad[1, :3] = False  # left padding on the second sequence
    mask = np.tril(np.ones((L, L), bool))[None] & pad[:, None, :]
    cos, sin = hf.model.language_model.rotary_emb(torch.from_numpy(x), torch.from_numpy(pos))
    add_mask = torch.where(torch.from_numpy(mask)[:, None], 0.0, torch.finfo(torch.float32).min)
    with torch.no_grad():
        ref = hf.model.language_model.layers[2](torch.from_numpy(x), position_embeddings=(cos, sin),
                                                attention_mask=add_mask)
    ours_cos, ours_sin = mrope_cos_sin(jnp.asarray(pos), 16, 10000.0, (2, 3, 3), jnp.float32)
    ours, _ = m.model.language_model.layers[2](jnp.asarray(x), ours_cos, ours_sin,
                                               jnp.asarray(mask))
    close(np.asarray(ours)[pad], ref.numpy()[pad])


def test_vision_tower_with_deepstack(pair):
    hf, m = pair
    x = patches(int(GRID.prod(-1).sum()), seed=8)
    with torch.no_grad():
        ref = hf.model.visual(torch.from_numpy(x), grid_thw=torch.from_numpy(GRID))
    out = m.model.visual(jnp.asarray(x), GRID)
    close(out.embeds, ref.pooler_output)
    assert len(out.deepstack) == len(ref.deepstack_features) == 2
    for ours, theirs in zip(out.deepstack, ref.deepstack_features):
        close(ours, theirs)


def test_same_size_grids_share_packed_attention_blocks(pair):
    """Groups of many grids pack into a few attention blocks; the result is unchanged.

    Hand-worked: 8 groups of 16 patches and one of 24 into blocks of 64, largest first:
    [24,16,16], [16,16,16,16], [16,16] -> 3 blocks.
    """
    grid = np.array([[2, 4, 4], [1, 4, 4], [3, 4, 4], [1, 6, 4], [2, 4, 4]])
    hf, m = pair
    vi = m.model.visual.vision_inputs(grid)
    assert vi.block_shape == (3, 64)
    assert [sorted(set(row[row >= 0].tolist())) for row in vi.segment_ids] == \
        [[0, 1, 6], [2, 3, 4, 5], [7, 8]]
    x = patches(int(grid.prod(-1).sum()), seed=9)
    with torch.no_grad():
        ref = hf.model.visual(torch.from_numpy(x), grid_thw=torch.from_numpy(grid))
    close(m.model.visual(jnp.asarray(x), grid).embeds, ref.pooler_output)
