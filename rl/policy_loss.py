"""GRPO's policy loss as registered pure pieces: a surrogate, an aggregation, a KL estimator and
an importance-sampling correction, combined by `make_grpo_loss(cfg)` into a
`loss_fn(model, batch) -> (loss, aux)` that `seeker_jax.training.train_state.train_step_fn` runs.

Shapes: every per-token array is (B, K) float32 at the batch's loss positions (see
seeker_jax.data.batch): `loss_weight` is the policy mask (prompts, tool outputs and padding
are 0), `advantages` the episode's advantage on each of its tokens, `old_logprobs` the
learner's log-probs when the rollout was scored (absent: the current ones, detached, i.e. one
update per rollout), `ref_logprobs` the frozen reference's (needed only when kl_coef > 0),
`sampler_logprobs` what the sampler recorded (TIS and the sampler-learner gap).

The per-token loss is (as TRL's GRPOTrainer and verl):
    l = tis_weight * surrogate(logp - old, A) + kl_coef * kl(logp, ref)
and the loss is aggregation(l, loss_weight). A new variant is a registered name:

    @register_aggregation("my_mean")
    def my_mean(values, weight, cfg): ...
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from seeker_jax.training.losses import (lm_head_weight, loss_hidden, policy_token_logprobs, register_loss,
                               token_logprobs, token_logprobs_with_entropy)
from seeker_jax.rl.advantages import registered_advantages
from seeker_jax.registry import Registry
from seeker_jax.training.train_state import Vision, with_vision

Array = jax.Array
POLICY_LOSSES = Registry("policy loss")  # (log_ratio, advantages, cfg) -> (loss, clipped)
AGGREGATIONS = Registry("loss aggregation")  # (values, weight, cfg) -> scalar
KL_ESTIMATORS = Registry("KL estimator")  # (logp, ref_logp) -> (B, K)
TIS = Registry("importance sampling correction")  # (old, sampler, weight, cfg) -> (w, cut)
register_policy_loss = POLICY_LOSSES.register
register_aggregation = AGGREGATIONS.register
register_kl = KL_ESTIMATORS.register
register_tis = TIS.register


@dataclasses.dataclass(frozen=True)
class PolicyLossConfig:
    """The loss group `c.loss` (configs/grpo_loss.py). Hashable: static under jit.

    advantage, std_floor, dynamic_sampling and overlong_filter are host-side choices the
    learner reads (seeker_jax.rl.advantages); the rest shape the jitted loss. std_floor: the
    least group std the grpo estimator divides by (0: the paper's GRPO). suppress_ids: the
    token ids the sampler masks (SamplingParams.suppress_ids); the learner, reference and old
    log-prob passes leave them out of the softmax too, so all score the sampler's
    distribution. Not a `c.loss` key: the learner sets it from the one field that feeds the
    sampler (rollout.suppress_ids plus the vision ids).
    """

    advantage: str = "grpo"
    std_floor: float = 0.0
    policy_loss: str = "clipped"
    clip_low: float = 0.2
    clip_high: float = 0.2
    aggregation: str = "token_mean"
    max_len_norm: int | None = None
    kl: str = "k3"
    kl_coef: float = 0.001
    tis: str = "none"
    tis_cap: float = 2.0
    temperature: float = 1.0
    entropy: bool = True
    dynamic_sampling: bool = False
    overlong_filter: bool = False
    chunk: int = 256
    suppress_ids: tuple[int, ...] = ()

    def __post_init__(self):
        if self.advantage not in registered_advantages():
            raise ValueError(f"loss.advantage: unknown estimator {self.advantage!r}; "
                             f"registered: {registered_advantages()}")
        if self.std_floor < 0:
            raise ValueError(f"loss.std_floor must be >= 0 (0: no floor), got {self.std_floor}")
        if self.std_floor and self.advantage != "grpo":
            raise ValueError(f"loss.std_floor={self.std_floor} floors the group std of the grpo "
                             f"estimator; loss.advantage={self.advantage!r} divides by no std: "
                             "set --config.loss.std_floor=0")
        for field, registry in (("policy_loss", POLICY_LOSSES), ("aggregation", AGGREGATIONS),
                                ("kl", KL_ESTIMATORS), ("tis", TIS)):
            registry.get(getattr(self, field), f"loss.{field}")
        if not (0 <= self.clip_low < 1 and self.clip_high >= 0):
            raise ValueError(f"loss.clip_low must be in [0, 1) and clip_high >= 0, got "
                             f"{self.clip_low}, {self.clip_high}")
        if self.kl_coef < 0:
            raise ValueError(f"loss.kl_coef must be >= 0 (0 = no reference), got {self.kl_coef}")
        if self.tis_cap <= 0:
            raise ValueError(f"loss.tis_cap must be > 0, got {self.tis_cap}")
        if self.temperature <= 0:
            raise ValueError(f"loss.temperature must be > 0 (the sampling temperature; greedy "
                             f"rollouts are scored at 1), got {self.temperature}")
        if self.aggregation == "seq_mean_token_sum_norm" and not self.max_len_norm:
            raise ValueError("loss.aggregation seq_mean_token_sum_norm (Dr.GRPO) divides by a "
                             "constant: set loss.max_len_norm (e.g. the response limit, 4096)")

    @classmethod
    def from_config(cls, group: Mapping[str, Any]) -> "PolicyLossConfig":
        """From a `c.loss` ConfigDict or a plain dict; max_len_norm 0 means unset."""
        d = group.to_dict() if hasattr(group, "to_dict") else dict(group)
        if "suppress_ids" in d:
            raise ValueError("loss.suppress_ids is not a loss setting: the learner masks the ids "
                             "the sampler masks; set --config.rollout.suppress_ids")
        known = {f.name for f in dataclasses.fields(cls)} - {"suppress_ids"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"loss: unknown key(s) {unknown}; the loss group has {sorted(known)}")
        if not d.get("max_len_norm"):
            d["max_len_norm"] = None
        return cls(**d)

    @classmethod
    def preset(cls, name: str, **overrides) -> "PolicyLossConfig":
        from seeker_jax.configs.grpo_loss import loss_group

        return dataclasses.replace(cls.from_config(loss_group(name)), **overrides)

    @property
    def needs_reference(self) -> bool:
        return self.kl_coef > 0

    @property
    def scoring(self) -> dict[str, Any]:
        """How every pass scores tokens (reference_logprobs' and policy_token_logprobs'
        keywords): the sampling temperature, loss.chunk positions per vocabulary chunk, the
        sampler's suppressed ids."""
        return {"temperature": self.temperature, "chunk": self.chunk,
                "suppress_ids": self.suppress_ids}

    @property
    def advantage_params(self) -> dict[str, float]:
        """Keyword arguments of the advantage estimator (compute_advantages)."""
        return {"std_floor": self.std_floor} if self.advantage == "grpo" else {}


# ---------------------------------------------------------------- surrogates

@register_policy_loss("clipped")
def clipped_surrogate(log_ratio: Array, advantages: Array, cfg: PolicyLossConfig
                      ) -> tuple[Array, Array]:
    """PPO's clipped surrogate with clip-higher: -min(r A, clip(r, 1 - eps_low, 1 + eps_high) A),
    r = exp(log_ratio). Also returns where the clip binds (r below the range with A < 0, or
    above it with A > 0: the tokens whose gradient is cut), as TRL's clip_ratio/region."""
    ratio = jnp.exp(log_ratio)
    clipped = jnp.clip(ratio, 1.0 - cfg.clip_low, 1.0 + cfg.clip_high)
    loss = -jnp.minimum(ratio * advantages, clipped * advantages)
    binds = (((ratio < 1.0 - cfg.clip_low) & (advantages < 0))
             | ((ratio > 1.0 + cfg.clip_high) & (advantages > 0)))
    return loss, binds.astype(jnp.float32)


# ---------------------------------------------------------------- aggregations

def _row_sums(values: Array, weight: Array) -> tuple[Array, Array]:
    return jnp.sum(values * weight, -1), jnp.sum(weight, -1)


@register_aggregation("token_mean")
def token_mean(values: Array, weight: Array, cfg: PolicyLossConfig) -> Array:
    """Every learned token of the batch counts once (DAPO; VideoSeeker's recipe)."""
    return jnp.sum(values * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def _mean_over_rows(per_row: Array, counts: Array) -> Array:
    """Mean over the rows that have learned tokens (a fully masked row, e.g. an overlong
    episode, does not dilute the others; verl's seq_mask)."""
    has = (counts > 0).astype(jnp.float32)
    return jnp.sum(per_row * has) / jnp.maximum(jnp.sum(has), 1.0)


@register_aggregation("seq_mean_token_mean")
def seq_mean_token_mean(values: Array, weight: Array, cfg: PolicyLossConfig) -> Array:
    """Each sequence's token mean, then the mean over sequences (the original GRPO; TRL grpo)."""
    sums, counts = _row_sums(values, weight)
    return _mean_over_rows(sums / jnp.maximum(counts, 1.0), counts)


@register_aggregation("seq_mean_token_sum")
def seq_mean_token_sum(values: Array, weight: Array, cfg: PolicyLossConfig) -> Array:
    """Each sequence's token sum, then the mean over sequences."""
    sums, counts = _row_sums(values, weight)
    return _mean_over_rows(sums, counts)


@register_aggregation("seq_mean_token_sum_norm")
def seq_mean_token_sum_norm(values: Array, weight: Array, cfg: PolicyLossConfig) -> Array:
    """Dr.GRPO: sum over all tokens / (B * max_len_norm), a constant, so no length bias
    (TRL dr_grpo with max_completion_length = max_len_norm)."""
    sums, _ = _row_sums(values, weight)
    return jnp.sum(sums) / (values.shape[0] * float(cfg.max_len_norm))


# ---------------------------------------------------------------- KL estimators

@register_kl("k1")
def kl_k1(logp: Array, ref: Array) -> Array:
    """log pi - log pi_ref (unbiased for KL(pi || ref) on samples of pi; can be negative)."""
    return logp - ref


@register_kl("k2")
def kl_k2(logp: Array, ref: Array) -> Array:
    """(log pi - log pi_ref)^2 / 2."""
    return 0.5 * jnp.square(logp - ref)


@register_kl("k3")
def kl_k3(logp: Array, ref: Array) -> Array:
    """exp(ref - logp) - (ref - logp) - 1 >= 0 (Schulman's k3, verl's low_var_kl), clamped to
    [-10, 10] as verl does; TRL's beta term, unclamped (equal wherever it is under 10)."""
    d = ref - logp
    return jnp.clip(jnp.exp(d) - d - 1.0, -10.0, 10.0)


# ---------------------------------------------------------------- truncated importance sampling

@register_tis("none")
def tis_none(old: Array, sampler: Array | None, weight: Array, cfg: PolicyLossConfig
             ) -> tuple[Array, Array]:
    return jnp.ones_like(weight), jnp.zeros_like(weight)


@register_tis("token")
def tis_token(old: Array, sampler: Array, weight: Array, cfg: PolicyLossConfig
              ) -> tuple[Array, Array]:
    """min(pi_old / pi_sampler, cap) per token, detached (truncated IS: the sampler's
    distribution differs from the learner's)."""
    log_w = jax.lax.stop_gradient(old - sampler)
    cap = jnp.log(cfg.tis_cap)
    return jnp.exp(jnp.minimum(log_w, cap)), (log_w > cap).astype(jnp.float32)


@register_tis("sequence")
def tis_sequence(old: Array, sampler: Array, weight: Array, cfg: PolicyLossConfig
                 ) -> tuple[Array, Array]:
    """min(prod_k pi_old / pi_sampler, cap) per sequence (over its learned tokens), detached,
    broadcast to its tokens."""
    log_w = jnp.sum(jax.lax.stop_gradient(old - sampler) * weight, -1, keepdims=True)
    cap = jnp.log(cfg.tis_cap)
    w = jnp.broadcast_to(jnp.exp(jnp.minimum(log_w, cap)), weight.shape)
    return w, jnp.broadcast_to((log_w > cap).astype(jnp.float32), weight.shape)


# ---------------------------------------------------------------- entropy (no gradient)

# ---------------------------------------------------------------- the loss

def _masked_mean(x: Array, weight: Array) -> Array:
    return jnp.sum(x * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def _require(batch: Mapping[str, Any], name: str, why: str) -> None:
    if batch.get(name) is None:
        raise ValueError(f"grpo loss: the batch has no {name!r}, needed {why}; pass it to "
                         f"collate(per_token={{{name!r}: ...}})")


def grpo_token_terms(logp: Array, batch: Mapping[str, Any], cfg: PolicyLossConfig
                     ) -> tuple[Array, dict[str, Array]]:
    """(per-token loss (B, K), aux metrics) from the current log-probs logp (B, K): the part of
    the loss after the forward pass, shared by make_grpo_loss and the tests."""
    weight = batch["loss_weight"].astype(jnp.float32)
    valid = weight > 0
    current = jax.lax.stop_gradient(logp)

    def masked(name: str, fill: Array) -> Array | None:
        """The batch's array with masked entries replaced by `fill`: whatever padding holds
        (even inf / NaN) can then never reach the loss or its gradient."""
        value = batch.get(name)
        return None if value is None else jnp.where(valid, value.astype(jnp.float32), fill)

    _require(batch, "advantages", "for every policy loss")
    adv = masked("advantages", jnp.zeros_like(logp))
    old = masked("old_logprobs", current)
    old = current if old is None else old
    log_ratio = logp - old
    pg, binds = POLICY_LOSSES.get(cfg.policy_loss)(log_ratio, adv, cfg)
    if cfg.tis != "none":
        _require(batch, "sampler_logprobs", f"by loss.tis={cfg.tis!r}")
    sampler = masked("sampler_logprobs", jax.lax.stop_gradient(old))
    tis_w, cut = TIS.get(cfg.tis)(old, sampler, weight, cfg)
    per_token = pg * tis_w
    aux = {"clip_frac": _masked_mean(binds, weight),
           "ratio_mean": _masked_mean(jnp.exp(jax.lax.stop_gradient(log_ratio)), weight),
           "tis_frac": _masked_mean(cut, weight),
           "pg_loss": AGGREGATIONS.get(cfg.aggregation)(per_token, weight, cfg),
           "loss_tokens": jnp.sum(weight)}
    if sampler is not None:  # fp32, one graph and one distribution for sampler and learner: ~0
        gap = jnp.abs(sampler - jax.lax.stop_gradient(old))
        aux["sampler_learner_gap"] = _masked_mean(gap, weight)
        aux["sampler_learner_gap_max"] = jnp.max(jnp.where(valid, gap, 0.0))
    if cfg.needs_reference:
        _require(batch, "ref_logprobs", f"by loss.kl_coef={cfg.kl_coef} (reference_logprobs "
                 "computes it)")
        ref = masked("ref_logprobs", current)
        kl = KL_ESTIMATORS.get(cfg.kl)(logp, ref)
        per_token = per_token + cfg.kl_coef * kl
        aux["kl"] = _masked_mean(jax.lax.stop_gradient(kl), weight)
    return per_token, aux


def make_grpo_loss(cfg: PolicyLossConfig) -> Callable[..., tuple[Array, dict[str, Array]]]:
    """loss_fn(model, batch) -> (loss, aux) for train_step_fn(tx, loss_fn): one forward, the
    chunked log-probs of the learned tokens at cfg.temperature, then grpo_token_terms."""
    aggregate = AGGREGATIONS.get(cfg.aggregation)

    def loss_fn(model, batch):
        hidden, labels = loss_hidden(model, batch)
        head, transposed = lm_head_weight(model)
        if cfg.entropy:  # from the log-probs' own chunk logits: no second projection
            logp, ent = token_logprobs_with_entropy(hidden, head, transposed, labels, cfg.chunk,
                                                    cfg.temperature, cfg.suppress_ids)
        else:
            logp = token_logprobs(hidden, head, transposed, labels, cfg.chunk, cfg.temperature,
                                  cfg.suppress_ids)
        per_token, aux = grpo_token_terms(logp, batch, cfg)
        weight = batch["loss_weight"].astype(jnp.float32)
        if cfg.entropy:
            aux["entropy"] = _masked_mean(ent, weight)
        return aggregate(per_token, weight, cfg), aux

    return loss_fn


@partial(jax.jit, static_argnums=(0, 4, 5, 6))
def _reference_logprobs(graphdef, ref_state, batch, vision: Vision, temperature: float,
                        chunk: int, suppress_ids: tuple[int, ...]):
    model = nnx.merge(graphdef, *ref_state)
    return policy_token_logprobs(model, with_vision(batch, vision), temperature, chunk,
                                 suppress_ids)


def reference_logprobs(graphdef, ref_state, batch: Mapping[str, Array], vision: Vision,
                       temperature: float = 1.0, chunk: int = 256,
                       suppress_ids: tuple[int, ...] = ()) -> Array:
    """(B, K) log-probs of the learned tokens under the frozen reference (or the learner's
    old log-probs): the learner's own forward (policy_token_logprobs) jitted on these states.
    ref_state: one nnx.State or a tuple of them (e.g. TrainState's trainable, frozen, rest);
    batch and vision as place_batch returns them. Pass the loss's `**cfg.scoring` so this pass
    projects loss.chunk positions at a time (the memory check's assumption) and masks the
    sampler's ids, like the loss."""
    states = tuple(ref_state) if isinstance(ref_state, (tuple, list)) else (ref_state,)
    return _reference_logprobs(graphdef, states, dict(batch), vision, float(temperature),
                               int(chunk), tuple(sorted(int(i) for i in suppress_ids)))


for _name in ("grpo", "dr_grpo", "dapo"):  # train_step_fn(tx, "dapo") etc.
    register_loss(_name)(make_grpo_loss(PolicyLossConfig.preset(_name)))


__all__ = ["AGGREGATIONS", "KL_ESTIMATORS", "POLICY_LOSSES", "PolicyLossConfig", "TIS",
           "clipped_surrogate", "grpo_token_terms", "kl_k1", "kl_k2", "kl_k3", "make_grpo_loss",
           "reference_logprobs", "register_aggregation", "register_kl", "register_policy_loss",
           "register_tis", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm",
           "token_mean"]
