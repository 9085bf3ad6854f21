"""Stage 3 through Meta's `sam2` package (optional: `pip install ".[sam2]"`), box-prompted.

The same job as masks_sam.Sam2Masks (transformers' port), done by the reference code itself:
`build_sam2_video_predictor(model_config, checkpoint)` gives a `SAM2VideoPredictor`; per
sample, the window's frames at 1 fps (the env's sampler, native size) are written as JPEGs to
a temporary folder (the package reads a folder of `<index>.jpg`; its mp4 path would decode
every frame, not 1 fps), `init_state` loads them (it resizes and normalizes itself),
`add_new_points_or_box` puts stage 2's box (video pixels) on the frame nearest box_time, and
`propagate_in_video` tracks forwards, then in reverse, from there. Its masks are logits at the
video's size, thresholded at logit(threshold); then the checks and record of every backend
(masks.py). The model is built once per process or Ray actor (`holds_model`).

Importing this module never imports `sam2`; building the stage without it is an ImportError
that says how to install it.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from seeker_jax.data.pipeline.masks_sam import SamStage, box_frame, logit
from seeker_jax.data.pipeline.stage import Rejected

INSTALL = 'pip install ".[sam2]"'
DEFAULT_CONFIG = "configs/sam2.1/sam2.1_hiera_l.yaml"  # goes with sam2.1_hiera_large.pt


def import_sam2():
    """The package's `build_sam2_video_predictor`, or an ImportError saying what to do."""
    try:
        from sam2.build_sam import build_sam2_video_predictor
    except ImportError as e:
        raise ImportError(f"masks.backend sam2_pkg needs Meta's sam2 package, which cannot be "
                          f"imported ({e}); install it with {INSTALL} (sam2>=1.1)") from e
    return build_sam2_video_predictor


def write_jpegs(frames: np.ndarray, folder: str, quality: int = 95) -> None:
    """(T, H, W, 3) uint8 -> folder/00000.jpg ...: the frame folder `init_state` reads, in
    order (it sorts by the integer name)."""
    from PIL import Image

    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(os.path.join(folder, f"{i:05d}.jpg"), quality=quality)


def build_predictor(model_config: str, checkpoint: str | None, image_size: int | None,
                    device: str):
    """A SAM2VideoPredictor from the package's model config name (e.g.
    "configs/sam2.1/sam2.1_hiera_t.yaml") and checkpoint (.pt; None: random weights, tests
    only). image_size overrides the config's input side (1024): smaller is faster, and
    worse with real weights, which were trained at 1024."""
    build = import_sam2()
    from hydra.errors import MissingConfigException

    if checkpoint is not None and not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"sam2_pkg: no checkpoint at {checkpoint}; give "
                                "--config.masks.checkpoint=a sam2 .pt file matching "
                                f"masks.sam2_config ({model_config})")
    extra = []
    if image_size:
        if int(image_size) % 32:
            raise ValueError(f"sam2_pkg: image_size {image_size} must be a multiple of 32 "
                             "(the Hiera backbone's stride)")
        extra.append(f"++model.image_size={int(image_size)}")
    try:
        return build(model_config, ckpt_path=checkpoint, device=device,
                     hydra_overrides_extra=extra)
    except MissingConfigException as e:
        raise ValueError(f"sam2_pkg: the sam2 package has no model config {model_config!r}; "
                         "give --config.masks.sam2_config=one of its names, e.g. "
                         f"{DEFAULT_CONFIG}") from e


class Sam2PkgMasks(SamStage):
    """masks.backend=sam2_pkg. device None: cuda when available, else cpu."""
    backend = "sam2_pkg"

    def __init__(self, model_config: str = DEFAULT_CONFIG, checkpoint: str | None = None,
                 image_size: int | None = None, device: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.predictor = build_predictor(model_config, checkpoint, image_size, self.device)

    def input_size(self) -> None:
        return None  # native size: init_state resizes, and masks come back at the video's size

    def segment(self, sample, info, indices, frames):
        import torch

        if sample.get("box") is None or sample.get("box_time") is None:
            return Rejected("no_box", "the sam2_pkg backend needs stage 2's box (and box_time)")
        start = box_frame(indices, info.fps, sample["box_time"])
        cut = logit(self.threshold)
        out: dict[int, np.ndarray] = {}
        with tempfile.TemporaryDirectory(prefix="sam2_frames_") as folder, torch.inference_mode():
            write_jpegs(frames, folder)
            state = self.predictor.init_state(folder)
            self.predictor.add_new_points_or_box(
                state, frame_idx=start, obj_id=1, box=np.asarray(sample["box"], np.float32))
            for reverse in (False, True):
                for frame_idx, _, logits in self.predictor.propagate_in_video(
                        state, start_frame_idx=start, reverse=reverse):
                    out.setdefault(frame_idx, (logits[0, 0] > cut).cpu().numpy())
        return np.stack([out[i] for i in range(len(indices))])
