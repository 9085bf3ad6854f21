"""summary.json -> summary.md (a Markdown table) and accuracy.png (bars with 95% intervals)."""
from __future__ import annotations

from pathlib import Path


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _row(name: str, f: dict) -> str:
    ci = f"[{_pct(f['ci95'][0])}, {_pct(f['ci95'][1])}]" if f["ci95"] else "n < 30"
    return (f"| {name} | {f['n']} | {f['correct']} | {_pct(f['accuracy'])} | {ci} | "
            f"{f['unparsable']} | {f['errors']} | {_pct(f['accuracy_parsed_only'])} |")


def markdown(summary: dict) -> str:
    """One table: overall, then each group key's values."""
    lines = [f"# {summary['protocol']} on {summary.get('data', '?')}", "",
             f"model: `{summary.get('model', '?')}`; protocol source: {summary['source']}", "",
             "| figure | n | correct | accuracy % | 95% CI | unparsable | errors | "
             "parsed-only % (inflated) |", "|---|---|---|---|---|---|---|---|",
             _row("overall", summary["overall"])]
    for key, values in summary["by"].items():
        for value, f in values.items():
            lines.append(_row(f"{key}={value}", f))
    lines += ["", "Accuracy counts every sample (unparsable answers and unreadable records are "
              "wrong). \"parsed-only\" drops unparsable answers from the denominator, as "
              "VideoSeeker's eval_all.py does; it inflates accuracy and is shown for comparison "
              "only."]
    return "\n".join(lines) + "\n"


def bar_labels(figures: dict[str, dict]) -> list[str]:
    """"correct/n" for each bar, in order: a group at 0% shows a label where it has no bar."""
    return [f"{f['correct']}/{f['n']}" for f in figures.values()]


def plot(summary: dict, path: str | Path, key: str) -> None:
    """Bars per value of `key` (and overall), with 95% intervals where n >= 30."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {"overall": summary["overall"], **summary["by"].get(key, {})}
    names = list(figures)
    acc = [100 * (f["accuracy"] or 0.0) for f in figures.values()]
    err = [[a - 100 * f["ci95"][0] if f["ci95"] else 0.0 for a, f in zip(acc, figures.values())],
           [100 * f["ci95"][1] - a if f["ci95"] else 0.0 for a, f in zip(acc, figures.values())]]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(names) + 2), 3.5))
    bars = ax.bar(names, acc, yerr=err, capsize=3,
                  color=["#444"] + ["#4a7"] * (len(names) - 1))
    # Each bar says correct/n above it, so a group at 0% still shows that it was there.
    ax.bar_label(bars, labels=bar_labels(figures), padding=2, fontsize=8)
    ax.axhline(0, color="#444", linewidth=1)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 110)
    ax.set_yticks(range(0, 101, 20))
    # Two short lines: the title fits a narrow figure (a one-line title was cut off).
    ax.set_title(f"{summary['protocol']}: accuracy by {key}\n(bars: correct/n; "
                 "95% bootstrap CI where n >= 30)", fontsize=9)
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["bar_labels", "markdown", "plot"]
