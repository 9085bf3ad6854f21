"""Vision grids as data: the host turns `grid_thw` into arrays, so the tower compiles per bucket.

Why: a static `grid_thw` makes every distinct (t, h, w) mix a new program, and GRPO batches mix
crops of 4-64 frames at several sizes. Here the host (numpy) computes everything that depends
on the grids - position-embedding taps, rotary positions, which tokens may attend to which,
where each merged feature lands - and the device program only sees arrays whose shapes come
from a small ladder of bucket sizes.

Layout: packed attention blocks. Attention in Qwen3-VL never leaves one temporal patch (a
"group": h*w patches of one image, or of 2 frames of a video). Groups are packed into
`n_blocks` blocks of `block_size` tokens (first-fit, largest first); a block may hold several
small groups, told apart by `segment_ids`, and padding slots (segment -1). Attention runs per
block, (n_blocks, S, S) scores with a segment mask, so its cost and memory stay per group
(about `n_groups * S^2`), never the (N x N) of a flat segment mask: a 64-frame video is 32
blocks, not one 100k-token square. Per-token layers (norms, qkv, MLP) run on the flat
(n_blocks * S, C) view. A fused kernel (splash / cuDNN with segment ids) plugs in at
`vision.block_attention`, whose inputs are already (blocks, S, heads, D) plus segment ids.

Groups sit at offsets that are multiples of m*m (4) and hold multiples of 4 tokens, so every
2x2 merge unit stays contiguous; `feature_index` reads the merged units back in HF's order
(grid by grid, group by group), real features first, padding after. A consumer takes the first
`num_features` rows (the scatter into placeholder tokens does exactly that).

Shapes: S = block_size, B = n_blocks, N = B * S slots, F = N / m^2 merged units.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seeker_jax.models.qwen3_vl.rope import pos_embed_interpolation_np, vision_position_ids_np


@dataclasses.dataclass(frozen=True)
class VisionBuckets:
    """The ladder of padded sizes: 2^k * (1 + j / steps_per_octave), at least the minimum.

    steps_per_octave=2 gives 64, 96, 128, 192, 256, ...: at most 1/3 of a block is padding,
    and a stream of mixed grids hits only a handful of (block_size, n_blocks) shapes.
    """
    min_block_size: int = 64
    min_blocks: int = 1
    steps_per_octave: int = 2

    def __post_init__(self):
        if self.min_block_size < 4 or self.min_block_size % 4:
            raise ValueError(f"VisionBuckets: min_block_size {self.min_block_size} must be a "
                             "positive multiple of 4 (a 2x2 merge unit must fit whole)")
        if self.min_blocks < 1 or self.steps_per_octave < 1:
            raise ValueError("VisionBuckets: min_blocks and steps_per_octave must be >= 1")


# 4 steps per octave (..., 768, 896, 1024, ...): at most 1/5 of a block is padding. With 2 the
# 784-patch group of a 448x448 image pads to 1024, and the padding's attention work shows in
# bench/forward.py; more steps cost more buckets (more compiles).
DEFAULT_BUCKETS = VisionBuckets(steps_per_octave=4)


def bucket_size(n: int, minimum: int, steps_per_octave: int = 2, multiple: int = 1) -> int:
    """Smallest ladder value >= max(n, minimum) that is a multiple of `multiple`."""
    n = max(int(n), int(minimum), 1)
    octave = 1 << max(int(np.floor(np.log2(n))), 0)
    while True:
        for j in range(steps_per_octave):
            size = octave + (octave * j) // steps_per_octave
            if size >= n and size % multiple == 0:
                return size
        octave *= 2


class VisionInputs(NamedTuple):
    """Everything the vision tower needs about the grids of one modality, as arrays (a pytree).

    patch_index (N,) int32: the row of the flat (n_patches, 1536) pixel array at each slot
        (0 at padding, which `valid` masks).
    valid (N,) bool: real slots.
    segment_ids (B, S) int32: the group of each slot (-1 at padding); attention stays inside.
    pos_embed_index (N, 4) int32, pos_embed_weight (N, 4) float32: bilinear taps into the
        learned position table (weight 0 at padding).
    rotary_pos (N, 2) int32: (row, col) of each patch, for the 2D rotary embedding.
    feature_index (F,) int32: merged unit of each output feature, HF order, real first.
    num_features () int32: how many of the F outputs are real.
    """
    patch_index: jax.Array | np.ndarray
    valid: jax.Array | np.ndarray
    segment_ids: jax.Array | np.ndarray
    pos_embed_index: jax.Array | np.ndarray
    pos_embed_weight: jax.Array | np.ndarray
    rotary_pos: jax.Array | np.ndarray
    feature_index: jax.Array | np.ndarray
    num_features: jax.Array | np.ndarray

    @property
    def block_shape(self) -> tuple[int, int]:
        """(n_blocks, block_size): the static shape this input compiles for."""
        return tuple(self.segment_ids.shape)

    @property
    def num_slots(self) -> int:
        return int(self.valid.shape[0])


def group_sizes_np(grid_thw: np.ndarray) -> np.ndarray:
    """Tokens per temporal group, one entry per group, grid order then time order."""
    g = np.asarray(grid_thw, np.int64).reshape(-1, 3)
    return np.repeat(g[:, 1] * g[:, 2], g[:, 0])


def pack_groups(sizes: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """First-fit-decreasing packing: (block of each group, offset in it, blocks used)."""
    order = np.argsort(-sizes, kind="stable")
    block = np.zeros(len(sizes), np.int64)
    offset = np.zeros(len(sizes), np.int64)
    fill: list[int] = []
    for g in order.tolist():
        size = int(sizes[g])
        for b, used in enumerate(fill):
            if used + size <= block_size:
                break
        else:
            b = len(fill)
            fill.append(0)
        block[g], offset[g] = b, fill[b]
        fill[b] += size
    return block, offset, len(fill)


def _check_grid(grid: np.ndarray, merge: int) -> None:
    if grid.size == 0:
        raise ValueError("build_vision_inputs: grid_thw is empty; pass None for no images/videos")
    if (grid <= 0).any():
        raise ValueError(f"build_vision_inputs: grid_thw {grid.tolist()} has a zero or negative "
                         "size; every (t, h, w) must be positive")
    if (grid[:, 1:] % merge).any():
        raise ValueError(f"build_vision_inputs: grid_thw {grid.tolist()} has h or w not divisible "
                         f"by spatial_merge_size {merge}; resize images to multiples of "
                         f"{merge} patches")


def build_vision_inputs(grid_thw, *, merge: int, side: int,
                        buckets: VisionBuckets = DEFAULT_BUCKETS,
                        block_size: int | None = None, n_blocks: int | None = None
                        ) -> VisionInputs:
    """Host-side (numpy): the grids of one modality -> bucketed `VisionInputs`.

    merge: spatial_merge_size; side: the learned table is side x side. `block_size` /
    `n_blocks` force a size (e.g. to give every process the same shape); they must fit.
    """
    grid = np.asarray(grid_thw, np.int64).reshape(-1, 3)
    _check_grid(grid, merge)
    unit = merge * merge
    sizes = group_sizes_np(grid)
    S = block_size or bucket_size(sizes.max(), buckets.min_block_size, buckets.steps_per_octave,
                                  unit)
    if S < sizes.max() or S % unit:
        raise ValueError(f"build_vision_inputs: block_size {S} must be a multiple of {unit} and "
                         f"hold the largest temporal group ({sizes.max()} patches)")
    block, offset, used = pack_groups(sizes, S)
    B = n_blocks or bucket_size(used, buckets.min_blocks, buckets.steps_per_octave)
    if B < used:
        raise ValueError(f"build_vision_inputs: n_blocks {B} is too few; these grids pack into "
                         f"{used} blocks of {S}")
    N, n_patches = B * S, int(sizes.sum())
    group_of_patch = np.repeat(np.arange(len(sizes)), sizes)
    within = np.arange(n_patches) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    slot = block[group_of_patch] * S + offset[group_of_patch] + within   # (n_patches,)

    patch_index = np.zeros(N, np.int32)
    patch_index[slot] = np.arange(n_patches)
    valid = np.zeros(N, bool)
    valid[slot] = True
    segment = np.full(N, -1, np.int32)
    segment[slot] = group_of_patch
    idx, weight = pos_embed_interpolation_np(grid, side, merge)
    pos_index = np.zeros((N, 4), np.int32)
    pos_weight = np.zeros((N, 4), np.float32)
    pos_index[slot], pos_weight[slot] = idx, weight
    rotary = np.zeros((N, 2), np.int32)
    rotary[slot] = vision_position_ids_np(grid, merge)

    real_units = slot[::unit] // unit                                     # HF order
    pad_units = np.setdiff1d(np.arange(N // unit), real_units)
    feature_index = np.concatenate([real_units, pad_units]).astype(np.int32)
    return VisionInputs(patch_index, valid, segment.reshape(B, S), pos_index, pos_weight, rotary,
                        feature_index, np.asarray(n_patches // unit, np.int32))


def layout_pixels(pixel_values, inputs: VisionInputs):
    """Flat (n_patches, D) pixel rows -> the slot layout (N, D), zeros at padding.

    numpy in, numpy out (host, before jit); a jax array is gathered on its device.
    """
    xp = np if isinstance(pixel_values, np.ndarray) else jnp
    rows = xp.take(pixel_values, xp.asarray(inputs.patch_index), axis=0)
    return xp.where(xp.asarray(inputs.valid)[:, None], rows, xp.zeros((), rows.dtype))


def is_concrete(inputs: VisionInputs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in inputs)


__all__ = ["DEFAULT_BUCKETS", "VisionBuckets", "VisionInputs", "bucket_size",
           "build_vision_inputs", "group_sizes_np", "is_concrete", "layout_pixels",
           "pack_groups"]
