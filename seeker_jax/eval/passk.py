"""The pass@k filter that builds the RL split (`seeker-jax passk --ckpt C --data D --k 8`).

VideoSeeker keeps for RL the questions its SFT model solves sometimes: a question solved by
all k samples teaches nothing (every advantage is 0), nor one never solved. `passk_filter` is
the pure part (per-question success counts -> kept ids and the funnel); `rollout_successes`
runs k sampled episodes per question with a checkpoint, in its own environment, through the
evaluator (protocol "answer": a success is an answer env/grading.py judges right, GRPO's
accuracy rule without a judge). `build_rl_split` writes the kept records as
D/records/<out_split>.array_record beside the others (paths stay relative to D), and the
funnel as D/passk_<out_split>.json.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, Sequence

from seeker_jax.agents.policy import load_policy
from seeker_jax.eval.models import InProcessBackend
from seeker_jax.eval.protocols import get_protocol
from seeker_jax.eval.readers import samples_from_records
from seeker_jax.eval.runner import evaluate


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from c successes in n samples: 1 - C(n - c, k) / C(n, k) (Chen et al.)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


def passk_filter(successes: Mapping[str, tuple[int, int]]) -> tuple[list[str], dict[str, Any]]:
    """{question id: (successes c, samples n)} -> (kept ids in input order, funnel).

    Kept: 0 < c < n. Funnel: questions, never_solved, always_solved, kept, and the mean
    pass@1 and pass@n over all questions.
    """
    kept, never, always = [], 0, 0
    p1 = pk = 0.0
    for qid, (c, n) in successes.items():
        if n < 1 or not 0 <= c <= n:
            raise ValueError(f"passk: question {qid!r} has {c} successes in {n} samples")
        never += c == 0
        always += c == n
        if 0 < c < n:
            kept.append(qid)
        p1 += pass_at_k(n, c, 1)
        pk += pass_at_k(n, c, n)
    total = len(successes)
    funnel = {"questions": total, "never_solved": never, "always_solved": always,
              "kept": len(kept), "pass@1": p1 / max(total, 1), "pass@k": pk / max(total, 1)}
    return kept, funnel


def record_id(record: Mapping[str, Any], index: int) -> str:
    return str(record.get("id") or f"{record.get('video_id', 'record')}#{index}")


def rollout_successes(ckpt_dir: str, root: str, records: Sequence[dict], k: int, *,
                      temperature: float = 1.0, max_new_tokens: int = 256, max_len: int = 4096,
                      max_turns: int | None = None, max_response_tokens: int = 0,
                      batch_size: int | None = None, seed: int = 0,
                      chunk: int | None = None) -> dict[str, tuple[int, int]]:
    """{record id: (successes, k)}: k sampled episodes per record with the checkpoint (its
    env config and tokenizer), each group sharing one prompt, with the rollout budgets GRPO
    will use (`seeker-jax passk --config` passes a GRPO config's: configs/grpo.py
    rollout_budgets; max_turns None: the env's tool rounds + the answer). Records run `chunk`
    at a time (default: four row-fulls; what is held in memory at once) with the episode keys
    one run over all of them would use, so the draws do not depend on `chunk`. A record whose
    video cannot be read counts 0 successes."""
    policy = load_policy(f"ckpt:{ckpt_dir}")
    rows = batch_size or max(k, min(4 * k, k * len(records)))
    turns = policy.env.max_rounds + 1 if max_turns is None else max_turns
    backend = InProcessBackend(policy, batch_size=rows, max_len=max_len,
                               max_new_tokens=max_new_tokens, max_turns=turns,
                               temperature=temperature, seed=seed,
                               max_response_tokens=max_response_tokens)
    ids = [record_id(rec, i) for i, rec in enumerate(records)]
    samples = samples_from_records(records, root, ids)
    protocol, chunk = get_protocol("answer"), chunk or 4 * max(rows // k, 1)
    out: dict[str, tuple[int, int]] = {}
    for start in range(0, len(samples), chunk):
        part = evaluate(samples[start:start + chunk], backend, policy.env, protocol,
                        per_sample=k, first_index=start * k)
        for sid, judged in zip(ids[start:start + chunk], part):
            out[sid] = (sum(j.correct for j in judged), k)
    return out


def build_rl_split(ckpt_dir: str, root: str, k: int, split: str = "train", out_split: str = "rl",
                   limit: int | None = None, **kwargs) -> dict[str, Any]:
    """Rolls out, filters and writes the RL split (module doc); returns the funnel."""
    from seeker_jax.data.records import read_records, split_path, write_records

    records = read_records(root, split, resolve=False)[:limit]
    if not records:
        raise ValueError(f"passk: split {split!r} of {root} has no records")
    successes = rollout_successes(ckpt_dir, root, records, k, **kwargs)
    kept, funnel = passk_filter(successes)
    keep = set(kept)
    write_records(split_path(root, out_split),
                  [rec for i, rec in enumerate(records) if record_id(rec, i) in keep])
    funnel = {"k": k, "split": split, "out_split": out_split, **funnel}
    with open(os.path.join(root, f"passk_{out_split}.json"), "w") as f:
        json.dump({**funnel, "successes": {q: list(v) for q, v in successes.items()}}, f,
                  indent=1)
    return funnel


__all__ = ["build_rl_split", "pass_at_k", "passk_filter", "record_id", "rollout_successes"]
