"""What a GRPO run checks before and while it runs: the config (presets hold to what they
claim, budgets that divide), host memory for the log-prob passes, and the share of prompts
skipped as bad samples. Each check stops the run with one line saying what to change."""
from __future__ import annotations

import ml_collections

from seeker_jax.config import ConfigArgumentError
from seeker_jax.errors import UserError
from seeker_jax.rl.grpo_batch import minibatch_slices
from seeker_jax.rl.policy_loss import PolicyLossConfig

def check_skips(seen: dict, max_fraction: float, iteration: int) -> None:
    """Stops the run, saying why, once more than max_fraction of its prompts were skipped as
    bad samples (seen: {"prompts": rolled out, "skipped": {why: count}} since the run began)."""
    skipped = sum(seen["skipped"].values())
    if seen["prompts"] and skipped > max_fraction * seen["prompts"]:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(seen["skipped"].items()))
        raise UserError(
            f"GRPO stopped at iteration {iteration}: {skipped} of its {seen['prompts']} prompts "
            f"({skipped / seen['prompts']:.0%}) were skipped as bad samples ({why}), more than "
            f"rollout.max_skip_fraction={max_fraction}. The log names each skipped record: fix "
            f"or remove them (prompt_too_long: raise rollout.max_len or shorten the prompt; "
            f"bad_video: a missing or unreadable video; tool_raised: a bug in a tool, with its "
            f"traceback), or raise --config.rollout.max_skip_fraction")


def check_config(config: ml_collections.ConfigDict, loss: PolicyLossConfig) -> None:
    """Mismatches that would train on the wrong quantity, as errors saying what to set
    (ConfigArgumentError: the CLI prints one line and exits 2)."""
    from seeker_jax.configs.grpo import paper_deviations

    bad = ConfigArgumentError
    r = config.rollout
    scored = r.temperature if r.temperature > 0 else 1.0  # greedy rollouts are scored at T=1
    if abs(loss.temperature - scored) > 1e-9:
        raise bad(f"loss.temperature {loss.temperature} must be the rollout's sampling "
                  f"temperature {scored} (the learner scores the sampler's policy): set "
                  f"--config.loss.temperature={scored}")
    rows = r.batch_size or r.prompts_per_step * r.n
    if rows < r.n:
        raise bad(f"rollout.batch_size {rows} must hold a group of n={r.n} rows")
    if max(r.buckets) < r.max_len:
        raise bad(f"rollout.buckets {tuple(r.buckets)} must reach rollout.max_len {r.max_len}: "
                  "an episode may fill its row")
    minibatch_slices(r.prompts_per_step * r.n, r.minibatches)
    accum = int(config.optimizer.accum_steps)
    if accum < 1 or r.minibatches % accum:
        raise bad(f"optimizer.accum_steps {accum} must divide rollout.minibatches "
                  f"{r.minibatches}: otherwise an optimizer step would sum minibatches of two "
                  "iterations (two policies, one stale); set accum_steps to a divisor of "
                  "minibatches")
    if r.max_refills < 0:
        raise bad(f"rollout.max_refills must be >= 0, got {r.max_refills}")
    if not 0 <= r.max_skip_fraction <= 1:
        raise bad(f"rollout.max_skip_fraction must be in [0, 1], got {r.max_skip_fraction}")
    if not 0 <= r.max_response_tokens < r.max_len:
        raise bad(f"rollout.max_response_tokens {r.max_response_tokens} must be in "
                  f"[0, max_len {r.max_len}) (0: no per-episode cap)")
    preset = str(config.get("preset", ""))
    if preset.startswith("paper"):
        off = paper_deviations(config)
        if off:
            raise bad(f"configs/grpo.py:{preset} is the paper's recipe and this run changes "
                      f"it ({'; '.join(off)}): use configs/grpo.py:seeker_"
                      f"{preset.split('_')[-1]} to change them")


# Live copies of a chunk's logits in the update's backward (logits, softmax, the logit
# gradient, a fused temporary): the host-memory check counts all of them, since on a CPU the
# kernel kills an update that runs out of memory without a message. The scoring passes
# (reference and old log-probs: reference_logprobs with the loss's `scoring`) project the same
# minibatch rows loss.chunk positions at a time, forward only, so they hold fewer: this bound
# covers every pass.
PROJECTION_COPIES = 4


def projection_bytes(rows: int, chunk: int, vocab: int) -> int:
    """Bytes of one vocabulary-projection chunk's float32 logits, (rows, chunk, vocab)."""
    return rows * chunk * vocab * 4


def check_host_memory(config: ml_collections.ConfigDict, loss: PolicyLossConfig, vocab: int,
                      host_bytes: int) -> None:
    """On a CPU backend the update's temporaries are host memory (every device's: the CPU
    devices share it), and a process the kernel kills for it dies without a word: raise, saying
    what to lower, when PROJECTION_COPIES of a chunk's logits (a minibatch's rows x loss.chunk
    x vocab) pass 3/4 of it. Every pass (the update, the reference and old log-probs) projects
    loss.chunk positions at a time, so this one bound covers them all."""
    r = config.rollout
    rows = max(s.stop - s.start for s in minibatch_slices(r.prompts_per_step * r.n,
                                                          r.minibatches))
    copies = PROJECTION_COPIES
    need = copies * projection_bytes(rows, loss.chunk, vocab)
    if need > 0.75 * host_bytes:
        fit = int(0.75 * host_bytes // (copies * projection_bytes(rows, 1, vocab)))
        raise ValueError(
            f"the GRPO update needs about {need / 2**30:.1f} GiB for the vocabulary projection "
            f"({copies} copies of ({rows} rows, {loss.chunk} positions, {vocab}) "
            f"float32 logits) and this host has {host_bytes / 2**30:.1f} GiB: set "
            f"--config.loss.chunk={max(fit, 1)} or lower, or more rollout.minibatches (with "
            f"optimizer.accum_steps to keep one step per iteration)")
