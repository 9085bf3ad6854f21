"""OpenAI chat message content: the one builder of `text` / `image_url` / `video_url` parts.

Who sends what: the pipeline's verifier (stage 2) and the teacher send sampled video frames,
each after its `<t seconds>` (`frames_content`); the teacher sends tool observations the same
way (`observations_content`); the evaluator's remote backends send the environment's own
content, the very pixels our model would see (`to_openai_content`).

Why exact pixels for evaluation: a remote model must see the same turns as ours. Images go as
PNG data URLs of the pixels the model input holds (read back from the patches, exact); a
video goes as one `video_url` frame list of those pixels with each frame's time (exact against
seeker-jax serve; vLLM reads the `video/jpeg` form), or, for APIs without video input, as per
2-frame group its `<t seconds>` text and the frames as images (VideoSeeker's eval layout).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from seeker_jax.data.openai_api import image_data_url
from seeker_jax.env.tools import Observation
from seeker_jax.models.chat import Content
from seeker_jax.models.processing import (IMAGE_MEAN, IMAGE_STD, MERGE_SIZE, PATCH_SIZE,
                                          TEMPORAL_PATCH_SIZE, ProcessedImage, ProcessedVideo)

VIDEO_MODES = ("frames", "jpeg", "images")
# patchify's axis order (models/processing.py): (t, tp, h/m, m, p, w/m, m, p, C) -> this.
_PATCH_ORDER = (0, 2, 5, 3, 6, 8, 1, 4, 7)


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(frame: np.ndarray) -> dict[str, Any]:
    """An (H, W, 3) uint8 frame as a PNG `image_url` part."""
    return {"type": "image_url", "image_url": {"url": image_data_url(frame)}}


def frames_content(frames: Sequence[np.ndarray], times: Sequence[float | None]
                   ) -> list[dict[str, Any]]:
    """Frames as parts: `<t seconds>` (when the time is known) then the image, per frame."""
    out: list[dict[str, Any]] = []
    for frame, t in zip(frames, times):
        if t is not None:
            out.append(text_part(f"<{float(t):.1f} seconds>"))
        out.append(image_part(frame))
    return out


def observations_content(observations: Sequence[Observation]) -> list[dict[str, Any]]:
    """One tool round as parts: per response, its text parts in order and its frames (with
    their times) where its vision part is, inside `<tool_response>` tags."""
    content: list[dict[str, Any]] = []
    for obs in observations:
        content.append(text_part("<tool_response>\n"))
        shown = False
        for part in obs.parts:
            if isinstance(part, str):
                content.append(text_part(part))
            elif not shown:
                content += frames_content(obs.frames, obs.frame_times)
                shown = True
        content.append(text_part("\n</tool_response>"))
    return content


def unpatchify(pixel_values: np.ndarray, grid_thw: np.ndarray) -> np.ndarray:
    """Inverse of patchify + normalize: (t*h*w, 3*2*16*16) float32 -> (2t, H, W, 3) uint8."""
    t, h, w = (int(x) for x in grid_thw)
    m, p, tp = MERGE_SIZE, PATCH_SIZE, TEMPORAL_PATCH_SIZE
    x = pixel_values.reshape(t, h // m, w // m, m, m, 3, tp, p, p)
    x = x.transpose(np.argsort(_PATCH_ORDER)).reshape(t * tp, h * p, w * p, 3)
    return np.clip(np.rint((x * IMAGE_STD + IMAGE_MEAN) * 255.0), 0, 255).astype(np.uint8)


def frames_data_url(frames: np.ndarray, fmt: str = "PNG") -> str:
    """(T, H, W, 3) uint8 -> `data:video/png;base64,F1,F2,...` (vLLM's frame-list form, which
    it reads for video/jpeg; seeker-jax serve reads both)."""
    urls = [image_data_url(f, fmt) for f in frames]
    mime = "jpeg" if fmt.upper() in ("JPG", "JPEG") else fmt.lower()
    return f"data:video/{mime};base64," + ",".join(u.partition(",")[2] for u in urls)


def video_part(video: ProcessedVideo, fmt: str = "PNG") -> dict[str, Any]:
    """A video as one `video_url` part: its model-input frames and each frame's time (a group's
    two frames both at the group's time, so the server's group means are the same numbers)."""
    frames = unpatchify(video.pixel_values, video.grid_thw)
    times = np.repeat(np.asarray(video.timestamps, np.float64), TEMPORAL_PATCH_SIZE)
    return {"type": "video_url", "video_url": {"url": frames_data_url(frames, fmt),
                                               "timestamps": [float(t) for t in times]}}


def to_openai_content(content: Content, video_mode: str = "frames") -> list[dict[str, Any]]:
    """Our parts -> OpenAI content parts: text (adjacent texts merged), images as PNG
    `image_url` data URLs, videos by video_mode:
      "frames": one `video_url` of the exact frames (PNG list) + `timestamps` (lossless;
                seeker-jax serve rebuilds the very video the in-process episode saw);
      "jpeg":   the same as `data:video/jpeg` (vLLM's frame-list form; lossy);
      "images": per 2-frame group its `<t seconds>` text and the frames as images (for APIs
                without video input; the model then sees images, not a video)."""
    if video_mode not in VIDEO_MODES:
        raise ValueError(f"video_mode {video_mode!r}: use one of {VIDEO_MODES}")
    out: list[dict[str, Any]] = []

    def add(parts: list[dict[str, Any]]) -> None:
        for p in parts:
            if p["type"] == "text" and out and out[-1]["type"] == "text":
                out[-1] = text_part(out[-1]["text"] + p["text"])
            else:
                out.append(p)

    for part in content:
        if isinstance(part, str):
            add([text_part(part)])
        elif isinstance(part, ProcessedImage):
            add([image_part(unpatchify(part.pixel_values, part.grid_thw)[0])])
        elif isinstance(part, ProcessedVideo) and video_mode != "images":
            add([video_part(part, "JPEG" if video_mode == "jpeg" else "PNG")])
        elif isinstance(part, ProcessedVideo):
            frames = unpatchify(part.pixel_values, part.grid_thw)
            times: list[float | None] = [None] * len(frames)  # a time before each group
            times[::TEMPORAL_PATCH_SIZE] = part.timestamps
            add(frames_content(frames, times))
        else:
            raise TypeError(f"cannot send a {type(part).__name__} to a chat API")
    return out


__all__ = ["VIDEO_MODES", "frames_content", "frames_data_url", "image_part",
           "observations_content", "text_part", "to_openai_content", "unpatchify",
           "video_part"]
