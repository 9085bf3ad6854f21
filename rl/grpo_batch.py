"""Finished GRPO episodes -> the learner's minibatches (host side, pure numpy).

Each episode's conversation is one row: its policy-sampled tokens are the learned tokens
(collate's loss_mask), the episode's advantage is broadcast over them, and the sampler's
recorded log-probs ride along (`sampler_logprobs`: the sampler-learner gap, TIS). An episode
the overlong filter drops keeps its row but learns nothing (policy mask zeroed), so the batch
shape does not depend on which episodes were cut.

The loss positions per row (K) come in multiples of one model turn (`turn_loss_len`), not of
collate's default 128: a 48-token turn projects 48 positions onto the vocabulary, not 128
(that projection is most of a small model's update), and K still takes at most max_turns
values in a run.

Minibatches split the episodes into `minibatches` contiguous, near-equal parts in episode
order; every process does the same on its own episodes.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from seeker_jax.generation.conversation import Conversation
from seeker_jax.data.batch import LOSS_MULTIPLE, Batch, collate


LOSS_ROUND = 16  # K's granularity within a turn: keeps shapes aligned for every backend


def turn_loss_len(max_new_tokens: int) -> int:
    """K's multiple for GRPO batches: one model turn (max_new_tokens) rounded up to 16."""
    if int(max_new_tokens) < 1:
        raise ValueError(f"rollout.max_new_tokens must be >= 1, got {max_new_tokens}")
    return -(-int(max_new_tokens) // LOSS_ROUND) * LOSS_ROUND


def minibatch_slices(num_episodes: int, minibatches: int) -> list[slice]:
    """`minibatches` contiguous slices covering range(num_episodes), sizes differing by <= 1."""
    if not 1 <= minibatches <= max(num_episodes, 1):
        raise ValueError(f"rollout.minibatches {minibatches} must be in [1, {num_episodes}] "
                         f"(the episodes of one iteration on this process)")
    bounds = np.linspace(0, num_episodes, minibatches + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def masked(conv: Conversation, keep: bool) -> Conversation:
    """The conversation itself, or a copy that learns nothing (policy mask 0)."""
    if keep:
        return conv
    return dataclasses.replace(conv, policy_mask=np.zeros_like(conv.policy_mask))


def episodes_batch(conversations: Sequence[Conversation], advantages: np.ndarray,
                   buckets: Sequence[int], keep: np.ndarray | None = None,
                   loss_multiple: int = LOSS_MULTIPLE) -> Batch:
    """One Batch of rollout conversations: advantages (N,) broadcast per token, the sampler's
    log-probs as sampler_logprobs; keep (N,) bool zeroes the learned tokens of dropped rows.
    loss_multiple: K's multiple (the learner passes turn_loss_len(rollout.max_new_tokens))."""
    advantages = np.asarray(advantages, np.float32).reshape(-1)
    if len(advantages) != len(conversations):
        raise ValueError(f"episodes_batch: {len(advantages)} advantages for "
                         f"{len(conversations)} episodes")
    keep = np.ones(len(conversations), bool) if keep is None else np.asarray(keep, bool)
    convs = [masked(c, bool(k)) for c, k in zip(conversations, keep)]
    per_token = {
        "advantages": [np.full(len(c.input_ids), a, np.float32) for c, a in zip(convs, advantages)],
        "sampler_logprobs": [np.asarray(c.logprobs, np.float32) for c in convs],
    }
    return collate(convs, tuple(buckets), multiple=loss_multiple, per_token=per_token)


__all__ = ["LOSS_ROUND", "episodes_batch", "masked", "minibatch_slices", "turn_loss_len"]
