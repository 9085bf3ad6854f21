"""The two tools the model can call, their JSON schemas, argument checking, and the layouts of
what they return.

- view_visual_prompt(frame_path): the frame on which the instance is marked, as an image.
- crop_video(video_path, start_time, end_time): that window again at a finer rate (1 fps,
  4 to 64 frames, at most 336*336 pixels each), with timestamps on the original video's clock.

How results are laid out is a `ResponseLayout`, picked by the prompt profile (env/profiles.py):
ours ("seeker_jax") gives a crop as one video with a timestamp per 2-frame group and a caption;
VideoSeeker's eval code ("videoseeker") gives one image per frame, each preceded by
`<{start + i:.1f} seconds>`, then "The tool executed successfully. Here are the processed
result: ". The same layout lays out the prompt video, so the user turn and crops agree.

`ToolRunner.run(call)` never raises for anything the model wrote: malformed calls, unknown
tools, missing / extra / mistyped arguments, NaN or out-of-range times, refused paths, missing
or corrupt files all become an `Observation` with `error` set, whose text the model reads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
from PIL import Image

from seeker_jax.env.parser import ParseError, Parsed
from seeker_jax.env.sandbox import Sandbox, SandboxError
from seeker_jax.env.video import Clip, Sampling, VideoError, VideoFile, process_clip
from seeker_jax.models.chat import Part
from seeker_jax.models.processing import ProcessedVideo, preprocess_image
from seeker_jax.registry import Registry

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
class ResponseLayout:
    """How tool results and videos become chat parts.

    video: "video" (one ProcessedVideo, `<t seconds>` per 2-frame group, t the group's mean
    time) or "frames" (one image per frame, each after `<{start + i / fps:.1f} seconds>`, as
    VideoSeeker's eval code writes it); captions: our one-line captions before a result;
    success: text after a successful result; error_prefix: before an error message.
    """

    name: str
    video: str = "video"
    captions: bool = True
    success: str = ""
    error_prefix: str = "Error: "

    def video_parts(self, clip: Clip, sampling: Sampling, start: float) -> list[Part]:
        """A sampled clip as parts: one video, or per frame its timestamp and an image."""
        if self.video == "video":
            return [process_clip(clip)]
        parts: list[Part] = []
        for i, frame in enumerate(clip.frames):
            parts.append(f"<{start + i / sampling.fps:.1f} seconds>")
            parts.append(preprocess_image(frame, sampling.min_pixels, sampling.max_frame_pixels))
        return parts


LAYOUTS: Registry[ResponseLayout] = Registry("tool-response layout")
LAYOUTS.add("seeker_jax", ResponseLayout("seeker_jax"))
LAYOUTS.add("videoseeker", ResponseLayout(
    "videoseeker", video="frames", captions=False,
    success="The tool executed successfully. Here are the processed result: ",
    error_prefix="Tool execution failed: "))


def get_layout(name: str) -> ResponseLayout:
    return LAYOUTS.get(name)


@dataclass(frozen=True)
class ToolConfig:
    """crop: how windows are sampled (1 fps, 4-64 frames, <= 336*336 px per frame).
    frame_min_pixels / frame_max_pixels: size bounds of the visual-prompt frame image.
    video_backends: decoders to try in order ("pyav" first: it seeks to each sampled frame,
    which pays on sparse crops of long videos; bench/tools.py compares them)."""

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
    def failure(cls, message: str, prefix: str = "Error: ") -> "Observation":
        return cls([f"{prefix}{message}"], error=message)


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
    """Runs the tools of ONE sample: its sandbox, its video (opened once, lazily).

    layout: a LAYOUTS name (the prompt profile's); tools: the tool names this profile enables
    (None: both). A call to a tool not enabled is answered like an unknown tool; with none
    enabled (tools=()), every call is answered that no tool runs.
    """

    def __init__(self, sandbox: Sandbox, config: ToolConfig = ToolConfig(),
                 layout: str = "seeker_jax", tools: Sequence[str] | None = None):
        self.sandbox = sandbox
        self.config = config
        self.layout = get_layout(layout)
        self._videos: dict[str, VideoFile] = {}
        handlers = {"view_visual_prompt": (VIEW_VISUAL_PROMPT, self._view_visual_prompt),
                    "crop_video": (CROP_VIDEO, self._crop_video)}
        unknown = sorted(set(tools or ()) - set(handlers))
        if unknown:
            raise ValueError(f"ToolRunner: no tool(s) {unknown}; the tools are {sorted(handlers)}")
        self._handlers = {k: v for k, v in handlers.items() if tools is None or k in tools}

    def _failure(self, message: str) -> Observation:
        return Observation.failure(message, self.layout.error_prefix)

    def run(self, call: Parsed) -> Observation:
        """One parsed call -> its observation. Never raises on model input."""
        if isinstance(call, ParseError):
            return self._failure(call.message)
        entry = self._handlers.get(call.name)
        if entry is None and not self._handlers:
            return self._failure(f"no tool runs in this episode ('{call.name[:60]}' was "
                                 "called); answer from what you have seen")
        if entry is None:
            known = ", ".join(self._handlers)
            return self._failure(f"unknown tool '{call.name[:60]}'; the tools are {known}")
        schema, handler = entry
        problem = _check_arguments(call.name, call.arguments, schema)
        if problem:
            return self._failure(problem)
        try:
            return handler(**call.arguments)
        except (SandboxError, VideoError, ValueError) as exc:
            return self._failure(str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug of ours must not end the episode either
            return self._failure(f"{call.name}: the tool failed ({type(exc).__name__}: "
                                 f"{str(exc)[:120]})")

    def prompt_video(self, requested: object, sampling: Sampling) -> tuple[list[Part], float]:
        """The whole video of the user turn, in this layout; (parts, duration in seconds)."""
        video = self.video(requested, tool="prompt")
        duration = video.info.duration
        return self.layout.video_parts(video.clip(0.0, duration, sampling), sampling, 0.0), duration

    def _result(self, caption: str, parts: list[Part]) -> list[Part]:
        head = [caption] if self.layout.captions else []
        tail = [self.layout.success] if self.layout.success else []
        return [*head, *parts, *tail]

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
        except Exception as exc:  # noqa: BLE001 - PIL raises many types on bad files (bombs too)
            raise VideoError(f"view_visual_prompt: frame '{shown}' is not a readable image "
                             f"({type(exc).__name__})") from None
        image = preprocess_image(rgb, self.config.frame_min_pixels, self.config.frame_max_pixels)
        return Observation(self._result(f"The visual-prompt frame '{shown}':\n", [image]),
                           [rgb], [None])

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
        text = (f"Frames of '{video.name}' from {start:.1f} s to {end:.1f} s "
                f"({len(clip.indices)} frames at {crop.fps:g} fps):\n")
        return Observation(self._result(text, self.layout.video_parts(clip, crop, start)),
                           list(clip.frames), [float(t) for t in clip.timestamps])


def with_crop(config: ToolConfig, **changes) -> ToolConfig:
    """A ToolConfig whose crop sampling differs in the given fields (e.g. max_frames=16)."""
    return replace(config, crop=replace(config.crop, **changes))
