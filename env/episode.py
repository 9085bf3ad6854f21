"""One sample's multi-turn episode: prompt, then (model turn -> tool observation)*, then answer.

The caller (the RL rollout engine, the evaluator, the CLI, the SFT trajectory builder) gives
the model's turn as text and, when it has them, its generated ids; the episode returns either
the next observation as a tool-response segment to append, or the final answer. All segments
come from the one formatter (models/chat.py), so every user of the environment sees the same
tokens. Every call is recorded with its latency and error.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Sequence

from transformers import PreTrainedTokenizerBase

from seeker_jax.env.parser import (FormatCheck, ParseError, ToolCall, extract_answer,
                                   parse_tool_calls, validate_trajectory)
from seeker_jax.env.records import SampleRecord
from seeker_jax.env.sandbox import Sandbox
from seeker_jax.env.profiles import DEFAULT_PROFILE, SYSTEM_PROMPT, get_profile, seeker_user_text
from seeker_jax.env.tools import Observation, ToolConfig, ToolRunner
from seeker_jax.env.video import Sampling, VideoError
from seeker_jax.models.chat import ChatFormatter, Content, Segment


@dataclass(frozen=True)
class EpisodeConfig:
    """video: how the whole video in the user turn is sampled; tools: tool settings;
    max_rounds: tool rounds allowed; max_calls_per_turn: calls run per round; profile: the
    prompt profile (env/profiles.py) fixing the texts and layouts.

    Built from the run's config by env/config.py's EnvConfig (`env.episode_config()`), so that
    SFT, rollouts and evaluation of one checkpoint share it.
    """

    video: Sampling = Sampling()
    tools: ToolConfig = ToolConfig()
    max_rounds: int = 5
    max_calls_per_turn: int = 4
    profile: str = DEFAULT_PROFILE

    def __post_init__(self):
        get_profile(self.profile)  # an unknown name fails here, not at the first episode


def make_formatter(tokenizer: PreTrainedTokenizerBase,
                   config: EpisodeConfig = EpisodeConfig()) -> ChatFormatter:
    """The formatter every episode of this config uses (the profile's system prompt + tools)."""
    profile = get_profile(config.profile)
    return ChatFormatter(tokenizer, profile.system_prompt, profile.tools)


@dataclass
class CallRecord:
    round: int
    name: str
    arguments: dict
    latency_s: float
    error: str | None


@dataclass
class StepResult:
    """done: the episode is over (answer given, or it ended without one: see `end_reason`).
    segment: the tool-response segment to append when not done. observations: per call."""

    done: bool
    answer: str | None = None
    segment: Segment | None = None
    observations: list[Observation] = field(default_factory=list)
    end_reason: str = ""


def user_content(record: SampleRecord, video: Content, duration: float) -> Content:
    """The default profile's user turn: the video first (Qwen's order), then where the assets
    are, the question."""
    return [*video, seeker_user_text(record, duration)]


class Episode:
    """State of one sample's episode. Not thread-safe; one per rollout."""

    def __init__(self, record: SampleRecord, formatter: ChatFormatter,
                 root: str | os.PathLike = ".", config: EpisodeConfig = EpisodeConfig()):
        self.record = record
        self.formatter = formatter
        self.config = config
        self.profile = get_profile(config.profile)
        self.tools = ToolRunner(Sandbox(root, record.assets()), config.tools,
                                layout=self.profile.layout,
                                tools=self.profile.tool_names if self.profile.runs_tools else ())
        self.segments: list[Segment] = []
        self.turns: list[str] = []
        self.calls: list[CallRecord] = []
        self.rounds = 0
        self.done = False
        self.answer: str | None = None

    def prompt_segment(self) -> Segment:
        """System + user turn with the sampled video, ending in the assistant header.

        A video that cannot be read is a data error: it raises VideoError (the sample should be
        dropped), unlike tool calls, which never raise.
        """
        video, duration = self.tools.prompt_video(self.record.video_path, self.config.video)
        content = self.profile.user_content(self.record, video, duration)
        segment = self.formatter.system_and_user_segment(content)
        self.segments = [segment]
        return segment

    def step(self, text: str, ids: Sequence[int] | None = None) -> StepResult:
        """Takes the model's turn; returns the observation segment or the end of the episode."""
        if self.done:
            raise RuntimeError("episode is over; start a new one")
        self.turns.append(text)
        self.segments.append(self.formatter.assistant_segment_from_ids(ids) if ids is not None
                             else self.formatter.assistant_segment_from_text(text))
        answer = extract_answer(text)
        if answer is not None:
            return self._end("answer", answer)
        calls = parse_tool_calls(text, self.config.max_calls_per_turn)
        if not calls:
            return self._end("no_tool_call_or_answer")
        if self.rounds >= self.config.max_rounds:
            return self._end("max_rounds")
        self.rounds += 1
        observations = [self._run(call) for call in calls]
        responses = [obs.parts for obs in observations]
        if self.rounds == self.config.max_rounds and self.profile.round_note:
            responses[-1] = [*responses[-1], f"\n(This was tool round {self.rounds} of "
                                             f"{self.config.max_rounds}; answer now.)"]
        segment = self.formatter.tool_response_segment(responses)
        self.segments.append(segment)
        return StepResult(False, segment=segment, observations=observations)

    def _run(self, call: ToolCall | ParseError) -> Observation:
        start = time.perf_counter()
        obs = self.tools.run(call)
        name = call.name if isinstance(call, ToolCall) else "<unparsed>"
        args = call.arguments if isinstance(call, ToolCall) else {"raw": call.raw[:200]}
        self.calls.append(CallRecord(self.rounds, name, args, time.perf_counter() - start,
                                     obs.error))
        return obs

    def _end(self, reason: str, answer: str | None = None) -> StepResult:
        self.done, self.answer = True, answer
        return StepResult(True, answer=answer, end_reason=reason)

    def format_check(self) -> FormatCheck:
        """The format rule over all assistant turns so far (for the format reward)."""
        return validate_trajectory(self.turns)

    @property
    def num_tool_calls(self) -> int:
        return len(self.calls)


__all__ = ["Episode", "EpisodeConfig", "StepResult", "CallRecord", "make_formatter",
           "user_content", "SYSTEM_PROMPT", "VideoError"]
