"""Rollout figure: how much of the wall time the decoder waits on tools that take 50-300 ms.

Episodes here are synthetic (the protocol of `seeker_jax.rl.rollout`): every turn is forced to
make a call until the last, whose tool sleeps 50-300 ms and returns text and an image. The
decoder waits only when every live row is waiting on a tool.

    python bench/rollout.py [--episodes 32 --batch 8 --turns 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import numpy as np

from hf_reference import save_tiny_hf
from hf_reference import segment  # segments in hf_reference's token layout
from seeker_jax.models.chat import Segment
from seeker_jax.models.qwen3_vl import from_pretrained
from seeker_jax.rl.rollout import Rollout, RolloutConfig
from seeker_jax.sampler import Sampler
from seeker_jax.sampling import SamplingParams

CALL_END = 998  # stands in for </tool_call>: a stop token



@dataclass
class Result:
    done: bool
    answer: str | None = None
    segment: Segment | None = None
    end_reason: str = ""


class SleepyEpisode:
    def __init__(self, index: int, turns: int, latency: tuple[float, float]):
        self.index, self.turns, self.latency = index, turns, latency
        self.rng = np.random.default_rng(index)
        self.calls = []

    def prompt_segment(self) -> Segment:
        return segment([("text", 60), ("image", (8, 8)), ("text", 10)], self.index)

    def step(self, text, ids):
        if len(self.calls) >= self.turns - 1:
            return Result(True, "A", end_reason="answer")
        seconds = self.rng.uniform(*self.latency)
        time.sleep(seconds)
        self.calls.append(seconds)
        return Result(False, segment=segment([("text", 10), ("image", (8, 8)), ("text", 4)],
                                             1000 * self.index + len(self.calls)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--new", type=int, default=48)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        save_tiny_hf(d)
        model = from_pretrained(d)
    sampler = Sampler(model, batch_size=args.batch, max_len=1024, params=SamplingParams(1.0),
                      stop_token_ids=(CALL_END,), decode_steps=16, max_chunk=128, min_bucket=128)
    script = lambda i, turn: [5] * (8 + (7 * i + 3 * turn) % 24) + [CALL_END]  # varied lengths
    for label, latency, n in (("warm-up (compiles)", (0.0, 0.0), args.batch),
                              ("tools 50-300 ms", (0.05, 0.3), args.episodes)):
        episodes = [SleepyEpisode(i, args.turns, latency) for i in range(n)]
        rollout = Rollout(sampler, RolloutConfig(max_new_tokens=args.new, max_turns=args.turns),
                          script, encode=lambda s: [])
        results, stats = rollout.run(episodes)
        tool_s = sum(sum(e.calls) for e in episodes)
        print(f"{label}: {n} episodes on {args.batch} rows, {stats.turns} turns, "
              f"{len(results)} done ({dict(stats.end_reasons)})")
        print(f"  wall {stats.wall_s:.2f} s; decoder waiting on tools {stats.wait_tools_s:.2f} s "
              f"= {100 * stats.wait_fraction:.1f}% of wall; tool time summed over calls "
              f"{tool_s:.2f} s; decode {stats.decode_s:.2f} s, prefill {stats.prefill_s:.2f} s; "
              f"compilations so far {dict(sampler.compilations)}")


if __name__ == "__main__":
    main()
