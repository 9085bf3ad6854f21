"""Will the GRPO update step fit a TPU pod? seeker_jax.aot.fit's check on the GRPO learner's step.

`seeker-jax aot --config configs/grpo.py:paper_8b --topology v5p:2x2x1`

The core check (seeker_jax.aot.fit.compile_train_step) compiles `train_state.jit_train_step` with
the loss it is given; this module gives it what the GRPO learner (rl.grpo) runs:

- the loss: make_grpo_loss(PolicyLossConfig.from_config(c.loss)) (clipped surrogate, KL, TIS,
  entropy as the config says);
- the per-token (B, K) arrays the learner's batch carries: `advantages` and
  `sampler_logprobs` always (rl.grpo_batch.episodes_batch), `ref_logprobs` when
  loss.kl_coef > 0, `old_logprobs` when rollout.minibatches * rollout.epochs > 1;
- one episode per example: the prompt (the env's video, counted as seeker_jax.aot.fit.video_batch
  counts it, + `text_tokens` of system prompt, tools and question) and a response of
  rollout.max_new_tokens tokens, every one a loss position (K = the response rounded up to
  the learner's multiple, one turn rounded up to 16; tool outputs are masked in training, so
  this is the upper bound), padded to the learner's bucket (c.rollout.buckets).

The per-chip batch is batch_per_chip episodes (default 1): a GRPO iteration's
prompts_per_step * n / minibatches episodes take that many / (batch_per_chip * data * fsdp)
gradient-accumulation micro-steps (optimizer.accum_steps); the report says how many.
The frozen reference's forward (ref_logprobs) is a separate jit, not part of this step.
"""
from __future__ import annotations

from typing import Any

import ml_collections

from seeker_jax.aot.fit import compile_train_step
from seeker_jax.rl.grpo_batch import turn_loss_len
from seeker_jax.rl.policy_loss import PolicyLossConfig, make_grpo_loss


def is_grpo_config(c: ml_collections.ConfigDict) -> bool:
    """A GRPO config (configs/grpo.py) has a loss group and a rollout group."""
    return "loss" in c and "rollout" in c


def grpo_per_token(c: ml_collections.ConfigDict) -> tuple[str, ...]:
    """Names of the (B, K) arrays the GRPO learner's step batch carries (see rl.grpo)."""
    names = ["advantages", "sampler_logprobs"]
    if PolicyLossConfig.from_config(c.loss).needs_reference:
        names.append("ref_logprobs")
    if c.rollout.minibatches * c.rollout.epochs > 1:
        names.append("old_logprobs")
    return tuple(names)


def response_loss_len(response_tokens: int, max_new_tokens: int) -> int:
    """K: every response token is a loss position, rounded up to the learner's multiple
    (rl.grpo_batch.turn_loss_len of max_new_tokens)."""
    multiple = turn_loss_len(max_new_tokens)
    return -(-int(response_tokens) // multiple) * multiple


def compile_grpo_step(c: ml_collections.ConfigDict, topology: str, batch_per_chip: int = 1,
                      frames: int | None = None, seq_len: int | None = None,
                      text_tokens: int = 1024, max_pixels: int | None = None,
                      response_tokens: int | None = None, cost: bool = True) -> dict[str, Any]:
    """Compiles the GRPO update step of config `c` for `topology`; the figures of
    seeker_jax.aot.fit.compile_train_step plus the rollout's episodes per optimizer step.

    text_tokens: the prompt's text (system, tools, question); response_tokens: default
    c.rollout.max_new_tokens (4096 in the paper's presets); cost: as compile_train_step's.
    """
    if not is_grpo_config(c):
        raise ValueError("compile_grpo_step needs a GRPO config (configs/grpo.py: c.loss and "
                         "c.rollout); for SFT use seeker_jax.aot.fit.compile_train_step")
    r = c.rollout
    response = int(r.max_new_tokens if response_tokens is None else response_tokens)
    loss = make_grpo_loss(PolicyLossConfig.from_config(c.loss))
    figures = compile_train_step(
        c, topology, batch_per_chip, frames=frames, seq_len=seq_len,
        text_tokens=text_tokens + response, max_pixels=max_pixels,
        loss_len=response_loss_len(response, int(r.max_new_tokens)), loss_fn=loss,
        per_token=grpo_per_token(c),
        step="GRPO", buckets=tuple(r.buckets), cost=cost)
    episodes = r.prompts_per_step * r.n // r.minibatches
    figures.update(response_tokens=response, prompt_text_tokens=text_tokens,
                   episodes_per_update=episodes,
                   micro_steps_per_update=-(-episodes // figures["global_batch"]))
    figures["notes"] = [
        f"GRPO: {response}-token responses (all loss positions) after a {text_tokens}-token "
        f"prompt text; an update of {episodes} episodes = {figures['micro_steps_per_update']} "
        f"steps of {figures['global_batch']} (optimizer.accum_steps)"]
    return figures


__all__ = ["compile_grpo_step", "grpo_per_token", "is_grpo_config",
           "response_loss_len"]
