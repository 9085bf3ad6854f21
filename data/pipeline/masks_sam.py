"""Stage 3 backends through transformers' SAM video models (see masks.py for the checks).

  - `Sam3Masks`: Sam3VideoModel, text-prompted with stage 2's tag (as the paper does): the
    detector finds every instance matching the tag, the tracker follows them; the target is
    the highest-scoring object, and a second object scoring `ambiguous_above` or more means
    the tag does not single the target out (rejected: mask_ambiguous).
  - `Sam2Masks`: Sam2VideoModel, box-prompted with stage 2's box at box_time, propagated
    forwards and backwards from that frame.
Inputs are built by hand (their processors need torchvision): frames sampled at 1 fps within
the window by the env's sampler, resized to the model's square input by the env's resize,
scaled to [0, 1] and normalized with the folder's preprocessor mean / std (defaults: ImageNet
for SAM2, 0.5 for SAM3, as their processors use). Low-resolution mask logits are upsampled
bilinearly to the video's size and thresholded at logit(threshold). A class loads its model
once per process or Ray actor (`holds_model`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from seeker_jax.data.pipeline.masks import check_masks, mask_record, window_indices
from seeker_jax.data.pipeline.stage import Outcome, Rejected
from seeker_jax.env.video import VideoError, VideoFile

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def norm_stats(model_dir: str, default: tuple) -> tuple:
    """(mean, std) from the folder's (video_)preprocessor_config.json, else `default`."""
    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
        path = Path(model_dir) / name
        if path.is_file():
            cfg = json.loads(path.read_text())
            if "image_mean" in cfg and "image_std" in cfg:
                return tuple(cfg["image_mean"]), tuple(cfg["image_std"])
    return default


def pixel_values(frames: np.ndarray, mean, std):
    """(T, S, S, 3) uint8 -> (T, 3, S, S) float32 torch, scaled and normalized."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames).copy()).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def logit(p: float) -> float:
    """The mask-logit threshold that means probability `p` (0 for 0.5, SAM's own cut)."""
    return math.log(p / (1.0 - p))


def upsample(logits, height: int, width: int, threshold: float) -> np.ndarray:
    """(h, w) or (1, h, w) mask logits -> (height, width) bool at probability `threshold`."""
    import torch.nn.functional as F

    x = logits.reshape(1, 1, *logits.shape[-2:]).float()
    x = F.interpolate(x, (height, width), mode="bilinear", align_corners=False)[0, 0]
    return (x > logit(threshold)).numpy()


def box_frame(indices: np.ndarray, fps: float, box_time: float) -> int:
    """The position in `indices` (frame indices at `fps`) of the frame nearest `box_time` s:
    where a box prompt goes and tracking starts, forwards and in reverse."""
    return int(np.argmin(np.abs(np.asarray(indices) / fps - float(box_time))))


def require_model_dir(backend: str, model_dir: str) -> None:
    if not Path(model_dir).is_dir():
        raise FileNotFoundError(f"{backend}: no model folder at {model_dir}; give "
                                "--config.masks.model_dir=a transformers folder")


class SamStage:
    """What every SAM backend shares: read the window's frames at 1 fps, `segment` them (one
    method per backend), then the mask checks and the record. Also the base of the `sam2`
    package's backend (masks_sam2pkg.py)."""
    name, holds_model = "masks", True
    backend = ""

    def __init__(self, fps: float = 1.0, min_area_frac: float = 0.001,
                 min_neighbour_iou: float = 0.3, threshold: float = 0.5,
                 num_threads: int | None = None):
        if num_threads:  # one actor per core on CPU: torch's default threads oversubscribe the cores
            import torch
            torch.set_num_threads(int(num_threads))
        self.fps, self.threshold = fps, threshold
        self.min_area_frac, self.min_neighbour_iou = min_area_frac, min_neighbour_iou

    def input_size(self) -> int | None:
        """The square side frames are read at; None: native size (the model resizes)."""
        return int(self.model.config.image_size)

    def frames(self, sample: dict[str, Any]):
        video = VideoFile(sample["video_path"])
        info = video.info
        indices = window_indices(info, sample["window"], self.fps)
        size = self.input_size()
        return info, indices, video.read(indices, None if size is None else (size, size))

    def segment(self, sample: dict[str, Any], info, indices, frames) -> np.ndarray | Rejected:
        raise NotImplementedError  # each backend

    def __call__(self, sample: dict[str, Any]) -> Outcome:
        try:
            info, indices, frames = self.frames(sample)
        except VideoError as e:
            return Outcome(Rejected("video_corrupt", str(e)))
        masks = self.segment(sample, info, indices, frames)
        if isinstance(masks, Rejected):
            return Outcome(masks)
        bad = check_masks(masks, self.min_area_frac, self.min_neighbour_iou)
        return Outcome(bad if bad is not None else
                       mask_record(sample, self.backend, indices, info.fps, masks))


class Sam2Masks(SamStage):
    backend = "sam2"

    def __init__(self, model_dir: str, **kwargs: Any):
        super().__init__(**kwargs)
        require_model_dir(self.backend, model_dir)
        from transformers import Sam2VideoModel

        self.model = Sam2VideoModel.from_pretrained(model_dir).eval()
        self.mean, self.std = norm_stats(model_dir, IMAGENET)

    def segment(self, sample, info, indices, frames):
        import torch
        from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

        if "box" not in sample:
            return Rejected("no_box", "the sam2 backend needs stage 2's box (and box_time)")
        size = int(self.model.config.image_size)
        start = box_frame(indices, info.fps, sample["box_time"])
        session = Sam2VideoInferenceSession(
            video=pixel_values(frames, self.mean, self.std), video_height=info.height,
            video_width=info.width, dtype=torch.float32)
        x0, y0, x1, y1 = sample["box"]
        sx, sy = size / info.width, size / info.height
        box = torch.tensor([[[[x0 * sx, y0 * sy], [x1 * sx, y1 * sy]]]], dtype=torch.float32)
        session.add_point_inputs(session.obj_id_to_idx(1), start, {
            "point_coords": box, "point_labels": torch.tensor([[[2, 3]]], dtype=torch.int32)})
        session.obj_with_new_inputs = [1]
        out: dict[int, np.ndarray] = {}
        with torch.inference_mode():
            for reverse in (False, True):
                for o in self.model.propagate_in_video_iterator(
                        session, start_frame_idx=start, reverse=reverse):
                    out.setdefault(o.frame_idx, upsample(o.pred_masks[0, 0], info.height,
                                                         info.width, self.threshold))
        return np.stack([out[i] for i in range(len(indices))])


class Sam3Masks(SamStage):
    backend = "sam3"

    def __init__(self, model_dir: str, ambiguous_above: float | None = 0.5,
                 max_text_tokens: int = 32, **kwargs: Any):
        super().__init__(**kwargs)
        require_model_dir(self.backend, model_dir)
        from transformers import AutoTokenizer, Sam3VideoModel

        self.model = Sam3VideoModel.from_pretrained(model_dir).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.mean, self.std = norm_stats(model_dir, HALF)
        self.ambiguous_above, self.max_text_tokens = ambiguous_above, max_text_tokens

    def segment(self, sample, info, indices, frames):
        import torch
        from transformers.models.sam3_video.modeling_sam3_video import Sam3VideoInferenceSession

        tag = sample["target_tag"]
        session = Sam3VideoInferenceSession(
            video=pixel_values(frames, self.mean, self.std), video_height=info.height,
            video_width=info.width, dtype=torch.float32)
        prompt = session.add_prompt(tag)
        enc = self.tokenizer(tag, return_tensors="pt", padding="max_length",
                             max_length=self.max_text_tokens, truncation=True)
        session.prompt_input_ids[prompt] = enc.input_ids
        session.prompt_attention_masks[prompt] = enc.attention_mask
        per_frame, scores = {}, {}
        with torch.inference_mode():
            for o in self.model.propagate_in_video_iterator(session, start_frame_idx=0):
                per_frame[o.frame_idx] = dict(o.obj_id_to_mask)
                scores.update({k: float(v) for k, v in o.obj_id_to_score.items()})
        if not scores:
            return Rejected("mask_empty", f"SAM3 found nothing for the tag {tag!r}")
        ranked = sorted(scores, key=lambda k: (-scores[k], k))
        if (self.ambiguous_above is not None and len(ranked) > 1
                and scores[ranked[1]] >= self.ambiguous_above):
            return Rejected("mask_ambiguous", f"{len(ranked)} objects match {tag!r}; the "
                            f"second scores {scores[ranked[1]]:.2f}")
        target = ranked[0]
        empty = np.zeros((info.height, info.width), bool)
        return np.stack([upsample(per_frame[i][target], info.height, info.width, self.threshold)
                         if target in per_frame.get(i, {}) else empty
                         for i in range(len(indices))])
