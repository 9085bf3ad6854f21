"""Vision inputs of a global batch: per-process bucketing, the combination, and placement.

Why: the train step takes vision grids as DATA (`VisionInputs`, seeker_jax.models.qwen3_vl.
vision_inputs), so it compiles once per bucketed shape, not once per grid mix. A global batch
spans processes, and each process has its own rows and grids. The rule that keeps the global
arrays consistent:

1. every process knows every process's grids (one all-gather, `gather_grids`);
2. all agree on one (block_size S, blocks per process B) from all of them (`agree_blocks`);
3. each process packs its own groups into its own B blocks (`build_vision_inputs`, forced
   sizes), and lays out its own pixel rows into its (B * S, 1536) slots;
4. the global VisionInputs is the per-process ones concatenated over the block axis, with
   offsets (`combine_vision_inputs`): every process computes the same one, and the slot pixels
   are sharded by process over the block axis, so no process ever needs another's pixels.

HF order is kept: global rows are process 0's rows then process 1's (the order of
jax.make_array_from_process_local_data), so process 0's features come first, then process 1's.

B is rounded up to a multiple of the batch devices per process, so the (nproc * B * S) slots
split evenly over every device of the "batch" mesh axes. seeker_jax.aot.fit builds its abstract
vision inputs with the same functions, so what it compiles is what training places.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from seeker_jax.models.qwen3_vl.vision_inputs import (DEFAULT_BUCKETS, VisionBuckets,
                                                      VisionInputs, bucket_size,
                                                      build_vision_inputs, group_sizes_np,
                                                      layout_pixels, pack_groups)

MODALITIES = (("image", "pixel_values", "image_grid_thw"),
              ("video", "pixel_values_videos", "video_grid_thw"))


def _grid(g) -> np.ndarray | None:
    if g is None:
        return None
    g = np.asarray(g, np.int64).reshape(-1, 3)
    return g if len(g) else None


def agree_blocks(grids_by_process: Sequence, merge: int, buckets: VisionBuckets = DEFAULT_BUCKETS,
                 block_multiple: int = 1) -> tuple[int, int] | None:
    """(block_size S, blocks per process B) that hold every process's groups (None: no grids).

    S: the ladder value holding the largest temporal group anywhere; B: the ladder value
    holding the most blocks any process packs into, rounded up to `block_multiple`.
    """
    grids = [g for g in map(_grid, grids_by_process) if g is not None]
    if not grids:
        return None
    unit = merge * merge
    largest = max(int(group_sizes_np(g).max()) for g in grids)
    S = bucket_size(largest, buckets.min_block_size, buckets.steps_per_octave, unit)
    used = max(pack_groups(group_sizes_np(g), S)[2] for g in grids)
    B = bucket_size(used, buckets.min_blocks, buckets.steps_per_octave)
    return S, -(-B // block_multiple) * block_multiple


def empty_vision_inputs(block_size: int, n_blocks: int, merge: int) -> VisionInputs:
    """All padding: a process without grids of a modality another process has."""
    N = block_size * n_blocks
    return VisionInputs(np.zeros(N, np.int32), np.zeros(N, bool),
                        np.full((n_blocks, block_size), -1, np.int32), np.zeros((N, 4), np.int32),
                        np.zeros((N, 4), np.float32), np.zeros((N, 2), np.int32),
                        np.arange(N // (merge * merge), dtype=np.int32), np.asarray(0, np.int32))


def combine_vision_inputs(parts: Sequence[VisionInputs], merge: int) -> VisionInputs:
    """Per-process VisionInputs of one (B, S) shape -> the global one (blocks concatenated).

    patch_index is offset by the patches before it, so layout_pixels(all flat pixels in
    process order, combined) equals the per-process layouts concatenated; segment ids by the
    groups before it; feature_index by the merged units before it, all real features first
    (process order, HF order within each), then all padding.
    """
    shapes = {p.block_shape for p in parts}
    if len(shapes) != 1:
        raise ValueError(f"combine_vision_inputs: the processes' vision inputs have different "
                         f"(n_blocks, block_size) {sorted(shapes)}; build them with the sizes "
                         "agree_blocks gives")
    unit = merge * merge
    N = parts[0].num_slots
    patch_off = segment_off = 0
    patch_index, segments, real, pad = [], [], [], []
    for p, part in enumerate(parts):
        valid = np.asarray(part.valid)
        patch_index.append(np.where(valid, np.asarray(part.patch_index) + patch_off, 0))
        seg = np.asarray(part.segment_ids)
        segments.append(np.where(seg >= 0, seg + segment_off, -1))
        patch_off += int(valid.sum())
        segment_off += int(seg.max(initial=-1)) + 1
        n = int(part.num_features)
        units = np.asarray(part.feature_index) + p * (N // unit)
        real.append(units[:n]), pad.append(units[n:])
    cat = lambda name: np.concatenate([np.asarray(getattr(x, name)) for x in parts])  # noqa: E731
    return VisionInputs(np.concatenate(patch_index).astype(np.int32), cat("valid"),
                        np.concatenate(segments).astype(np.int32), cat("pos_embed_index"),
                        cat("pos_embed_weight"), cat("rotary_pos"),
                        np.concatenate(real + pad).astype(np.int32),
                        np.asarray(sum(int(x.num_features) for x in parts), np.int32))


def global_vision_inputs(grids_by_process: Sequence, *, merge: int, side: int,
                         buckets: VisionBuckets = DEFAULT_BUCKETS, block_multiple: int = 1
                         ) -> tuple[list[VisionInputs], VisionInputs] | None:
    """(each process's VisionInputs, the global one) for one modality; None if no grids."""
    sizes = agree_blocks(grids_by_process, merge, buckets, block_multiple)
    if sizes is None:
        return None
    S, B = sizes
    parts = [empty_vision_inputs(S, B, merge) if g is None else
             build_vision_inputs(g, merge=merge, side=side, block_size=S, n_blocks=B)
             for g in map(_grid, grids_by_process)]
    return parts, combine_vision_inputs(parts, merge)


def slot_pixels(pixels: np.ndarray | None, inputs: VisionInputs, patch_dim: int) -> np.ndarray:
    """A process's flat pixel rows (n_patches, D) in its slot layout (N, D); zeros if none."""
    if pixels is None:
        return np.zeros((inputs.num_slots, patch_dim), np.float32)
    n = int(np.asarray(inputs.valid).sum())
    if pixels.shape[0] != n:
        raise ValueError(f"pixel values have {pixels.shape[0]} rows but the grids have {n} "
                         "patches; pixels and grids of a batch must come from the same rows")
    return layout_pixels(np.asarray(pixels, np.float32), inputs)


def prepare_slots(pixels: np.ndarray, grid_thw, vision_config,
                  buckets: VisionBuckets = DEFAULT_BUCKETS) -> tuple[np.ndarray, VisionInputs]:
    """One process, one modality, on the host: (flat pixels, grid_thw) -> (slot pixels (N, D),
    bucketed VisionInputs), from the model's VisionConfig (no model needed: the sampler's)."""
    inputs = build_vision_inputs(np.asarray(grid_thw, np.int64).reshape(-1, 3),
                                 merge=vision_config.spatial_merge_size,
                                 side=vision_config.num_grid_per_side, buckets=buckets)
    return slot_pixels(np.asarray(pixels), inputs, vision_config.patch_dim), inputs


__all__ = ["MODALITIES", "agree_blocks", "combine_vision_inputs", "empty_vision_inputs",
           "global_vision_inputs", "prepare_slots", "slot_pixels"]
