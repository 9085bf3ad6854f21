"""The optimizer of the trainers: AdamW with warmup + cosine, global-norm clipping, accumulation.

One function so SFT and the GRPO learner build the same chain from the same config group:
  optimizer.lr, warmup_steps, total_steps, final_lr_fraction, weight_decay, b1, b2, eps,
  clip_norm (0 disables), accum_steps (micro-batches per update; 1 disables).
"""
from __future__ import annotations

import ml_collections
import optax


def make_schedule(c: ml_collections.ConfigDict) -> optax.Schedule:
    """Linear warmup from 0 to lr, then cosine to lr * final_lr_fraction at total_steps."""
    warmup = max(int(c.warmup_steps), 0)
    decay = max(int(c.total_steps), warmup + 1)
    return optax.warmup_cosine_decay_schedule(0.0, c.lr, warmup, decay,
                                              end_value=c.lr * c.final_lr_fraction)


def make_optimizer(c: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """AdamW (+ clipping) over optimizer *updates*; accum_steps > 1 wraps it in MultiSteps,
    which averages that many micro-batch gradients and leaves params unchanged in between."""
    chain = []
    if c.clip_norm > 0:
        chain.append(optax.clip_by_global_norm(c.clip_norm))
    chain.append(optax.adamw(make_schedule(c), b1=c.b1, b2=c.b2, eps=c.eps,
                             weight_decay=c.weight_decay))
    tx = optax.chain(*chain)
    if c.accum_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=int(c.accum_steps))
    return tx


__all__ = ["make_optimizer", "make_schedule"]
