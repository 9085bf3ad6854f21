"""The two tools the model can call, their JSON schemas, and argument checking.

- view_visual_prompt(frame_path): the frame on which the instance is marked, as an image.
- crop_video(video_path, start_time, end_time): that window again at a finer rate (1 fps,
  4 to 64 frames, at most 336*336 pixels each), as a video whose timestamps are on the
  original video's clock.

`ToolRunner.run(call)` never raises for anything the model wrote: malformed calls, unknown
tools, missing / extra / mistyped arguments, NaN or out-of-range times, refused paths, missing
or corrupt files all become an `Observation` with `error` set, whose text the model reads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from seeker_jax.env.parser import ParseError, Parsed
from seeker_jax.env.sandbox import Sandbox, SandboxError
from seeker_jax.env.video import Sampling, VideoError, VideoFile, process_clip
from seeker_jax.models.chat import Part
from seeker_jax.models.processing import ProcessedVideo, preprocess_image

VIEW_VISUAL_PROMPT = {
    "type": "function",
    "function": {
        "name": "view_visual_prompt",
        "description": "View the frame on which the instance in question is marked by a visual "
                       "prompt (box, point, contour, arrow, ...). Returns that frame as an image.",
        "parameters": {
            "type": "object",
            "properties": {"frame_path": {"type": "string",
                                          "description": "Path of the visual-prompt frame."}},
            "required": ["frame_path"],
        },
    },
}
CROP_VIDEO = {
    "type": "function",
    "function": {
        "name": "crop_video",
        "description": "Watch a time window of the video again at a finer frame rate. Returns "
                       "the frames of [start_time, end_time] with their timestamps in seconds "
                       "of the original video.",
        "parameters": {
            "type": "object",
            "properties": {
                "video_path": {"type": "string", "description": "Path of the video."},
                "start_time": {"type": "number", "description": "Window start, in seconds."},
                "end_time": {"type": "number", "description": "Window end, in seconds; "
                                                              "greater than start_time."},
            },
            "required": ["video_path", "start_time", "end_time"],
        },
    },
}
TOOL_SCHEMAS = (VIEW_VISUAL_PROMPT, CROP_VIDEO)


@dataclass(frozen=True)
class ToolConfig:
    """crop: how windows are sampled (1 fps, 4-64 frames, <= 336*336 px per frame).
    frame_min_pixels / frame_max_pixels: size bounds of the visual-prompt frame image.
    video_backends: decoders to try in order (bench/tools.py: "pyav" first is ~4x faster on
    sparse crops of long videos)."""

    crop: Sampling = Sampling(fps=1.0, min_frames=4, max_frames=64, min_pixels=32 * 32,
                              max_frame_pixels=336 * 336, max_total_pixels=336 * 336 * 64)
    frame_min_pixels: int = 32 * 32
    frame_max_pixels: int = 512 * 32 * 32
    video_backends: tuple[str, ...] = ("pyav", "decord")  # tried in order; see env/video.py


@dataclass
class Observation:
    """What one tool call gives back.

    parts: the content of its `<tool_response>` (text and a ProcessedImage / ProcessedVideo);
    frames: the raw (H, W, 3) uint8 frames shown, with frame_times (None for a still image),
    kept for inspection (the CLI saves them); error: the message if the call failed.
    """

    parts: list[Part]
    frames: list[np.ndarray] = field(default_factory=list)
    frame_times: list[float | None] = field(default_factory=list)
    error: str | None = None

    @property
    def text(self) -> str:
        """The response as text, vision spans written as placeholders."""
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            elif isinstance(p, ProcessedVideo):
                out.append("".join(f"<{t:.1f} seconds><video frames>" for t in p.timestamps))
            else:
                out.append("<image>")
        return "".join(out)

    @classmethod
    def failure(cls, message: str) -> "Observation":
        return cls([f"Error: {message}"], error=message)


def _check_arguments(name: str, args: dict, schema: dict) -> str | None:
    """Required / extra / type errors against the JSON schema, or None when the call fits it."""
    params = schema["function"]["parameters"]
    props, required = params["properties"], params["required"]
    missing = [k for k in required if k not in args]
    extra = sorted(k for k in args if k not in props)
    signature = ", ".join(required)
    if missing:
        return f"{name}: missing argument(s) {missing}; call it as {name}({signature})"
    if extra:
        return f"{name}: unexpected argument(s) {extra}; call it as {name}({signature})"
    for key, spec in props.items():
        value = args[key]
        if spec["type"] == "string" and not isinstance(value, str):
            return f"{name}: {key} must be a string, got {type(value).__name__}"
        if spec["type"] == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"{name}: {key} must be a number of seconds, got {type(value).__name__}"
            if not math.isfinite(value):
                return f"{name}: {key} must be a finite number, got {value}"
    return None


class ToolRunner:
    """Runs the tools of ONE sample: its sandbox, its video (opened once, lazily)."""

    def __init__(self, sandbox: Sandbox, config: ToolConfig = ToolConfig()):
        self.sandbox = sandbox
        self.config = config
        self._videos: dict[str, VideoFile] = {}
        self._handlers = {"view_visual_prompt": (VIEW_VISUAL_PROMPT, self._view_visual_prompt),
                          "crop_video": (CROP_VIDEO, self._crop_video)}

    def run(self, call: Parsed) -> Observation:
        """One parsed call -> its observation. Never raises on model input."""
        if isinstance(call, ParseError):
            return Observation.failure(call.message)
        entry = self._handlers.get(call.name)
        if entry is None:
            known = ", ".join(self._handlers)
            return Observation.failure(f"unknown tool '{call.name[:60]}'; the tools are {known}")
        schema, handler = entry
        problem = _check_arguments(call.name, call.arguments, schema)
        if problem:
            return Observation.failure(problem)
        try:
            return handler(**call.arguments)
        except (SandboxError, VideoError, ValueError) as exc:
            return Observation.failure(str(exc))
        except Exception as exc:  # a bug of ours must not end the episode either
            return Observation.failure(f"{call.name}: the tool failed ({type(exc).__name__}: "
                                       f"{str(exc)[:120]})")

    def video(self, requested: object, tool: str = "crop_video") -> VideoFile:
        """The sample's video, if `requested` names it (opened once per runner)."""
        real = self.sandbox.resolve("video", requested, tool, "video_path")
        key = str(real)
        if key not in self._videos:
            self._videos[key] = VideoFile(real, name=self.sandbox.shown_name("video"),
                                          backends=self.config.video_backends)
        return self._videos[key]

    def _view_visual_prompt(self, frame_path: str) -> Observation:
        real = self.sandbox.resolve("frame", frame_path, "view_visual_prompt", "frame_path")
        shown = self.sandbox.shown_name("frame")
        try:
            with Image.open(real) as im:
                rgb = np.asarray(im.convert("RGB"))
        except FileNotFoundError:
            raise VideoError(f"view_visual_prompt: frame '{shown}' does not exist") from None
        except Exception as exc:  # PIL raises many types on bad files (bombs included)
            raise VideoError(f"view_visual_prompt: frame '{shown}' is not a readable image "
                             f"({type(exc).__name__})") from None
        image = preprocess_image(rgb, self.config.frame_min_pixels, self.config.frame_max_pixels)
        return Observation([f"The visual-prompt frame '{shown}':\n", image], [rgb], [None])

    def _crop_video(self, video_path: str, start_time: float, end_time: float) -> Observation:
        video = self.video(video_path)
        start, end = float(start_time), float(end_time)
        if start < 0:
            raise ValueError(f"crop_video: start_time {start} is negative; times are seconds "
                             f"from the video's start")
        if end <= start:
            raise ValueError(f"crop_video: end_time {end} must be greater than start_time "
                             f"{start}")
        duration = video.info.duration
        if start >= duration:
            raise ValueError(f"crop_video: start_time {start} is past the video's end "
                             f"({duration:.1f} s)")
        if end > duration + 1e-6:
            raise ValueError(f"crop_video: end_time {end} is past the video's end "
                             f"({duration:.1f} s)")
        crop = self.config.crop
        clip = video.clip(start, end, crop)
        processed = process_clip(clip)
        text = (f"Frames of '{video.name}' from {start:.1f} s to {end:.1f} s "
                f"({len(clip.indices)} frames at {crop.fps:g} fps):\n")
        return Observation([text, processed], list(clip.frames),
                           [float(t) for t in clip.timestamps])


def with_crop(config: ToolConfig, **changes) -> ToolConfig:
    """A ToolConfig whose crop sampling differs in the given fields (e.g. max_frames=16)."""
    return replace(config, crop=replace(config.crop, **changes))
