"""The reward group `c.reward` that GRPO configs include (`c.reward = reward_group("paper")`);
read by seeker_jax.rl.rewards.RewardConfig.from_config. Logged as reward/<component>.

Presets (docs/grpo.md):
  paper          the paper's reward as written: R = 0.8 accuracy + 0.15 format + 0.05 parsimony,
                 parsimony = max(0, 1 - lambda N) over N well-formed tool calls, ungated, the
                 paper's grammar (format_paper). The paper gives no lambda: 0.2 here (5 calls
                 earn 0), the one number we had to choose.
  seeker         ours: paper plus the correctness gate, which pays parsimony only to right
                 answers. Ungated, a wrong answer without tools earns the most parsimony and
                 the policy learns to stop calling tools.
  official_code  what the public code runs: 0.8 accuracy + 0.2 format (format_official, the
                 whole-response check), no parsimony (logged, weight 0).
Both: multiple choice by rule; open-ended by the judge (judge.spec = URL#MODEL, temperature 0.3
as in the code), else by rule. temporal_iou (LongVT style, the last crop vs the evidence window)
is off; turn it on with --config.reward.temporal_iou=True (weight weights.temporal_iou).
"""
import ml_collections


def _judge() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        spec="",              # URL#MODEL, e.g. http://127.0.0.1:8000/v1#Qwen3-VL-235B-A22B-Instruct
        temperature=0.3, max_tokens=64,
        timeout_s=60.0, retries=2, backoff_s=1.0,   # per attempt (HTTP), with backoff
        concurrency=8,
        max_failures=3,       # attempts per answer before it falls back to the rule
        breaker=8,            # this many fallbacks in a row: the rest of the batch skips the judge
        cache_dir=""))        # "" = no on-disk cache


def reward_group(preset: str = "paper") -> ml_collections.ConfigDict:
    r = ml_collections.ConfigDict()
    r.preset = preset
    r.weights = ml_collections.ConfigDict(dict(accuracy=0.8, format=0.15, parsimony=0.05,
                                               temporal_iou=0.1))
    r.format = "format_paper"
    r.parsimony = ml_collections.ConfigDict(dict(lam=0.2, gate=False, gate_min_accuracy=1.0))
    r.temporal_iou = False
    r.max_answer_chars = 1000
    r.judge = _judge()
    if preset == "paper":
        pass
    elif preset == "seeker":
        r.parsimony.gate = True
    elif preset == "official_code":
        r.weights.format, r.weights.parsimony = 0.2, 0.0
        r.format = "format_official"
    else:
        raise ValueError(f"configs/reward.py: unknown reward preset {preset!r}; use paper, "
                         "seeker or official_code")
    return r


def get_config(preset: str = "paper") -> ml_collections.ConfigDict:
    return reward_group(preset)
