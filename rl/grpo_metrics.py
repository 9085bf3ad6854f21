"""What one GRPO iteration logs (pure functions of its episodes, scores and update metrics).

Rollout side, means over the iteration's episodes:
  reward, reward/<component>   the weighted reward and each component (rl.rewards.summarize)
  accuracy                     reward/accuracy's mean (the answer's score, 0..1)
  tool_call_rate               fraction of episodes with at least one well-formed tool call
  tool_calls_per_episode       well-formed calls (what parsimony counts)
  malformed_calls_per_episode  calls the environment could not parse (never parsimony's)
  turns, response_length (policy-sampled tokens per episode)
  end_reason/<why>             fraction of episodes that ended that way
  tools/reward_with, tools/reward_without, tools/accuracy_with, tools/accuracy_without
                               reward and accuracy means over the episodes that called a tool
                               / none (absent when there are none)
  tools/advantage_with         the tool episodes' advantages, summed, over the episode count:
                               which way the update pushes the choice to call a tool. For a
                               first-token choice the context barely changes, the policy
                               gradient on its logit is the sum of the advantages of the
                               episodes that took it (the advantages of a group sum to 0), so
                               > 0 raises the tool-call rate and < 0 lowers it.
  dropped_groups               groups dynamic sampling dropped (all rewards equal)
Update side, means over the iteration's optimizer steps: loss, pg_loss, kl, clip_frac,
entropy, sampler_learner_gap, grad_norm, ...: whatever scalar the loss reports.
Times (seconds): rollout_s (prefill_s and decode_s inside it; tool_wait_s: every live row
awaited a tool), reward_s, update_s (logprobs_s: batching and the reference / old log-probs;
optimizer_s: the optimizer steps), refresh_s (the sampler loading the new weights),
iteration_s.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np

from seeker_jax.rl.rewards import summarize
from seeker_jax.rl.rewards.context import UNPARSED


def episode_metrics(results: Sequence[Any], scores: Sequence[Mapping[str, float]],
                    advantages: np.ndarray | None = None) -> dict[str, float]:
    """Rollout metrics of finished episodes (rl.rollout.EpisodeResult), their scores and
    (optionally) advantages; see the module doc."""
    n = max(len(results), 1)
    calls = np.array([sum(getattr(c, "name", None) != UNPARSED for c in r.calls)
                      for r in results], np.float64)
    malformed = sum(getattr(c, "name", None) == UNPARSED for r in results for c in r.calls)
    out = {"reward": float(np.mean([s["reward"] for s in scores])) if scores else 0.0,
           **summarize(scores)}
    out["accuracy"] = out.get("reward/accuracy", 0.0)
    out["tool_call_rate"] = float((calls > 0).sum() / n)
    out["tool_calls_per_episode"] = float(calls.sum() / n)
    out["malformed_calls_per_episode"] = float(malformed / n)
    out["turns"] = float(sum(len(r.turns) for r in results) / n)
    out["response_length"] = float(sum(int(np.sum(r.conversation.policy_mask))
                                       for r in results) / n)
    for reason, count in sorted(Counter(r.end_reason for r in results).items()):
        out[f"end_reason/{reason}"] = count / n
    out.update(by_tool_use(calls > 0, scores, advantages))
    return out


def by_tool_use(used: np.ndarray, scores: Sequence[Mapping[str, float]],
                advantages: np.ndarray | None = None) -> dict[str, float]:
    """Mean reward and accuracy of the episodes that called a tool and of those that did not
    (a side with no episode is left out), and the tool episodes' summed advantage over the
    episode count (module doc)."""
    out: dict[str, float] = {}
    for side, mask in (("with", used), ("without", ~used)):
        if mask.any():
            picked = [s for s, m in zip(scores, mask) if m]
            out[f"tools/reward_{side}"] = float(np.mean([s["reward"] for s in picked]))
            out[f"tools/accuracy_{side}"] = float(np.mean([s.get("accuracy", 0.0)
                                                           for s in picked]))
    if advantages is not None and len(used):
        out["tools/advantage_with"] = float(np.asarray(advantages)[used].sum() / len(used))
    return out


def mean_update_metrics(steps: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Means over optimizer steps of every scalar metric the train step returned."""
    if not steps:
        return {}
    keys = [k for k in steps[0] if np.ndim(steps[0][k]) == 0]
    return {k: float(np.mean([float(s[k]) for s in steps])) for k in keys}


__all__ = ["by_tool_use", "episode_metrics", "mean_update_metrics"]
