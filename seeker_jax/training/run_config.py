"""A training workdir's config.json is the config its checkpoints were made under: a resume
(SFT or GRPO, the same command again) must run under the same config, or say so.

`check_resume_config` compares the new config with WORKDIR/config.json when the workdir holds
a checkpoint. Keys that change how long a run goes, how often it logs or saves, or how fast it
feeds data (RESUMABLE_KEYS) may change; the learning-rate schedule does not follow `steps`
(it follows optimizer.total_steps), so raising the step budget continues the same run. Any
other difference is an error naming it, unless `allow_change`; then the old config.json is
kept beside the new one as config.before_step<N>.json, never silently overwritten.
"""
from __future__ import annotations

import json
import os
import shutil

import ml_collections

from seeker_jax.config import differences
from seeker_jax.errors import UserError

# Leaves (dotted) a resume may change without --allow-config-change.
RESUMABLE_KEYS = ("steps", "log_every", "eval_every", "plot_every", "checkpoint_every",
                  "keep_checkpoints", "data.prefetch", "rollout.num_workers")


def latest_checkpoint_step(workdir: str) -> int | None:
    """The largest step folder under WORKDIR/checkpoints (None: no checkpoint yet)."""
    root = os.path.join(workdir, "checkpoints")
    steps = [int(n) for n in os.listdir(root) if n.isdigit()] if os.path.isdir(root) else []
    return max(steps) if steps else None


def _without(tree: dict, keys) -> dict:
    tree = json.loads(json.dumps(tree, default=list))
    for key in keys:
        *parents, leaf = key.split(".")
        node = tree
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return tree


def check_resume_config(workdir: str, config: ml_collections.ConfigDict, command: str,
                        allow_change: bool = False) -> None:
    """Raises UserError when `workdir` holds a checkpoint made under another config (but the
    RESUMABLE_KEYS), naming each difference; with `allow_change` it keeps the old
    config.json as config.before_step<N>.json and prints what changed."""
    path = os.path.join(workdir, "config.json")
    step = latest_checkpoint_step(workdir)
    if step is None or not os.path.isfile(path):
        return
    with open(path) as f:
        old = json.load(f)
    changed = differences(_without(old, RESUMABLE_KEYS),
                          _without(config.to_dict(), RESUMABLE_KEYS))
    if not changed:
        return
    what = "; ".join(changed)
    if not allow_change:
        raise UserError(f"{command}: {workdir} holds a run at step {step} made under another "
                        f"config ({what}); rerun with the same config to resume, give a new "
                        "--workdir to start afresh, or --allow-config-change to resume under "
                        "this one")
    kept = os.path.join(workdir, f"config.before_step{step}.json")
    shutil.copyfile(path, kept)
    print(f"{command}: resuming step {step} under a changed config ({what}); the old one is "
          f"kept as {kept}", flush=True)


__all__ = ["RESUMABLE_KEYS", "check_resume_config", "latest_checkpoint_step"]
