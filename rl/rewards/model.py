"""The reward of a GRPO episode: registered components, weighted (configs/reward.py).

    R = w_acc * accuracy + w_fmt * format + w_par * parsimony [+ w_iou * temporal_iou]

`RewardModel.score(contexts)` first sends every open-ended answer (deduplicated) to the judge,
concurrently, then computes each episode's components with the pure registered functions, so
the only I/O is that one batched step. Judge trouble never raises: the answer falls back to the
rule and the fallback is counted in `metrics()`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from seeker_jax.data.openai_api import ChatClient, parse_model_url
from seeker_jax.rl.rewards.accuracy import answer_usable
from seeker_jax.rl.rewards.context import RewardContext
from seeker_jax.rl.rewards.judge import MAX_JUDGED_CHARS, Item, Judge, addresses_grader
from seeker_jax.rl.rewards.registry import get_reward

COMPONENTS = ("accuracy", "format", "parsimony", "temporal_iou")
FORMAT_VARIANTS = ("format_paper", "format_official")  # the built-in ones; any format_* works


@dataclass(frozen=True)
class JudgeConfig:
    """spec: `URL#MODEL` of an OpenAI-compatible server, "" for rule-only accuracy.
    retries: HTTP retries (with backoff) inside one attempt; max_failures: attempts per answer
    before it falls back to the rule; breaker: fallbacks in a row after which the rest of a
    batch falls back without asking (0: off); cache_dir: "" for no cache."""

    spec: str = ""
    temperature: float = 0.3
    timeout_s: float = 60.0
    retries: int = 2
    backoff_s: float = 1.0
    concurrency: int = 8
    max_failures: int = 3
    max_tokens: int = 64
    breaker: int = 8
    cache_dir: str = ""

    def __post_init__(self):
        if self.spec:
            parse_model_url(self.spec)  # a bad spec fails at config time, not mid-run
        if (self.concurrency < 1 or self.max_failures < 1 or self.retries < 0
                or self.breaker < 0):
            raise ValueError(f"reward.judge: concurrency and max_failures must be >= 1, retries "
                             f"and breaker >= 0, got {self.concurrency}, {self.max_failures}, "
                             f"{self.retries}, {self.breaker}")

    def build(self) -> Judge | None:
        if not self.spec:
            return None
        client = ChatClient.from_spec(self.spec, timeout_s=self.timeout_s,
                                      max_retries=self.retries, backoff_s=self.backoff_s,
                                      max_concurrency=self.concurrency)
        return Judge(client, temperature=self.temperature, max_tokens=self.max_tokens,
                     max_failures=self.max_failures, cache_dir=self.cache_dir or None,
                     breaker=self.breaker)


@dataclass(frozen=True)
class RewardConfig:
    """weights: component -> weight (temporal_iou's counts only when `temporal_iou` is on).
    format_variant: a registered format reward. parsimony_*: lambda, the correctness gate and
    its threshold. max_answer_chars: longer answers score 0 accuracy."""

    weights: Mapping[str, float] = field(default_factory=lambda: {
        "accuracy": 0.8, "format": 0.15, "parsimony": 0.05, "temporal_iou": 0.0})
    format_variant: str = "format_paper"
    parsimony_lambda: float = 0.2
    parsimony_gate: bool = False
    parsimony_gate_min_accuracy: float = 1.0
    temporal_iou: bool = False
    max_answer_chars: int = 1000
    judge: JudgeConfig = JudgeConfig()

    def __post_init__(self):
        unknown = sorted(set(self.weights) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"reward.weights: unknown components {unknown}; use {COMPONENTS}")
        bad = {k: v for k, v in self.weights.items() if not float(v) >= 0}
        if bad:
            raise ValueError(f"reward.weights: weights must be >= 0, got {bad}")
        if not self.format_variant.startswith("format_"):
            raise ValueError(f"reward.format: {self.format_variant!r} is not a format reward; "
                             f"use one of {FORMAT_VARIANTS}")
        get_reward(self.format_variant)  # registered, or a KeyError listing the known ones
        if self.parsimony_lambda < 0:
            raise ValueError(f"reward.parsimony.lam must be >= 0, got {self.parsimony_lambda}")

    @classmethod
    def from_config(cls, group: Any) -> "RewardConfig":
        """From the ml_collections group `c.reward` (configs/reward.py's reward_group)."""
        g = group.to_dict() if hasattr(group, "to_dict") else dict(group)
        top = {"preset", "weights", "format", "parsimony", "temporal_iou", "max_answer_chars",
               "judge"}
        if sorted(set(g) - top):
            raise ValueError(f"reward: unknown keys {sorted(set(g) - top)}; known: {sorted(top)}")
        par, judge = dict(g.get("parsimony", {})), dict(g.get("judge", {}))
        known = set(JudgeConfig.__dataclass_fields__)
        extra = sorted(set(judge) - known)
        if extra:
            raise ValueError(f"reward.judge: unknown keys {extra}; known: {sorted(known)}")
        return cls(weights={k: float(v) for k, v in dict(g.get("weights", {})).items()},
                   format_variant=g.get("format", "format_paper"),
                   parsimony_lambda=float(par.get("lam", 0.2)),
                   parsimony_gate=bool(par.get("gate", False)),
                   parsimony_gate_min_accuracy=float(par.get("gate_min_accuracy", 1.0)),
                   temporal_iou=bool(g.get("temporal_iou", False)),
                   max_answer_chars=int(g.get("max_answer_chars", 1000)),
                   judge=JudgeConfig(**judge))

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(c for c in COMPONENTS if c != "temporal_iou" or self.temporal_iou)


class RewardModel:
    """Scores finished episodes (see the module doc). Thread-safe counters; one per run."""

    def __init__(self, config: RewardConfig = RewardConfig(), judge: Judge | None = None):
        self.config = config
        self.judge = judge if judge is not None else config.judge.build()
        self._counts = {"episodes": 0, "open_judged": 0, "open_by_rule": 0,
                        "open_addressed_grader": 0}
        self._lock = threading.Lock()

    def _needs_judge(self, ctx: RewardContext) -> bool:
        return (ctx.question_form == "open"
                and answer_usable(ctx.answer, self.config.max_answer_chars))

    def _guarded(self, ctx: RewardContext) -> bool:
        """An open answer that talks to its grader: 0, never sent (rl/rewards/judge.py)."""
        return self._needs_judge(ctx) and addresses_grader(ctx.answer)

    def judgements(self, contexts: Sequence[RewardContext]) -> list[float | None]:
        """The judge's score of each open-ended answer (None: multiple choice, no judge, or
        a fallback), identical (question, reference, answer) items asked once. An answer that
        addresses the grader gets 0 without a request; one over MAX_JUDGED_CHARS goes to the
        rule."""
        out: list[float | None] = [0.0 if self._guarded(ctx) else None for ctx in contexts]
        if self.judge is None:
            return out
        items: dict[Item, list[int]] = {}
        for i, ctx in enumerate(contexts):
            if out[i] is None and self._needs_judge(ctx) and \
                    len(ctx.answer.strip()) <= MAX_JUDGED_CHARS:
                items.setdefault((ctx.question, ctx.reference, ctx.answer), []).append(i)
        for item, score in zip(items, self.judge.score_many(list(items))):
            for i in items[item]:
                out[i] = score
        return out

    def score_one(self, ctx: RewardContext, judgement: float | None = None) -> dict[str, float]:
        """Every component of one episode and the weighted "reward" (pure given judgement)."""
        cfg = self.config
        acc = get_reward("accuracy")(ctx, judgement=judgement,
                                     max_answer_chars=cfg.max_answer_chars)
        out = {"accuracy": acc}
        out["format"] = get_reward(cfg.format_variant)(ctx, max_answer_chars=cfg.max_answer_chars)
        out["parsimony"] = get_reward("parsimony")(
            ctx, lam=cfg.parsimony_lambda, gate=cfg.parsimony_gate, accuracy=acc,
            gate_min_accuracy=cfg.parsimony_gate_min_accuracy)
        if cfg.temporal_iou:
            out["temporal_iou"] = get_reward("temporal_iou")(ctx)
        out["reward"] = sum(cfg.weights.get(name, 0.0) * value for name, value in out.items())
        return out

    def score(self, contexts: Sequence[RewardContext]) -> list[dict[str, float]]:
        """Each episode's components and weighted "reward", in order. Never raises on judge
        trouble."""
        judged = self.judgements(contexts)
        scores = [self.score_one(ctx, j) for ctx, j in zip(contexts, judged)]
        guarded = [self._guarded(ctx) for ctx in contexts]
        opens = [j for ctx, j, g in zip(contexts, judged, guarded)
                 if self._needs_judge(ctx) and not g]
        with self._lock:
            self._counts["episodes"] += len(contexts)
            self._counts["open_judged"] += sum(j is not None for j in opens)
            self._counts["open_by_rule"] += sum(j is None for j in opens)
            self._counts["open_addressed_grader"] += sum(guarded)
        return scores

    def metrics(self) -> dict[str, float]:
        """Counters since construction: `rewards/*` (episodes, open answers judged, scored by
        the rule, or given 0 for addressing the grader) and `judge/*` (attempts, cache hits,
        failures, fallbacks, HTTP calls)."""
        with self._lock:
            out = {f"rewards/{k}": float(v) for k, v in self._counts.items()}
        if self.judge is not None:
            out.update({f"judge/{k}": v for k, v in self.judge.metrics().items()})
        return out


def summarize(scores: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each component over a batch, as `reward/<name>` (what the learner logs)."""
    if not scores:
        return {}
    return {f"reward/{name}": sum(s[name] for s in scores) / len(scores) for name in scores[0]}


__all__ = ["COMPONENTS", "FORMAT_VARIANTS", "JudgeConfig", "RewardConfig", "RewardModel",
           "summarize"]
