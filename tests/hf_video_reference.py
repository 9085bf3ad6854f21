"""transformers' own Qwen3-VL video processor, loaded from a side directory, as a test reference.

Why a side directory: the torchvision wheel that matches the CPU torch (0.28.0) ships a CUDA
build of its C++ ops, so a plain `import torchvision` fails ("operator torchvision::nms does not
exist"), and with it importable on the normal path `transformers.image_utils` fails to import
too. So it is installed away from site-packages:

    pip install --no-deps --target .venv/torchvision-ref torchvision==0.28.0

and put on sys.path here, after declaring the two op schemas its meta registrations expect. The
video processor uses only `transforms.v2.functional` (torch kernels), none of those ops.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

REF_DIR = Path(os.environ.get("SEEKER_TORCHVISION_REF",
                              Path(__file__).resolve().parents[1] / ".venv" / "torchvision-ref"))
INSTALL = f"pip install --no-deps --target {REF_DIR} torchvision==0.28.0"
_LIB = None  # the torch.library.Library must outlive the import (it owns the schemas)


def _import_torchvision():
    global _LIB
    import torch

    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    if not (REF_DIR / "torchvision").is_dir():
        pytest.skip(f"the reference torchvision is not installed at {REF_DIR}; run `{INSTALL}` "
                    f"(or point SEEKER_TORCHVISION_REF at such a directory)")
    if _LIB is None:
        _LIB = torch.library.Library("torchvision", "DEF")
        _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _LIB.define("qnms(Tensor qdets, Tensor qscores, float dets_scale, int dets_zero_point, "
                    "float scores_scale, int scores_zero_point, float iou_threshold) -> Tensor")
    sys.path.insert(0, str(REF_DIR))
    import torchvision  # noqa: F401  (after the schemas; see the module docstring)

    return torchvision


def video_processor(min_pixels: int, max_total_pixels: int, max_frame_pixels: int | None):
    """transformers' Qwen3VLVideoProcessor with Qwen3-VL's released settings (mean=std=0.5).

    Our Sampling bounds map onto it as size = {shortest_edge: min_pixels, longest_edge: budget}
    with `cap_pixels_per_frame=True` (qwen-vl-utils' per-frame caps). transformers caps a frame
    at `max_video_tokens * 32 * 32` pixels, so a cap that is not a multiple of 1024 (336*336)
    cannot be given as tokens; instead it is folded into the budget per call (see `run`):
    floor(min(B, c*n) / n) = min(B // n, c), which is the cap transformers applies.
    """
    _import_torchvision()
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    proc = Qwen3VLVideoProcessor(size={"shortest_edge": min_pixels,
                                       "longest_edge": max_total_pixels},
                                 image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                 cap_pixels_per_frame=True, max_video_tokens=10**9,
                                 do_sample_frames=False)
    proc.seeker_frame_cap = max_frame_pixels
    return proc


def run(proc, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W, 3) uint8 frames -> (pixel_values_videos, video_grid_thw[0]) from transformers."""
    import torch

    budget = proc.size["longest_edge"]
    if proc.seeker_frame_cap is not None:
        budget = min(budget, proc.seeker_frame_cap * len(frames))
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (T, C, H, W)
    out = proc(videos=[video], size={"shortest_edge": proc.size["shortest_edge"],
                                     "longest_edge": budget}, return_tensors="np")
    return out["pixel_values_videos"], out["video_grid_thw"][0]


def resized_frames(proc, frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """transformers' resize step alone (torchvision bicubic, antialias), uint8 (T, h, w, 3)."""
    import torch
    from transformers.image_utils import SizeDict
    from transformers.image_utils import PILImageResampling

    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)[None]
    from transformers.image_processing_backends import TorchvisionBackend

    out = TorchvisionBackend.resize(proc, video, SizeDict(height=height, width=width),
                                    resample=PILImageResampling.BICUBIC)
    return out[0].permute(0, 2, 3, 1).numpy()
