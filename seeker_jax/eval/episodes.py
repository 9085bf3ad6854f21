"""The evaluator's episode (the env's, plus V2P-Bench's frames-after-question layout) and the
chat-message view of an episode for OpenAI-compatible models.

Why a message view built from the env's own content: a remote model must see the same turns
as ours. `MessageFormatter` is a ChatFormatter that records the content the Episode hands it
(user turn, tool responses: captions, round notes, errors and all) instead of tokenizing it;
`to_openai_content` turns each part into OpenAI content parts. Images go as PNG `image_url`
data URLs of the pixels the model input holds (read back from the patches, exact); a video
goes as one `video_url` frame list of those pixels with each frame's time (exact against
seeker-jax serve; vLLM reads the `video/jpeg` form), or, for APIs without video input, as per
2-frame group its `<t seconds>` text and the frames as images (VideoSeeker's eval layout).
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from seeker_jax.data.openai_api import image_data_url
from seeker_jax.env.episode import Episode, EpisodeConfig
from seeker_jax.env.records import SampleRecord
from seeker_jax.models.chat import ChatFormatter, Content, Segment
from seeker_jax.models.processing import (IMAGE_MEAN, IMAGE_STD, MERGE_SIZE, PATCH_SIZE,
                                          TEMPORAL_PATCH_SIZE, ProcessedImage, ProcessedVideo,
                                          preprocess_image)

# patchify's axis order (models/processing.py): (t, tp, h/m, m, p, w/m, m, p, C) -> this.
_PATCH_ORDER = (0, 2, 5, 3, 6, 8, 1, 4, 7)


def unpatchify(pixel_values: np.ndarray, grid_thw: np.ndarray) -> np.ndarray:
    """Inverse of patchify + normalize: (t*h*w, 3*2*16*16) float32 -> (2t, H, W, 3) uint8."""
    t, h, w = (int(x) for x in grid_thw)
    m, p, tp = MERGE_SIZE, PATCH_SIZE, TEMPORAL_PATCH_SIZE
    x = pixel_values.reshape(t, h // m, w // m, m, m, 3, tp, p, p)
    x = x.transpose(np.argsort(_PATCH_ORDER)).reshape(t * tp, h * p, w * p, 3)
    return np.clip(np.rint((x * IMAGE_STD + IMAGE_MEAN) * 255.0), 0, 255).astype(np.uint8)


class EvalEpisode(Episode):
    """An env Episode; with `frames_after_question`, the sample's visual-prompt frame(s) are
    appended to the user turn as images after the question (V2P-Bench's own inference)."""

    def __init__(self, record: SampleRecord, formatter: ChatFormatter, root: str | os.PathLike,
                 config: EpisodeConfig, frames: tuple[str, ...] = (),
                 frames_after_question: bool = False):
        super().__init__(record, formatter, root, config)
        self.root = root
        self.frames = frames if frames_after_question else ()

    def prompt_segment(self) -> Segment:
        video, duration = self.tools.prompt_video(self.record.video_path, self.config.video)
        content = list(self.profile.user_content(self.record, video, duration))
        tools = self.config.tools
        for frame in self.frames:
            with Image.open(os.path.join(self.root, frame)) as im:
                rgb = np.asarray(im.convert("RGB"))
            content.append(preprocess_image(rgb, tools.frame_min_pixels, tools.frame_max_pixels))
        segment = self.formatter.system_and_user_segment(content)
        self.segments = [segment]
        return segment


def _empty() -> Segment:
    z = np.zeros(0, np.int32)
    return Segment(z, z, z)


class MessageFormatter(ChatFormatter):
    """Records the conversation as chat content instead of tokens (for remote models).

    log: [("user", Content) | ("tool", [Content per call])], in order. The assistant turns
    are the remote model's text, recorded by the driver.
    """

    def __init__(self, system_prompt: str = "", tools=()):
        self.tokenizer, self.ids = None, None
        self.system_prompt, self.tools = system_prompt, list(tools)
        self.log: list[tuple[str, object]] = []

    def system_and_user_segment(self, user: Content) -> Segment:
        self.log.append(("user", list(user)))
        return _empty()

    def assistant_segment_from_text(self, text: str) -> Segment:
        return _empty()

    def assistant_segment_from_ids(self, ids) -> Segment:
        return _empty()

    def tool_response_segment(self, responses) -> Segment:
        self.log.append(("tool", [list(r) for r in responses]))
        return _empty()


VIDEO_MODES = ("frames", "jpeg", "images")


def frames_data_url(frames: np.ndarray, fmt: str = "PNG") -> str:
    """(T, H, W, 3) uint8 -> `data:video/png;base64,F1,F2,...` (vLLM's frame-list form, which
    it reads for video/jpeg; seeker-jax serve reads both)."""
    urls = [image_data_url(f, fmt) for f in frames]
    mime = "jpeg" if fmt.upper() in ("JPG", "JPEG") else fmt.lower()
    return f"data:video/{mime};base64," + ",".join(u.partition(",")[2] for u in urls)


def video_part(video: ProcessedVideo, fmt: str = "PNG") -> dict:
    """A video as one `video_url` part: its model-input frames and each frame's time (a group's
    two frames both at the group's time, so the server's group means are the same numbers)."""
    frames = unpatchify(video.pixel_values, video.grid_thw)
    times = np.repeat(np.asarray(video.timestamps, np.float64), TEMPORAL_PATCH_SIZE)
    return {"type": "video_url", "video_url": {"url": frames_data_url(frames, fmt),
                                               "timestamps": [float(t) for t in times]}}


def to_openai_content(content: Content, video_mode: str = "frames") -> list[dict]:
    """Our parts -> OpenAI content parts: text, images as PNG `image_url` data URLs, videos by
    video_mode:
      "frames": one `video_url` of the exact frames (PNG list) + `timestamps` (lossless;
                seeker-jax serve rebuilds the very video the in-process episode saw);
      "jpeg":   the same as `data:video/jpeg` (vLLM's frame-list form; lossy);
      "images": per 2-frame group its `<t seconds>` text and the frames as images (for APIs
                without video input; the model then sees images, not a video)."""
    if video_mode not in VIDEO_MODES:
        raise ValueError(f"video_mode {video_mode!r}: use one of {VIDEO_MODES}")
    out: list[dict] = []

    def text(s: str) -> None:
        if out and out[-1]["type"] == "text":
            out[-1]["text"] += s
        else:
            out.append({"type": "text", "text": s})

    def image(frame: np.ndarray) -> None:
        out.append({"type": "image_url", "image_url": {"url": image_data_url(frame)}})

    for part in content:
        if isinstance(part, str):
            text(part)
        elif isinstance(part, ProcessedImage):
            image(unpatchify(part.pixel_values, part.grid_thw)[0])
        elif isinstance(part, ProcessedVideo) and video_mode != "images":
            out.append(video_part(part, "JPEG" if video_mode == "jpeg" else "PNG"))
        elif isinstance(part, ProcessedVideo):
            frames = unpatchify(part.pixel_values, part.grid_thw)
            for g, t in enumerate(part.timestamps):
                text(f"<{t:.1f} seconds>")
                for f in frames[TEMPORAL_PATCH_SIZE * g:TEMPORAL_PATCH_SIZE * (g + 1)]:
                    image(f)
        else:
            raise TypeError(f"cannot send a {type(part).__name__} to a chat API")
    return out


__all__ = ["EvalEpisode", "MessageFormatter", "VIDEO_MODES", "frames_data_url", "to_openai_content",
           "unpatchify", "video_part"]
