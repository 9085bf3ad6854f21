"""Accuracy figures from scored samples: overall, per group value, with bootstrap intervals.

Every sample counts: an unparsable or missing answer, and a record that could not be read,
are wrong. The count of unparsable answers is reported, and so is the figure VideoSeeker's
eval_all.py prints (unparsable answers dropped from the denominator), labelled as inflated.

A 95% percentile bootstrap interval is given for every figure with n >= 30 (resampling the
figure's own samples with replacement, `resamples` times, a fixed seed so reruns agree).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

MIN_N_FOR_INTERVAL = 30


@dataclass(frozen=True)
class Scored:
    """One sample's outcome: its groups, whether it is right, whether its answer was readable,
    and whether it failed before any answer (an unreadable record, a video that fails)."""

    id: str
    groups: Mapping[str, str]
    correct: bool
    parsed: bool
    error: bool = False


def bootstrap_interval(correct: np.ndarray, resamples: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap of the mean of a 0/1 vector (n,); None when n < 30."""
    n = len(correct)
    if n < MIN_N_FOR_INTERVAL:
        return None
    rng = np.random.default_rng(seed)
    means = correct[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def figure(items: list[Scored], resamples: int = 2000, seed: int = 0) -> dict:
    """n, correct, accuracy (all samples), unparsable, errors, the interval, and the accuracy
    over parsed answers only (what VideoSeeker's eval_all.py reports: inflated)."""
    n = len(items)
    correct = np.array([s.correct for s in items], np.float64)
    parsed = sum(s.parsed for s in items)
    right = int(correct.sum())
    interval = bootstrap_interval(correct, resamples, seed)
    return {"n": n, "correct": right, "accuracy": right / n if n else None,
            "unparsable": n - parsed - sum(s.error for s in items),
            "errors": sum(s.error for s in items),
            "ci95": list(interval) if interval else None,
            "accuracy_parsed_only": right / parsed if parsed else None}


def summarize(items: Iterable[Scored], group_keys: Iterable[str], resamples: int = 2000,
              seed: int = 0) -> dict:
    """{"overall": figure, "by": {key: {value: figure}}}; group values sorted by name."""
    items = list(items)
    by: dict[str, dict[str, dict]] = {}
    for key in group_keys:
        values = sorted({s.groups.get(key, "unknown") for s in items})
        by[key] = {v: figure([s for s in items if s.groups.get(key, "unknown") == v],
                             resamples, seed) for v in values}
    return {"overall": figure(items, resamples, seed), "by": by}


__all__ = ["MIN_N_FOR_INTERVAL", "Scored", "bootstrap_interval", "figure", "summarize"]
