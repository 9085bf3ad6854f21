"""Stage 2: a VLM checks the target against sampled frames and rewrites the QA around it.

The VLM sees frames sampled with their timestamps (`<t seconds>` then an `image_url` data
URL per frame) and the QA, and returns strict JSON: whether the target is unique in the video,
a short semantic tag for the segmenter, the temporal window where it is seen, the question
rewritten with `<target>` in place of the target's description, and optionally a box around
it at one time (the box prompt of the sam2 backend). Everything is validated: the window lies
inside the video, `<target>` occurs exactly once, the box lies inside the frame.
"""
from __future__ import annotations

import math
from typing import Any

import pydantic

from seeker_jax.data.openai_content import frames_content, text_part
from seeker_jax.data.pipeline.llm import ask_json, make_client
from seeker_jax.data.pipeline.readers import options_text
from seeker_jax.data.pipeline.stage import Outcome, Rejected
from seeker_jax.data.visual_prompt import PLACEHOLDER
from seeker_jax.env.video import VideoError, VideoFile, sample_frame_indices

SYSTEM = (
    "You verify video questions about one target entity. You see frames of the video, each "
    "after its time in seconds, then a question and its answer. Reply with only a JSON object: "
    '{"unique": is the entity the question is about exactly one, unambiguous instance in the '
    'video, "tag": a short noun phrase for a segmentation model (e.g. "red car"), '
    '"start_time" and "end_time": the seconds during which the target is visible, '
    '"question": the question rewritten with the target\'s description replaced by the exact '
    f'text {PLACEHOLDER} (once), "box": [x0, y0, x1, y1] pixels around the target at '
    '"box_time" seconds, or null}.')


class Verification(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    unique: bool
    tag: str
    start_time: float
    end_time: float
    question: str
    box: list[float] | None = None
    box_time: float | None = None


def frame_size(height: int, width: int, max_pixels: int) -> tuple[int, int]:
    """(h, w) scaled down to at most max_pixels, aspect kept, even sides, at least 2."""
    scale = min(1.0, math.sqrt(max_pixels / (height * width)))
    return (max(2, int(height * scale) // 2 * 2), max(2, int(width * scale) // 2 * 2))


def check_verification(v: Verification, duration: float, width: int, height: int) -> str | None:
    """What is wrong with a reply (None: it is valid); a non-unique verdict is valid."""
    if not v.unique:
        return None
    if not v.tag.strip():
        return "tag is empty"
    if not (0.0 <= v.start_time < v.end_time <= duration + 1e-3):
        return (f"window [{v.start_time}, {v.end_time}] is not inside the video "
                f"[0, {duration:.3f}] with start < end")
    n = v.question.count(PLACEHOLDER)
    if n != 1:
        return f"the question has {PLACEHOLDER} {n} times, not once"
    if v.box is not None:
        if len(v.box) != 4 or v.box_time is None:
            return "box needs 4 numbers and a box_time"
        x0, y0, x1, y1 = v.box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            return f"box {v.box} is not inside the {width}x{height} frame"
        if not (v.start_time <= v.box_time <= v.end_time):
            return f"box_time {v.box_time} is outside the window"
    return None


class VlmVerify:
    name, holds_model = "verify", False

    def __init__(self, model: str, fps: float = 1.0, max_frames: int = 16,
                 max_pixels: int = 224 * 224, attempts: int = 3,
                 json_mode: str | None = "json_schema", max_tokens: int = 512, **client: Any):
        self.client = make_client(model, **client)
        self.max_tokens = max_tokens
        self.fps, self.max_frames, self.max_pixels = fps, max_frames, max_pixels
        self.attempts, self.json_mode = attempts, json_mode

    def frames_content(self, video: VideoFile) -> list[dict[str, Any]]:
        info = video.info
        indices = sample_frame_indices(info, 0.0, info.duration, self.fps, 1, self.max_frames)
        frames = video.read(indices, frame_size(info.height, info.width, self.max_pixels))
        return frames_content(frames, [index / info.fps for index in indices])

    def __call__(self, sample: dict[str, Any]) -> Outcome:
        video = VideoFile(sample["video_path"])
        try:
            info = video.info
            frames = self.frames_content(video)
        except VideoError as e:
            reason = "video_missing" if "does not exist" in str(e) else "video_corrupt"
            return Outcome(Rejected(reason, str(e)))
        qa = (f"Question: {sample['question']}{options_text(sample.get('options') or {})}\n"
              f"Answer: {sample['answer']}\nThe video is {info.duration:.1f} seconds long, "
              f"{info.width}x{info.height} pixels.")
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": frames + [text_part(qa)]}]
        reply, tokens = ask_json(
            self.client, messages, Verification,
            lambda v: check_verification(v, info.duration, info.width, info.height),
            attempts=self.attempts, json_mode=self.json_mode, max_tokens=self.max_tokens)
        if isinstance(reply, Rejected):
            return Outcome(reply, tokens)
        if not reply.unique:
            return Outcome(Rejected("not_unique", f"tag {reply.tag!r}"), tokens)
        out = {**sample, "duration": round(info.duration, 4), "width": info.width,
               "height": info.height, "target_tag": reply.tag.strip(),
               "window": [reply.start_time, reply.end_time],
               "question_template": reply.question}
        if reply.box is not None:
            out["box"], out["box_time"] = list(reply.box), reply.box_time
        return Outcome(out, tokens)
