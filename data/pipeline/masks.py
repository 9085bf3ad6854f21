"""Stage 3: masks of the target at 1 fps within its window, stored as COCO RLE.

Backends (each a class that loads what it needs once, per process or Ray actor):
  - `OracleMasks`: the synthetic world's true visible masks (from the record's `truth`). It
    exists to test stages 1, 2 and 4 against known truth; it is named as such in records.
  - `Sam3Masks`, `Sam2Masks` (masks_sam.py): transformers' Sam3VideoModel (text prompt: the
    tag) and Sam2VideoModel (box prompt from stage 2).
  - `Sam2PkgMasks` (masks_sam2pkg.py): Meta's `sam2` package, box-prompted, the optional
    `pip install ".[sam2]"` backend.
Every backend's masks go through the same checks: empty, tiny, or unstable (low IoU between
neighbouring sampled frames) masks are rejected with the reason. RLE is pycocotools'.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from seeker_jax.data.pipeline.stage import Outcome, Rejected
from seeker_jax.env.video import VideoInfo, sample_frame_indices


def encode_rle(mask: np.ndarray) -> str:
    """(H, W) bool -> the COCO compressed RLE counts string (JSON-able)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return rle["counts"].decode("ascii")


def decode_rle(counts: str, size: tuple[int, int] | list[int]) -> np.ndarray:
    """The inverse of encode_rle: (H, W) bool."""
    h, w = int(size[0]), int(size[1])
    return mask_utils.decode({"size": [h, w], "counts": counts.encode("ascii")}).astype(bool)


def window_indices(info: VideoInfo, window: list[float], fps: float = 1.0) -> np.ndarray:
    """Frame indices at `fps` spread over [t0, t1]: the env's frame sampler (one frame sampler
    for the whole project), with a floor of one frame instead of the model's four."""
    return sample_frame_indices(info, float(window[0]), float(window[1]), fps, 1, 1 << 20)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def check_masks(masks: np.ndarray, min_area_frac: float, min_neighbour_iou: float
                ) -> Rejected | None:
    """(T, H, W) bool masks -> why they are unusable, or None.

    empty: no pixel in any frame; tiny: the largest mask is under min_area_frac of the frame;
    unstable: two neighbouring non-empty masks overlap with IoU < min_neighbour_iou.
    """
    areas = masks.reshape(len(masks), -1).sum(axis=1)
    if not areas.any():
        return Rejected("mask_empty", f"no target pixel in {len(masks)} frames")
    frame_px = masks.shape[1] * masks.shape[2]
    if areas.max() < min_area_frac * frame_px:
        return Rejected("mask_tiny", f"largest mask {int(areas.max())} px < "
                        f"{min_area_frac:g} of {frame_px} px")
    shown = [m for m, a in zip(masks, areas) if a]
    for i in range(1, len(shown)):
        value = iou(shown[i - 1], shown[i])
        if value < min_neighbour_iou:
            return Rejected("mask_unstable", f"IoU {value:.3f} between neighbouring masks "
                            f"< {min_neighbour_iou:g}")
    return None


def mask_record(sample: dict[str, Any], backend: str, indices: np.ndarray, fps: float,
                masks: np.ndarray, others: list[list[str]] | None = None) -> dict[str, Any]:
    """The sample plus its masks: frame indices, times, size and one RLE per frame."""
    out = {**sample, "mask_backend": backend, "masks": {
        "frame_indices": [int(i) for i in indices],
        "times": [round(float(i) / fps, 4) for i in indices],
        "size": [int(masks.shape[1]), int(masks.shape[2])],
        "rle": [encode_rle(m) for m in masks]}}
    if others is not None:  # other instances per frame (set_of_mark labels them)
        out["masks"]["others"] = others
    return out


class OracleMasks:
    """The synthetic world's true masks: a test oracle, never a segmenter."""
    name, holds_model = "masks", False

    def __init__(self, fps: float = 1.0, min_area_frac: float = 0.001,
                 min_neighbour_iou: float = 0.0, min_visible_px: int = 20):
        self.fps, self.min_area_frac = fps, min_area_frac
        self.min_neighbour_iou, self.min_visible_px = min_neighbour_iou, min_visible_px

    def __call__(self, sample: dict[str, Any]) -> Outcome:
        from seeker_jax.data.world import World

        truth = sample.get("truth")
        if not truth:
            return Outcome(Rejected("no_truth", "the oracle backend needs a synthetic-world "
                                    "sample (read with the synth reader)"))
        world = World.load(truth["tracks_path"])
        info = VideoInfo(world.num_frames, float(world.fps), world.width, world.height)
        indices = window_indices(info, sample["window"], self.fps)
        k = int(truth["target_track_id"])
        visible = [world.visible_masks(int(f)) for f in indices]
        masks = np.stack([v[k] for v in visible])
        bad = check_masks(masks, self.min_area_frac, self.min_neighbour_iou)
        if bad is not None:
            return Outcome(bad)
        others = [[encode_rle(v[j]) for j in range(len(v))
                   if j != k and v[j].sum() >= self.min_visible_px] for v in visible]
        return Outcome(mask_record(sample, "oracle", indices, info.fps, masks, others))
