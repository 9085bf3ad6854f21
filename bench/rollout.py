"""Rollout figures: how much of the wall time the decoder waits on tools that take 50-300 ms,
and the prompt work per GRPO group with and without prompt sharing.

Episodes here are synthetic (seeker_jax/agents/testing.py, the protocol of
`seeker_jax.agents.rollout`): every turn is forced to make a call until the last, whose tool
sleeps 50-300 ms and returns text and an image. The decoder waits only when every live row is
waiting on a tool. For the group figure, episodes come in groups of --group sharing one
prompt; with sharing the prompt is built, vision-encoded and prefilled once per group and
forked to the group's rows.

    python bench/rollout.py [--episodes 32 --batch 8 --turns 3 --group 4]
"""
from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from seeker_jax.agents.rollout import Rollout, RolloutConfig
from seeker_jax.agents.testing import SleepyEpisode
from seeker_jax.models.qwen3_vl import from_pretrained
from seeker_jax.models.qwen3_vl.tiny import save_tiny_hf
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams

CALL_END = 998  # stands in for </tool_call>: a stop token


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--new", type=int, default=48)
    ap.add_argument("--group", type=int, default=4, help="GRPO group size (<= --batch)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        save_tiny_hf(d)
        model = from_pretrained(d)
    sampler = Sampler(model, batch_size=args.batch, max_len=1024, params=SamplingParams(1.0),
                      stop_token_ids=(CALL_END,), decode_steps=16, max_chunk=128, min_bucket=128)

    def script(i, turn):  # varied lengths
        return [5] * (8 + (7 * i + 3 * turn) % 24) + [CALL_END]

    config = RolloutConfig(max_new_tokens=args.new, max_turns=args.turns)
    for label, latency, n in (("warm-up (compiles)", (0.0, 0.0), args.batch),
                              ("tools 50-300 ms", (0.05, 0.3), args.episodes)):
        episodes = [SleepyEpisode(i, args.turns, latency) for i in range(n)]
        results, stats = Rollout(sampler, config, script, encode=lambda s: []).run(episodes)
        tool_s = sum(sum(e.calls) for e in episodes)
        print(f"{label}: {n} episodes on {args.batch} rows, {stats.turns} turns, "
              f"{len(results)} done ({dict(stats.end_reasons)})")
        print(f"  wall {stats.wall_s:.2f} s; decoder waiting on tools {stats.wait_tools_s:.2f} s "
              f"= {100 * stats.wait_fraction:.1f}% of wall; tool time summed over calls "
              f"{tool_s:.2f} s; decode {stats.decode_s:.2f} s, prefill {stats.prefill_s:.2f} s; "
              f"compilations so far {dict(sampler.compilations)}")

    groups = args.episodes // args.group
    print(f"prompt work per group ({groups} groups of {args.group} on {args.batch} rows, "
          "tools 50-300 ms):")
    for label, group_size in (("warm-up (compiles)", args.group), ("each episode its own", 1),
                              ("shared, forked", args.group)):
        episodes = [SleepyEpisode(i, args.turns, (0.05, 0.3), prompt_seed=i // args.group)
                    for i in range(groups * args.group)]
        _, stats = Rollout(sampler, config, script, encode=lambda s: []).run(
            episodes, group_size=group_size, seed=0)
        if label.startswith("warm-up"):
            continue
        print(f"  {label}: prompts built (video decodes) {stats.prompts_built / groups:.1f}, "
              f"prompt tokens prefilled {stats.prompt_tokens / groups:.0f}, vision tokens "
              f"encoded {stats.prompt_vision_tokens / groups:.0f}, prompt build "
              f"{1e3 * stats.prompt_build_s / groups:.1f} ms, rows forked "
              f"{stats.forked_rows / groups:.1f}; all prefill {stats.prefill_s:.2f} s, wall "
              f"{stats.wall_s:.2f} s")


if __name__ == "__main__":
    main()
