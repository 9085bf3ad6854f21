"""Comparing models on the same questions: one model's episodes summed up (`summarize_episodes`),
a before/after table, a paired bootstrap interval for an accuracy gain, and accuracy split by
the true answer. The demo and bench/demo_recipe.py compare SFT with SFT+GRPO this way.

Why paired: both models answer the same questions, so the gain is measured per question and
the interval resamples questions with both answers kept together; two independent intervals
would be far wider than the noise of the difference.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from seeker_jax.eval.runner import Judged

TABLE_ROWS = (("accuracy", "accuracy", "{:.1%}"), ("mean reward", "reward", "{:.3f}"),
              ("tool calls / episode", "tool_calls_per_episode", "{:.2f}"),
              ("answered", "answered", "{:.1%}"))


@dataclass
class Evaluation:
    """One model's scored episodes, in question order: summary (TABLE_ROWS keys, episodes,
    end_reasons), per-episode correct (0/1) and reward arrays, and the episodes."""

    summary: dict[str, Any]
    correct: np.ndarray
    reward: np.ndarray
    judged: list[Judged]


def summarize_episodes(judged: Sequence[Judged], rewards: Sequence[float] | None = None
                       ) -> Evaluation:
    """Accuracy (the protocol's verdicts), mean reward (when the caller scored rewards: the
    evaluator knows no reward; None otherwise), tool calls per episode, the answered rate and
    why episodes ended."""
    if rewards is not None and len(rewards) != len(judged):
        raise ValueError(f"summarize_episodes: {len(rewards)} rewards for {len(judged)} "
                         "episodes")
    correct = np.array([j.correct for j in judged], np.float64)
    reward = np.array(rewards if rewards is not None else [np.nan] * len(judged), np.float64)
    n = max(len(judged), 1)
    outcomes = [j.outcome for j in judged]
    summary = {"episodes": len(judged), "accuracy": float(correct.sum() / n),
               "reward": float(reward.sum() / n) if rewards is not None else None,
               "tool_calls_per_episode": sum(len(o.calls) for o in outcomes) / n,
               "answered": sum(o.answer is not None for o in outcomes) / n,
               "end_reasons": dict(Counter(o.end_reason for o in outcomes))}
    return Evaluation(summary, correct, reward, list(judged))


def table(columns: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: one row per TABLE_ROWS metric, one column per named summary."""
    names = list(columns)
    width = max(len(label) for label, _, _ in TABLE_ROWS)
    lines = [" " * width + "".join(f"  {n:>12}" for n in names)]
    for label, key, fmt in TABLE_ROWS:
        cells = ["-" if columns[n].get(key) is None else fmt.format(columns[n][key])
                 for n in names]
        lines.append(f"{label:<{width}}" + "".join(f"  {c:>12}" for c in cells))
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


__all__ = ["Evaluation", "TABLE_ROWS", "by_answer", "paired_bootstrap", "summarize_episodes",
           "table"]
