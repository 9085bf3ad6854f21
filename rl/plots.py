"""reward.png and tools.png of a GRPO workdir, drawn from its metrics.jsonl.

  reward.png  reward and accuracy against step (each reward component dashed)
  tools.png   tool-call rate and tool calls per episode against step (tool-use collapse, or
              rewards farmed by calling tools, show here first)
Written by process 0 with matplotlib's file-only Agg backend (no display needed).
"""
from __future__ import annotations

import json
import os
from typing import Sequence

PLOTS = {"reward.png": ("reward", "accuracy"),
         "tools.png": ("tool_call_rate", "tool_calls_per_episode")}


def read_metrics(path: str) -> list[dict]:
    """The rows of a metrics.jsonl (a torn last line, from a kill mid-write, is skipped)."""
    rows = []
    if not os.path.isfile(path):
        return rows
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def series(rows: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the rows that carry `key`."""
    pts = [(int(r["step"]), float(r[key])) for r in rows if key in r]
    return [s for s, _ in pts], [v for _, v in pts]


def write_plots(workdir: str, metrics_file: str = "metrics.jsonl") -> list[str]:
    """Draws the PLOTS from WORKDIR/metrics_file into WORKDIR; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(os.path.join(workdir, metrics_file))
    written = []
    for name, keys in PLOTS.items():
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        for key in keys:
            ax.plot(*series(rows, key), marker=".", label=key)
        if name == "reward.png":
            for key in sorted({k for r in rows for k in r if k.startswith("reward/")}):
                ax.plot(*series(rows, key), linestyle="--", linewidth=0.8, label=key)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = os.path.join(workdir, name)
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


__all__ = ["PLOTS", "read_metrics", "series", "write_plots"]
