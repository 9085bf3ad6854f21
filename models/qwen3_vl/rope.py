"""Positions for Qwen3-VL: vision 2D rotary, interpolated learned position embedding, text
interleaved MRoPE, and `get_rope_index` (the 3D positions of a mixed text/image/video sequence).

Functions named `*_np` run on the host with numpy: they depend on `grid_thw` and token ids,
which fix array shapes, so they are computed before jit and passed in as arrays.

Shape conventions: grid_thw (n, 3) in patches; vision tokens are laid out per grid as
t x (h/m) x (w/m) x m x m (spatial-merge-block order, m = spatial_merge_size).
"""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np


def vision_position_ids_np(grid_thw: np.ndarray, merge: int) -> np.ndarray:
    """(N, 2) int32 (row, col) of each patch, block-major over m x m merge blocks."""
    out = []
    for t, h, w in np.asarray(grid_thw).tolist():
        hpos, wpos = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        shape = (h // merge, merge, w // merge, merge)
        hpos = hpos.reshape(shape).transpose(0, 2, 1, 3).reshape(-1)
        wpos = wpos.reshape(shape).transpose(0, 2, 1, 3).reshape(-1)
        out.append(np.tile(np.stack([hpos, wpos], -1), (t, 1)))
    return np.concatenate(out, 0).astype(np.int32)


def pos_embed_interpolation_np(grid_thw: np.ndarray, side: int, merge: int
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear (align_corners=True) taps into the side x side learned table, per patch.

    Returns indices (N, 4) int32 and weights (N, 4) float32; the embedding of a patch is
    sum_k table[indices[:, k]] * weights[:, k].
    """
    rows, cols, heights, widths = [], [], [], []
    for t, h, w in np.asarray(grid_thw).tolist():
        pos = vision_position_ids_np(np.array([[t, h, w]]), merge)
        rows.append(pos[:, 0]), cols.append(pos[:, 1])
        heights.append(np.full(len(pos), h)), widths.append(np.full(len(pos), w))
    row, col = np.concatenate(rows), np.concatenate(cols)
    hs, ws = np.concatenate(heights), np.concatenate(widths)

    def taps(index: np.ndarray, size: np.ndarray):
        index = index.astype(np.float32)
        src = index * np.float32(side - 1) / np.maximum(size - 1, 1).astype(np.float32)
        floor = np.floor(src)
        offsets = np.arange(2)
        tap = np.clip(floor.astype(np.int64)[:, None] + offsets, 0, side - 1)
        weight = np.clip(1 - np.abs(src[:, None] - floor[:, None] - offsets), 0, None)
        return tap, weight.astype(np.float32)

    h_tap, h_w = taps(row, hs)
    w_tap, w_w = taps(col, ws)
    indices = (h_tap[:, :, None] * side + w_tap[:, None, :]).reshape(-1, 4)
    weights = (h_w[:, :, None] * w_w[:, None, :]).reshape(-1, 4)
    return indices.astype(np.int32), weights


def vision_rotary_cos_sin(position_ids: jax.Array, head_dim: int, theta: float
                          ) -> tuple[jax.Array, jax.Array]:
    """2D axial rotary: (N, 2) positions -> cos, sin (N, head_dim), float32, rotate_half layout.

    head_dim/4 frequencies; the angle vector is [h*f, w*f, h*f, w*f].
    """
    spatial = head_dim // 2
    inv_freq = 1.0 / (theta ** (jnp.arange(0, spatial, 2, dtype=jnp.float32) / spatial))
    freqs = position_ids.astype(jnp.float32)[..., None] * inv_freq  # (N, 2, head_dim/4)
    hw = jnp.concatenate([freqs[:, 0], freqs[:, 1]], axis=-1)
    angles = jnp.concatenate([hw, hw], axis=-1)
    return jnp.cos(angles), jnp.sin(angles)


def rotate_half(x: jax.Array) -> jax.Array:
    x1, x2 = jnp.split(x, 2, axis=-1)
    return jnp.concatenate([-x2, x1], axis=-1)


def apply_rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """x (..., L, heads, D) with cos/sin broadcastable as (..., L, 1, D)."""
    return x * cos + rotate_half(x) * sin


def mrope_cos_sin(position_ids: jax.Array, head_dim: int, theta: float,
                  mrope_section: tuple[int, int, int], dtype) -> tuple[jax.Array, jax.Array]:
    """Interleaved MRoPE: position_ids (3, B, L) for T/H/W -> cos, sin (B, L, head_dim).

    Frequency i uses H if i % 3 == 1 and i < 3*s[1], W if i % 3 == 2 and i < 3*s[2], else T.
    """
    half = head_dim // 2
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    freqs = position_ids.astype(jnp.float32)[..., None] * inv_freq  # (3, B, L, half)
    i = np.arange(half)
    axis = np.zeros(half, np.int32)
    axis[(i % 3 == 1) & (i < 3 * mrope_section[1])] = 1
    axis[(i % 3 == 2) & (i < 3 * mrope_section[2])] = 2
    onehot = jnp.asarray(np.eye(3, dtype=np.float32)[axis].T)  # (3, half)
    f = jnp.einsum("sbld,sd->bld", freqs, onehot)
    angles = jnp.concatenate([f, f], axis=-1)
    return jnp.cos(angles).astype(dtype), jnp.sin(angles).astype(dtype)


def split_video_grids_np(video_grid_thw: np.ndarray | None) -> np.ndarray | None:
    """Each temporal group of a video is its own t=1 grid (it has its own timestamp span)."""
    if video_grid_thw is None:
        return None
    g = np.asarray(video_grid_thw, dtype=np.int64).reshape(-1, 3)
    g = np.repeat(g, g[:, 0], axis=0)
    g[:, 0] = 1
    return g


def get_rope_index_np(input_ids: np.ndarray, mm_token_type_ids: np.ndarray,
                      image_grid_thw: np.ndarray | None = None,
                      video_grid_thw: np.ndarray | None = None,
                      attention_mask: np.ndarray | None = None, spatial_merge_size: int = 2
                      ) -> tuple[np.ndarray, np.ndarray]:
    """3D MRoPE positions of a batch, as transformers' `Qwen3VLModel.get_rope_index`.

    input_ids, mm_token_type_ids (B, L) (0 text, 1 image, 2 video); attention_mask (B, L) or
    None. Returns position_ids (3, B, L) int32 (0 at padding) and deltas (B, 1): the offset of
    the next text position (max position + 1 - number of real tokens).
    """
    input_ids = np.asarray(input_ids)
    types_all = np.asarray(mm_token_type_ids)
    B, L = input_ids.shape
    grids = {1: iter(np.asarray(image_grid_thw).reshape(-1, 3)) if image_grid_thw is not None
             else iter(()), 2: iter(split_video_grids_np(video_grid_thw)) if video_grid_thw
             is not None else iter(())}
    position_ids = np.zeros((3, B, L), np.int64)
    deltas = np.zeros((B, 1), np.int64)
    m = spatial_merge_size
    for b in range(B):
        keep = (np.asarray(attention_mask[b]).astype(bool) if attention_mask is not None
                else np.ones(L, bool))
        types = types_all[b][keep]
        pieces, cur, start = [], 0, 0
        for kind, group in itertools.groupby(types.tolist()):
            n = len(list(group))
            if kind == 0:
                pieces.append(np.broadcast_to(np.arange(n) + cur, (3, n)))
                cur += n
            else:
                try:
                    t, h, w = (int(x) for x in next(grids[kind]))
                except StopIteration:
                    name = "image" if kind == 1 else "video"
                    raise ValueError(f"more {name} spans in the tokens than {name} grids given "
                                     f"(sample {b}, token {start})") from None
                gh, gw = h // m, w // m
                if t * gh * gw != n:
                    raise ValueError(f"a vision span of {n} tokens at sample {b} token {start} "
                                     f"does not match its grid {(t, h, w)} ({t * gh * gw} tokens)")
                tt, hh, ww = np.meshgrid(np.arange(t), np.arange(gh), np.arange(gw),
                                         indexing="ij")
                pieces.append(np.stack([tt.ravel() + cur, hh.ravel() + cur, ww.ravel() + cur]))
                cur += max(h, w) // m
            start += n
        pos = np.concatenate(pieces, axis=1) if pieces else np.zeros((3, 0), np.int64)
        position_ids[:, b, keep] = pos
        deltas[b, 0] = (pos.max() + 1 if pos.size else 0) - int(keep.sum())
    return position_ids.astype(np.int32), deltas
