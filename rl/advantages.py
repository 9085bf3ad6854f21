"""Advantage estimators and DAPO's episode filters: small pure numpy functions, host side.

An episode is one rollout; episodes answering the same prompt share a `group_id`. Each
estimator maps (rewards (N,), group_ids (N,)) -> advantages (N,) float32, one value per
episode (the learner broadcasts it over the episode's policy tokens). A new estimator is a
registered name, never a new learner:

    @register_advantage("my_estimator")
    def my_estimator(r, groups, n_groups, **params): ...  # r (N,) float64, groups (N,) in 0..G-1

Registered:
  grpo     (r - mean_g) / (max(std_g, std_floor) + eps), std with ddof 1 (torch.std, as TRL
           and verl): a group whose rewards are all equal gets 0 (not 0/0); a group of one
           gets 0. std_floor 0 is the paper's GRPO. Why a floor: dividing by the group's std
           turns a tiny reward difference into a full-size advantage. Eight right answers,
           seven at 0.98 and one at 0.99 (one tool call fewer under parsimony), get -0.35 and
           +2.47: every all-correct group then pushes toward fewer tool calls at full
           strength. With std_floor 0.1 they get -0.0125 and +0.0875, while a group split
           between right and wrong answers (std ~0.4) is normalized as before.
  dr_grpo  r - mean_g (Dr.GRPO: no std; its other half, no length normalization, is the loss
           aggregation "seq_mean_token_sum_norm").
  rloo     r_i - mean_{j != i} r_j = n/(n-1) (r_i - mean_g) (leave-one-out baseline); 0 for a
           group of one.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from seeker_jax.registry import Registry

AdvantageFn = Callable[..., np.ndarray]
# fn(r (N,) float64, groups (N,) int in 0..G-1, n_groups G, **params) -> (N,)
ADVANTAGES: Registry[AdvantageFn] = Registry("advantage estimator")
register_advantage = ADVANTAGES.register
registered_advantages = ADVANTAGES.names


def group_index(group_ids) -> tuple[np.ndarray, int]:
    """Any (N,) group labels (ints, strings) -> (N,) indices 0..G-1 and G."""
    _, index = np.unique(np.asarray(group_ids), return_inverse=True)
    index = index.reshape(-1)
    return index, int(index.max(initial=-1)) + 1


def _check(rewards, group_ids) -> tuple[np.ndarray, np.ndarray, int]:
    r = np.asarray(rewards, np.float64).reshape(-1)
    g = np.asarray(group_ids).reshape(-1)
    if r.shape != g.shape:
        raise ValueError(f"advantages: {r.shape[0]} rewards for {g.shape[0]} group ids; give one "
                         "group id per episode")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"advantages: rewards must be finite, got {r[~np.isfinite(r)][:4]}")
    index, n_groups = group_index(g)
    return r, index, n_groups


def group_stats(r: np.ndarray, groups: np.ndarray, n_groups: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-episode (group size, group mean, group sum of squared deviations), each (N,)."""
    size = np.bincount(groups, minlength=n_groups).astype(np.float64)
    mean = np.bincount(groups, r, n_groups) / size
    dev2 = np.bincount(groups, (r - mean[groups]) ** 2, n_groups)
    return size[groups], mean[groups], dev2[groups]


@register_advantage("grpo")
def grpo_advantages(r: np.ndarray, groups: np.ndarray, n_groups: int, eps: float = 1e-6,
                    ddof: int = 1, std_floor: float = 0.0) -> np.ndarray:
    if std_floor < 0:
        raise ValueError(f"advantages: std_floor must be >= 0 (0: the paper's GRPO), got "
                         f"{std_floor}")
    size, mean, dev2 = group_stats(r, groups, n_groups)
    std = np.sqrt(dev2 / np.maximum(size - ddof, 1.0))
    return np.where(size > 1, (r - mean) / (np.maximum(std, std_floor) + eps), 0.0)


@register_advantage("dr_grpo")
def dr_grpo_advantages(r: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    _, mean, _ = group_stats(r, groups, n_groups)
    return r - mean


@register_advantage("rloo")
def rloo_advantages(r: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    size, mean, _ = group_stats(r, groups, n_groups)
    return np.where(size > 1, (r - mean) * size / np.maximum(size - 1, 1.0), 0.0)


def compute_advantages(name: str, rewards, group_ids, **params) -> np.ndarray:
    """(N,) float32 advantages of the registered estimator `name` (see the module doc)."""
    fn = ADVANTAGES.get(name)
    r, groups, n_groups = _check(rewards, group_ids)
    return np.asarray(fn(r, groups, n_groups, **params), np.float32)


# ---------------------------------------------------------------- DAPO's filters

def dynamic_sampling_keep(rewards, group_ids, atol: float = 0.0) -> np.ndarray:
    """(N,) bool, per EPISODE: True where its group's rewards are not all equal (within atol).

    DAPO's dynamic sampling: a group whose rewards are all equal has advantage 0 everywhere,
    so it only dilutes the batch. The learner keeps `episodes[mask]` and samples more prompts
    until it has enough groups (`kept_groups` lists the survivors).
    """
    r, groups, n_groups = _check(rewards, group_ids)
    hi = np.full(n_groups, -np.inf)
    lo = np.full(n_groups, np.inf)
    np.maximum.at(hi, groups, r)
    np.minimum.at(lo, groups, r)
    return (hi - lo > atol)[groups]


def kept_groups(rewards, group_ids, atol: float = 0.0) -> list:
    """The group ids (as given, first-seen order) that dynamic sampling keeps."""
    keep = dynamic_sampling_keep(rewards, group_ids, atol)
    seen: dict = {}
    for gid, k in zip(np.asarray(group_ids).reshape(-1).tolist(), keep.tolist()):
        if k:
            seen.setdefault(gid, None)
    return list(seen)


def overlong_mask(truncated) -> np.ndarray:
    """(N,) float32 episode weights: 0 for episodes cut by the length limit, else 1.

    DAPO's overlong filtering: a truncated episode never reached its answer, so its reward says
    nothing about its tokens. Multiply it into the episode's loss_weight (or its advantages).
    """
    t = np.asarray(truncated).reshape(-1)
    if t.dtype != np.bool_ and not np.isin(t, (0, 1)).all():
        raise ValueError(f"overlong_mask: truncated must be bools (or 0/1), got {t[:4]}")
    return np.where(t.astype(bool), 0.0, 1.0).astype(np.float32)


__all__ = ["ADVANTAGES", "compute_advantages", "dr_grpo_advantages", "dynamic_sampling_keep", "group_index",
           "group_stats", "grpo_advantages", "kept_groups", "overlong_mask",
           "register_advantage", "registered_advantages", "rloo_advantages"]
