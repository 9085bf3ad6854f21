"""bench/seek.py's report: per-seed and pooled tables with paired 95% bootstrap intervals, and
the GRPO curves (reward, accuracy, tIoU, tool calls per iteration), from the stage files in a
workdir. `python bench/seek_report.py WORKDIR [SEED ...]` redoes it from those files alone
(default: the seeds of the protocol whose stages WORKDIR holds; W/p3: 7 8 9)."""
from __future__ import annotations

import json
import os
import sys

import numpy as np

CURVES = (("reward", "mean sampled reward"), ("accuracy", "sampled accuracy"),
          ("reward/temporal_iou", "last crop's tIoU"),
          ("tool_calls_per_episode", "tool calls per episode"))


def _load(path: str):
    with open(path) as f:
        return json.load(f)


def _row(label: str, before: dict, after: dict | None, seed_of_interval: int = 0) -> dict:
    from seeker_jax.eval.compare import paired_bootstrap

    def stats(ep):
        return {k: float(np.mean(ep[k])) for k in ("correct", "tiou", "tool_calls", "answered")}

    row = {"run": label, "before": stats(before)}
    if after is not None:
        row["after"] = stats(after)
        gain, low, high = paired_bootstrap(np.array(before["correct"]),
                                           np.array(after["correct"]), seed=seed_of_interval)
        row["gain"], row["ci95"] = gain, [low, high]
    return row


def _md(rows: list[dict]) -> str:
    head = ("| run | accuracy before | after | gain [paired 95% CI] | tIoU before | after | "
            "tool calls before | after | answered after |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        b, a = r["before"], r.get("after", {})
        ci = (f"{r['gain']:+.1%} [{r['ci95'][0]:+.1%}, {r['ci95'][1]:+.1%}]"
              if "gain" in r else "")
        lines.append(f"| {r['run']} | {b['correct']:.1%} | {a.get('correct', float('nan')):.1%} | "
                     f"{ci} | {b['tiou']:.3f} | {a.get('tiou', float('nan')):.3f} | "
                     f"{b['tool_calls']:.2f} | {a.get('tool_calls', float('nan')):.2f} | "
                     f"{a.get('answered', float('nan')):.1%} |")
    return "\n".join(lines)


def _curves(w: str, runs: list[str], out_name: str = "seek_curves") -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4 * len(CURVES), 3.2))
    for name in runs:
        path = os.path.join(w, name, "metrics.jsonl")
        if not os.path.isfile(path):
            continue
        rows = [json.loads(line) for line in open(path)]
        rows = [r for r in rows if "reward" in r]
        for ax, (key, title) in zip(axes, CURVES):
            ax.plot([r["step"] for r in rows], [r.get(key, np.nan) for r in rows], marker="o",
                    ms=3, label=name)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("GRPO iteration", fontsize=8)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    out = os.path.join(w, f"{out_name}.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def report(w: str, seeds, name: str = "report") -> dict:
    """The tables of `seeds`' runs in WORKDIR/NAME.{json,md} and their curves (the protocol's
    seeds: report.*, seek_curves.png; other seeds: NAME.*, NAME_curves.png)."""
    before = _load(os.path.join(w, "before.json"))
    rows, afters = [], []
    for s in seeds:
        path = os.path.join(w, f"grpo_s{s}.json")
        if os.path.isfile(path):
            after = _load(path)
            afters.append(after)
            rows.append(_row(f"GRPO seed {s}", before["tools"], after))
    if afters:
        pooled = {k: np.mean([a[k] for a in afters], axis=0).tolist()
                  for k in ("correct", "tiou", "tool_calls", "answered")}
        rows.append(_row(f"pooled ({len(afters)} seeds: per-question mean)", before["tools"],
                         pooled))
    if os.path.isfile(os.path.join(w, "notool.json")):
        rows.append(_row("no-tool ablation (one turn)", before["one_turn"],
                         _load(os.path.join(w, "notool.json"))))
    if os.path.isfile(os.path.join(w, "tools_off.json")) and "tools_off" in before:
        rows.append(_row("tools-off ablation (every call an error)", before["tools_off"],
                         _load(os.path.join(w, "tools_off.json"))))
    out = {"rows": rows}
    for stage in ("perception", "probes"):
        if os.path.isfile(os.path.join(w, f"{stage}.json")):
            out[stage] = _load(os.path.join(w, f"{stage}.json"))
    md = _md(rows)
    curves = _curves(w, [f"grpo_s{s}" for s in seeds] + ["notool", "tools_off"],
                     "seek_curves" if name == "report" else f"{name}_curves")
    with open(os.path.join(w, f"{name}.json"), "w") as f:
        json.dump(out, f, indent=1)
    with open(os.path.join(w, f"{name}.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    if curves:
        print(f"curves: {curves}")
    return out


def protocol_seeds(w: str) -> tuple[int, ...]:
    """The GRPO seeds of the protocol whose stages live in `w` (bench/seek.py's PROTOCOLS,
    by the folder's name: W/p3 is protocol 3's, W itself protocol 1's)."""
    from seek import PROTOCOLS, SEEDS

    sub = os.path.basename(os.path.normpath(w))
    return next((p.get("seeds", SEEDS) for p in PROTOCOLS.values() if p["sub"] and
                 p["sub"] == sub), SEEDS)


def report_name(seeds, protocol_seeds) -> str:
    """"report" for the protocol's own seeds; report_seeds_A-B-C for runs beyond it."""
    seeds = tuple(seeds)
    return "report" if seeds == tuple(protocol_seeds) else \
        "report_seeds_" + "-".join(map(str, seeds))


if __name__ == "__main__":
    w, own = sys.argv[1], protocol_seeds(sys.argv[1])
    seeds = tuple(map(int, sys.argv[2:])) or own
    report(w, seeds, report_name(seeds, own))
