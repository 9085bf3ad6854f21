"""The evaluator's episode (the env's, plus V2P-Bench's frames-after-question layout) and the
content recorder that lets a remote model see the same turns as ours.

Why a recorder: `MessageFormatter` is a ChatFormatter that records the content the Episode
hands it (user turn, tool responses: captions, round notes, errors and all) instead of
tokenizing it; data/openai_content.py turns each recorded part into OpenAI content parts.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from seeker_jax.env.episode import Episode, EpisodeConfig
from seeker_jax.env.records import SampleRecord
from seeker_jax.models.chat import ChatFormatter, Content, Segment
from seeker_jax.models.processing import preprocess_image


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


__all__ = ["EvalEpisode", "MessageFormatter"]
