"""The pass@k filter that builds the RL split (`seeker-jax passk --ckpt C --data D --k 8`).

VideoSeeker keeps for RL the questions its SFT model solves sometimes: a question solved by
all k samples teaches nothing (every advantage is 0), nor one never solved. `passk_filter` is
the pure part (per-question success counts -> kept ids and the funnel); `rollout_successes`
rolls out k samples per question with a checkpoint, in its own environment, and counts the
episodes whose accuracy reward reaches `threshold`. `build_rl_split` writes the kept records
as D/records/<out_split>.array_record beside the others (paths stay relative to D), and the
funnel as D/passk_<out_split>.json.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, Sequence


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
                      batch_size: int | None = None, threshold: float = 1.0, seed: int = 0,
                      reward: Any = None) -> dict[str, tuple[int, int]]:
    """k sampled episodes per record with the checkpoint (its env_config.json and tokenizer),
    grouped so each prompt is built once; success = accuracy reward >= threshold."""
    from seeker_jax.checkpointing import checkpoint as ckpt
    from seeker_jax.env.episode import Episode
    from seeker_jax.env.records import SampleRecord
    from seeker_jax.rl.rewards import RewardConfig, RewardModel, from_episode
    from seeker_jax.agents.rollout import Rollout, RolloutConfig, env_sampler
    from seeker_jax.generation.sampling import SamplingParams

    env, tokenizer = ckpt.read_env_config(ckpt_dir), ckpt.read_tokenizer(ckpt_dir)
    model = ckpt.load_model(ckpt_dir)
    formatter, episode_config = env.formatter(tokenizer), env.episode_config()
    rows = batch_size or max(k, min(4 * k, k * len(records)))
    sampler = env_sampler(model, tokenizer, batch_size=rows, max_len=max_len,
                          params=SamplingParams(temperature), seed=seed)
    rollout = Rollout(sampler, RolloutConfig(max_new_tokens, env.max_rounds + 1))
    per_episode = [rec for rec in records for _ in range(k)]
    episodes = [Episode(SampleRecord.from_dict(rec), formatter, root, episode_config)
                for rec in per_episode]
    results, _ = rollout.run(episodes, group_size=k, seed=seed)
    model_r = RewardModel(reward if reward is not None else RewardConfig())
    scores = model_r.score([from_episode(res, rec) for res, rec in zip(results, per_episode)])
    out: dict[str, tuple[int, int]] = {}
    for i, rec in enumerate(records):
        acc = [s["accuracy"] for s in scores[i * k:(i + 1) * k]]
        out[record_id(rec, i)] = (sum(a >= threshold for a in acc), k)
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
