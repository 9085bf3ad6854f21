"""Held-out evaluation for the demo and its recipe bench: greedy tool episodes of a checkpoint,
scored with the GRPO reward, a before/after table, one episode written out in full, and a
paired bootstrap interval for an accuracy gain.

Why not `seeker_jax.eval`: the demo must show GRPO's effect with the very reward GRPO trains on
(configs/reward.py, the same RewardModel), on the synthetic world's held-out split, and stay
runnable while the evaluation CLI grows its own protocols.

Conventions: `records` are record dicts with paths relative to `root`; results are
`seeker_jax.agents.rollout.EpisodeResult`s in the same order.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, Sequence

import numpy as np

TABLE_ROWS = (("accuracy", "accuracy", "{:.1%}"), ("mean reward", "reward", "{:.3f}"),
              ("tool calls / episode", "tool_calls_per_episode", "{:.2f}"),
              ("answered", "answered", "{:.1%}"))


@dataclasses.dataclass
class Evaluation:
    """One checkpoint's episodes: summary (TABLE_ROWS keys, episodes, end_reasons),
    per-episode correct (0/1) and reward arrays, and the results themselves."""

    summary: dict[str, Any]
    correct: np.ndarray
    reward: np.ndarray
    results: list


def run_episodes(model, root: str, records: Sequence[dict], ckpt_dir: str, *,
                 batch_size: int = 8, max_len: int = 2048, max_new_tokens: int = 80,
                 temperature: float = 0.0, seed: int = 0):
    """Tool-using episodes of `model` on `records`, in the environment and with the tokenizer
    saved in checkpoint `ckpt_dir` (the frames, prompt and rounds it trained on): greedy, or
    sampled at `temperature` (the policy GRPO trains; reproducible from `seed`).
    Returns (results, RolloutStats)."""
    from seeker_jax.checkpointing import checkpoint as ckpt
    from seeker_jax.env.episode import Episode
    from seeker_jax.env.records import SampleRecord
    from seeker_jax.agents.rollout import Rollout, RolloutConfig, env_sampler
    from seeker_jax.generation.sampling import SamplingParams

    env, tokenizer = ckpt.read_env_config(ckpt_dir), ckpt.read_tokenizer(ckpt_dir)
    formatter, episode_config = env.formatter(tokenizer), env.episode_config()
    episodes = [Episode(SampleRecord.from_dict(r), formatter, root, episode_config)
                for r in records]
    sampler = env_sampler(model, tokenizer, batch_size=min(batch_size, len(records)),
                          max_len=max_len, params=SamplingParams(temperature=temperature))
    rollout = Rollout(sampler, RolloutConfig(max_new_tokens=max_new_tokens,
                                             max_turns=env.max_rounds + 1, num_workers=2))
    return rollout.run(episodes, seed=seed)


def reward_model(preset: str = "paper"):
    """The GRPO reward (configs/reward.py preset), without a judge: open answers by rule."""
    from seeker_jax.configs.reward import reward_group
    from seeker_jax.rl.rewards import RewardConfig, RewardModel

    return RewardModel(RewardConfig.from_config(reward_group(preset)))


def score(results: Sequence[Any], records: Sequence[dict], rewards=None) -> Evaluation:
    """Accuracy (the reward's accuracy component: multiple choice by letter, open answers by
    rule), mean reward, tool calls per episode, answered rate and why episodes ended."""
    from seeker_jax.rl.rewards import from_episode

    if len(results) != len(records):
        raise ValueError(f"score: {len(results)} results for {len(records)} records")
    rewards = rewards or reward_model()
    scores = rewards.score([from_episode(r, rec) for r, rec in zip(results, records)])
    correct = np.array([s["accuracy"] >= 1.0 for s in scores], np.float64)
    reward = np.array([s["reward"] for s in scores], np.float64)
    n = max(len(results), 1)
    summary = {"episodes": len(results), "accuracy": float(correct.sum() / n),
               "reward": float(reward.sum() / n),
               "tool_calls_per_episode": sum(len(r.calls) for r in results) / n,
               "answered": sum(r.answer is not None for r in results) / n,
               "end_reasons": dict(Counter(r.end_reason for r in results))}
    return Evaluation(summary, correct, reward, list(results))


def table(columns: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: one row per TABLE_ROWS metric, one column per named summary."""
    names = list(columns)
    width = max(len(label) for label, _, _ in TABLE_ROWS)
    lines = [" " * width + "".join(f"  {n:>12}" for n in names)]
    for label, key, fmt in TABLE_ROWS:
        lines.append(f"{label:<{width}}" + "".join(f"  {fmt.format(columns[n][key]):>12}"
                                                 for n in names))
    return "\n".join(lines)


def paired_bootstrap(before: np.ndarray, after: np.ndarray, samples: int = 10_000,
                     seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """(mean gain, low, high): the accuracy gain after - before on the same questions, with a
    percentile bootstrap interval resampling questions (pairs kept together)."""
    before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
    if before.shape != after.shape or before.ndim != 1 or not len(before):
        raise ValueError(f"paired_bootstrap: need two equal non-empty 1-D arrays, got "
                         f"{before.shape} and {after.shape}")
    diff = after - before
    idx = np.random.default_rng(seed).integers(0, len(diff), (samples, len(diff)))
    means = diff[idx].mean(1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(diff.mean()), float(low), float(high)


def by_answer(answers: list[str], runs: dict[str, list],
              said: dict[str, list] | None = None) -> dict[str, dict[str, Any]]:
    """Held-out accuracy of each run, split by the question's true answer: {answer: {"n": count,
    run: accuracy, and for each run in `said` (its answers, None where it gave none), "run
    says": its most common answer there}}. Where a teacher's mistakes are systematic
    (configs/synth.py:learn_confuse), this shows which answers SFT got wrong, what it said
    instead, and what GRPO put right."""
    out: dict[str, dict[str, Any]] = {}
    for answer in sorted(set(answers)):
        rows = [i for i, a in enumerate(answers) if a == answer]
        out[answer] = {"n": len(rows), **{name: float(np.mean([correct[i] for i in rows]))
                                          for name, correct in runs.items()}}
        for name, given in (said or {}).items():
            top, count = Counter(str(given[i]) for i in rows).most_common(1)[0]
            out[answer][f"{name} says"] = f"{top} ({count / len(rows):.0%})"
    return out


def replay(result: Any, record: dict, root: str, ckpt_dir: str) -> list[tuple[str, list]]:
    """The episode's turns run again through a fresh Episode (tools are deterministic):
    [(model turn, [Observation per call])]; the last turn (the answer) has none."""
    from seeker_jax.checkpointing import checkpoint as ckpt
    from seeker_jax.env.episode import Episode
    from seeker_jax.env.records import SampleRecord

    env, tokenizer = ckpt.read_env_config(ckpt_dir), ckpt.read_tokenizer(ckpt_dir)
    episode = Episode(SampleRecord.from_dict(record), env.formatter(tokenizer), root,
                      env.episode_config())
    episode.prompt_segment()
    out = []
    for turn in result.turns:
        step = episode.step(turn)
        out.append((turn, step.observations))
        if step.done:
            break
    return out


def describe_episode(result: Any, record: dict, root: str, ckpt_dir: str,
                     width: int = 100) -> list[str]:
    """One episode in full, as lines: the question, each model turn, each tool call's
    response text with the frames it showed (count and times), and the verdict."""
    lines = [f"Q ({record.get('dimension', '?')}, {record.get('duration', '?')} s video, "
             f"{record.get('prompt_type', 'visual prompt')}):"]
    lines += [f"    {q}" for q in str(record["question"]).splitlines()]
    for i, (turn, observations) in enumerate(replay(result, record, root, ckpt_dir)):
        lines.append(f"  model turn {i + 1}: {' '.join(turn.split())[:width * 2]}")
        for obs in observations:
            shown = " ".join(obs.text.split())[:width]
            times = [t for t in obs.frame_times if t is not None]
            seen = (f"{len(obs.frames)} frame(s) at {', '.join(f'{t:.1f}' for t in times)} s"
                    if times else f"{len(obs.frames)} still image(s)")
            lines.append(f"    tool -> {shown}" + ("" if obs.error else f"  [{seen}]"))
    lines.append(f"  answer {result.answer!r}, truth {record['answer']!r} "
                 f"({result.end_reason})")
    return lines


__all__ = ["Evaluation", "TABLE_ROWS", "describe_episode", "paired_bootstrap", "replay",
           "reward_model", "run_episodes", "score", "table"]
