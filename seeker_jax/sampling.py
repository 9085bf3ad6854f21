"""Pure sampling functions: logits (B, V) -> tokens and their log-probs under the sampling policy.

The policy is: logits / temperature, then top-k, then top-p (nucleus), then softmax. Greedy is
temperature 0 (argmax; its log-prob is under the untempered softmax). `policy_logprobs` applies
the same transform to a forward pass's logits, so a learner can recompute exactly the
log-probs the sampler recorded.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

NEG_INF = -1e30


@dataclass(frozen=True)
class SamplingParams:
    """temperature 0 = greedy; top_k 0 = off; top_p 1.0 = off; suppress_ids: tokens the
    policy never emits (e.g. vision placeholders). Hashable: static under jit."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    suppress_ids: tuple[int, ...] = ()

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def top_k_mask(logits: jax.Array, k: int) -> jax.Array:
    """Keeps the k largest logits of each row (ties at the k-th value kept), others -> -inf."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = jax.lax.top_k(logits, k)[0][..., -1:]
    return jnp.where(logits >= kth, logits, NEG_INF)


def top_p_mask(logits: jax.Array, p: float) -> jax.Array:
    """Keeps the smallest set of top tokens whose probability reaches p (at least one)."""
    if p >= 1.0:
        return logits
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    probs = jax.nn.softmax(sorted_logits.astype(jnp.float32), axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # mass of strictly better tokens
    keep_sorted = before < p
    keep = jnp.zeros_like(keep_sorted).at[
        jnp.arange(logits.shape[0])[:, None], order].set(keep_sorted)
    return jnp.where(keep, logits, NEG_INF)


def policy_logits(logits: jax.Array, params: SamplingParams) -> jax.Array:
    """The logits the sampler draws from: (..., V) float32, filtered tokens at -inf."""
    x = logits.astype(jnp.float32)
    if params.suppress_ids:
        x = x.at[..., jnp.asarray(params.suppress_ids)].set(NEG_INF)
    if params.greedy:
        return x
    x = x / params.temperature
    shape = x.shape
    x = x.reshape(-1, shape[-1])
    x = top_p_mask(top_k_mask(x, params.top_k), params.top_p)
    return x.reshape(shape)


def policy_logprobs(logits: jax.Array, tokens: jax.Array, params: SamplingParams) -> jax.Array:
    """log pi(token) under the sampling policy: logits (..., V), tokens (...) -> (...)."""
    logp = jax.nn.log_softmax(policy_logits(logits, params), axis=-1)
    return jnp.take_along_axis(logp, tokens[..., None].astype(jnp.int32), axis=-1)[..., 0]


def sample(logits: jax.Array, key: jax.Array, params: SamplingParams,
           forced: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """One token per row: logits (B, V) -> tokens (B,) int32, log-probs (B,) float32.

    forced (B,) int32: where >= 0, that token replaces the draw (a scripted turn); its log-prob
    is still the policy's, so recorded log-probs stay what a forward pass recomputes.
    """
    x = policy_logits(logits, params)
    if params.greedy:
        tokens = jnp.argmax(x, axis=-1).astype(jnp.int32)
    else:
        tokens = jax.random.categorical(key, x, axis=-1).astype(jnp.int32)
    if forced is not None:
        tokens = jnp.where(forced >= 0, forced.astype(jnp.int32), tokens)
    logp = jax.nn.log_softmax(x, axis=-1)
    return tokens, jnp.take_along_axis(logp, tokens[:, None], axis=-1)[:, 0]


__all__ = ["SamplingParams", "policy_logits", "policy_logprobs", "sample", "top_k_mask",
           "top_p_mask"]
