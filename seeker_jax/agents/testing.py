"""A synthetic episode for rollout tests and bench/rollout.py (the protocol of
seeker_jax.agents.rollout): a prompt of text and an image, then observations (text and an image)
that arrive after a random sleep, standing in for tools that take 50-300 ms.

In the package (like env/testing.py) because bench/ must not import tests/. Its segments are
in the tiny model's "test" vocabulary (models/qwen3_vl/tiny.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from seeker_jax.checkpointing.tiny import tiny_segment as segment
from seeker_jax.models.chat import Segment

PROMPT = [("text", 60), ("image", (8, 8)), ("text", 10)]
OBSERVATION = [("text", 10), ("image", (8, 8)), ("text", 4)]


@dataclass
class Result:
    done: bool
    answer: str | None = None
    segment: Segment | None = None
    end_reason: str = ""


class SleepyEpisode:
    """Episode `index`: `turns` model turns, an observation after each but the last.

    prompt_seed picks the prompt's tokens and pixels (episodes of one GRPO group share it);
    sleep_seed picks the tool latencies, uniform in `latency` seconds, and nothing else: runs
    that differ only in sleep_seed must sample the same tokens.
    """

    def __init__(self, index: int, turns: int, latency: tuple[float, float] = (0.0, 0.0),
                 prompt_seed: int | None = None, sleep_seed: int = 0,
                 prompt_parts=PROMPT, observation_parts=OBSERVATION):
        self.index, self.turns, self.latency = index, turns, latency
        self.prompt_seed = index if prompt_seed is None else prompt_seed
        self.rng = np.random.default_rng([sleep_seed, index])
        self.prompt_parts, self.observation_parts = prompt_parts, observation_parts
        self.calls: list[float] = []
        self.prompt_builds = 0

    def prompt_segment(self) -> Segment:
        self.prompt_builds += 1
        return segment(self.prompt_parts, self.prompt_seed)

    def step(self, text, ids):
        if len(self.calls) >= self.turns - 1:
            return Result(True, "A", end_reason="answer")
        seconds = float(self.rng.uniform(*self.latency))
        time.sleep(seconds)
        self.calls.append(seconds)
        return Result(False, segment=segment(self.observation_parts,
                                             1000 * self.index + len(self.calls)))
