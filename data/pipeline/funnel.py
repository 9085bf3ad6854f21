"""The funnel of a run: counts in and out per stage, rejections by reason with examples, time
and API tokens per stage, as funnel.json, funnel.md (a Markdown table) and funnel.png."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from seeker_jax.data.pipeline.runner import StageReport


def funnel(reports: Sequence[StageReport]) -> dict[str, Any]:
    return {"stages": [r.to_dict() for r in reports],
            "counts": [reports[0].num_in] + [r.num_out for r in reports] if reports else []}


def markdown(data: dict[str, Any]) -> str:
    rows = ["| stage | in | out | kept % | rejected (reason: count) | seconds | API tokens |",
            "|---|---:|---:|---:|---|---:|---:|"]
    for s in data["stages"]:
        kept = 100.0 * s["num_out"] / s["num_in"] if s["num_in"] else 0.0
        why = ", ".join(f"{k}: {v}" for k, v in s["rejected"].items()) or "-"
        rows.append(f"| {s['name']} | {s['num_in']} | {s['num_out']} | {kept:.1f} | {why} | "
                    f"{s['seconds']:.2f} | {s['tokens']} |")
    lines = ["# Pipeline funnel", "", " -> ".join(str(c) for c in data["counts"]), "", *rows, ""]
    for s in data["stages"]:
        for reason, examples in s["examples"].items():
            lines.append(f"- {s['name']} / {reason}: " + "; ".join(
                f"`{e['id']}`: {e['detail'][:120]}" for e in examples))
    return "\n".join(lines) + "\n"


def plot(data: dict[str, Any], path: str | os.PathLike) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["input"] + [s["name"] for s in data["stages"]]
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 3.2))
    bars = ax.bar(names, data["counts"], color="#4878a8")
    ax.bar_label(bars, [str(c) for c in data["counts"]])
    ax.set_ylabel("samples")
    ax.set_title("pipeline funnel")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_funnel(reports: Sequence[StageReport], workdir: str | os.PathLike) -> dict[str, Any]:
    workdir = Path(workdir)
    data = funnel(reports)
    (workdir / "funnel.json").write_text(json.dumps(data, indent=1, sort_keys=True))
    (workdir / "funnel.md").write_text(markdown(data))
    plot(data, workdir / "funnel.png")
    return data
