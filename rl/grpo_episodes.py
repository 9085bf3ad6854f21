"""A few of a GRPO iteration's episodes, for a person to read: every `viewer_every` iterations
(and at the last) `viewer_episodes` episodes, drawn at random from those rolled out (never the
masked stand-ins), go to WORKDIR/episodes/iteration_<N>.html (seeker_jax/eval/viewer.py: the
question, the marked frame, each turn, the frames each tool call returned, answer vs truth,
the reward, its parts and the advantage) and to TensorBoard as text (tag episodes/<k>).

Why sampled and not all: a run rolls out thousands of episodes per hour; a handful per log
point shows what the policy does (tool use, format drift, answers) at the cost of re-reading
a few crops. The draw is a pure function of (seed, iteration), so a resumed run shows the
same episodes.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from seeker_jax.env.episode import EpisodeConfig
from seeker_jax.eval.viewer import EpisodeView, episode_text, from_rollout, write_viewer

FOLDER = "episodes"
PLOTS = ("reward.png", "tools.png")


def sample_indices(real: np.ndarray, k: int, seed: int, iteration: int) -> list[int]:
    """Up to k indices of the episodes marked True in `real` (N,), drawn without replacement
    from (seed, iteration); sorted."""
    pool = np.flatnonzero(np.asarray(real, bool))
    if k <= 0 or not len(pool):
        return []
    rng = np.random.default_rng([seed, iteration])
    return sorted(int(i) for i in rng.choice(pool, min(k, len(pool)), replace=False))


def views(results: Sequence[Any], records: Sequence[dict], scores: Sequence[dict],
          advantages: np.ndarray, picked: Sequence[int], group_size: int, root: str,
          iteration: int) -> list[EpisodeView]:
    """The picked episodes as viewer episodes; id `it<iteration>/g<group>/e<member>`, the
    group in the filters, the advantage beside the reward parts."""
    out = []
    for i in picked:
        group, member = divmod(i, group_size)
        score = {**scores[i], "advantage": float(advantages[i])}
        view = from_rollout(results[i], records[i], root, score,
                            name=f"it{iteration}/g{group}/e{member}")
        view.groups["group"] = str(group)
        out.append(view)
    return out


def log_episodes(batch: Any, advantages: np.ndarray, *, iteration: int, seed: int, k: int,
                 group_size: int, root: str, config: EpisodeConfig, workdir: str, writer: Any,
                 max_bytes: int) -> Path | None:
    """Writes the iteration's sampled episodes (module doc) of `batch` (rl.grpo.Collected),
    their frames re-read under `config` (the rollout's): the page, and one TensorBoard text
    each through `writer.text` (MetricsWriter). Returns the page's path (None: no episode)."""
    picked = sample_indices(batch.real, k, seed, iteration)
    if not picked:
        return None
    shown = views(batch.results, batch.records, batch.scores, advantages, picked, group_size,
                  root, iteration)
    os.makedirs(os.path.join(workdir, FOLDER), exist_ok=True)
    path = Path(workdir) / FOLDER / f"iteration_{iteration:06d}.html"
    images = write_viewer(
        shown, config, path,
        title=f"GRPO iteration {iteration}: {len(shown)} sampled episodes",
        meta={"workdir": os.path.abspath(workdir), "iteration": str(iteration),
              "episodes": f"{len(shown)} of {int(np.sum(batch.real))}, drawn at random"},
        plots=[os.path.join(workdir, p) for p in PLOTS], max_bytes=max_bytes)
    for slot, (view, seen) in enumerate(zip(shown, images)):
        writer.text(iteration, f"episodes/{slot}", episode_text(view, seen))
    return path


__all__ = ["FOLDER", "log_episodes", "sample_indices", "views"]
