"""Per-token log-probs without (B, K, V) logits, and the registry of named training losses.

A loss is a pure function `loss_fn(model, batch) -> (loss, aux)`: batch is the placed
`seeker_jax.data.batch.Batch` (a dict of arrays, vision inputs included, see
train_state.with_vision), aux a dict of scalar metrics that come out of the step. A new
variant (a GRPO flavour) is a new registered name, never a new trainer:

    @register_loss("my_variant")
    def my_loss(model, batch): ...

Vocabulary projection: 151,936 columns make (B, K, V) logits the largest tensor of a small
model, so every function here runs the projection `chunk` positions at a time, with only one
chunk's logits alive, forward and backward.

  token_logprobs      (B, K) values, gradients for ANY per-token cotangent (GRPO's losses).
                      Backward recomputes each chunk's logits (no (B, K, V) residual):
                      4 vocabulary-sized matmuls per step (logits; logits again, dX, dW).
  token_logprobs_with_entropy  the same, plus each position's entropy from the same logits
                      (a metric, no gradient): no extra projection to log it.
  suppress_ids        (token_logprobs, policy_token_logprobs) token ids masked out of the
                      softmax, as the sampler masks them (seeker_jax.generation.sampling's
                      suppress_ids, e.g. the vision placeholders): GRPO's learner, reference
                      and old log-prob passes then score the very distribution the sampler
                      drew from, not the full vocabulary.
  token_logprob_sum   sum_k w_k * logprob_k for weights w known up front (SFT's NLL). Its
                      cotangent is known in the forward pass (w_k times the scalar's), so the
                      forward forms both gradients chunk by chunk and backward only scales
                      them: 3 vocabulary-sized matmuls per step (logits, dX, dW), like an
                      unchunked loss, and no recomputation.
"""
from __future__ import annotations

import functools
from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from seeker_jax.generation.sampling import NEG_INF
from seeker_jax.registry import Registry

LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
_LOSSES: Registry[LossFn] = Registry("loss", "GRPO's register when seeker_jax.rl is imported")


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    """Registers `loss_fn(model, batch) -> (loss, aux)` under `name` (config: loss = name)."""
    return _LOSSES.register(name)


def get_loss(name: str | LossFn) -> LossFn:
    """A registered loss by name (a callable is returned as is)."""
    return name if callable(name) else _LOSSES.get(name)


def registered_losses() -> list[str]:
    return _LOSSES.names()


# ---------------------------------------------------------------- chunked vocabulary projection

def _chunk_logits(h, w, transposed: bool, temperature: float, suppress: tuple[int, ...] = ()):
    """(B, c, V) float32 logits / temperature of h (B, c, D): h @ W (D, V) or h @ W.T (V, D),
    the suppressed ids at NEG_INF (the sampler's learner_logits, column for column)."""
    logits = jnp.einsum("bcd,vd->bcv" if transposed else "bcd,dv->bcv", h, w,
                        preferred_element_type=jnp.float32)
    logits = logits / temperature if temperature != 1.0 else logits
    if suppress:
        logits = logits.at[..., jnp.asarray(suppress)].set(NEG_INF)
    return logits


def _logprob_grad(logits, lse, y, g, temperature: float, suppress: tuple[int, ...] = ()):
    """d(g * logprob_y) / d(h @ W): g (B, c) times (onehot(y) - softmax) / temperature; 0 on
    suppressed columns (their logits are constants)."""
    V = logits.shape[-1]
    d = (jnp.arange(V) == y[..., None]) - jnp.exp(logits - lse[..., None])
    if suppress:
        d = d.at[..., jnp.asarray(suppress)].set(0.0)
    return d * (g / temperature)[..., None]


def _matmul_grads(d, h, w, transposed: bool):
    """(dh (B, c, D) in h.dtype, dW in float32) of logits = h @ W given dlogits d (B, c, V)."""
    d = d.astype(h.dtype)
    dh = jnp.einsum("bcv,vd->bcd" if transposed else "bcv,dv->bcd", d, w)
    dw = (jnp.einsum("bcv,bcd->vd", d, h, preferred_element_type=jnp.float32) if transposed
          else jnp.einsum("bcd,bcv->dv", h, d, preferred_element_type=jnp.float32))
    return dh, dw


def _to_chunks(chunk: int, hidden, *per_token):
    """hidden (B, K, D) and (B, K) arrays -> (n, B, c, ...) chunks (K padded with zeros)."""
    B, K, D = hidden.shape
    c = min(chunk, K)
    pad = (-K) % c
    if pad:
        hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
        per_token = tuple(jnp.pad(a, ((0, 0), (0, pad))) for a in per_token)
    n = hidden.shape[1] // c
    return (hidden.reshape(B, n, c, D).swapaxes(0, 1),
            *(a.reshape(B, n, c).swapaxes(0, 1) for a in per_token))


def _from_chunks(x, K: int):
    n, B, c = x.shape
    return x.swapaxes(0, 1).reshape(B, n * c)[:, :K]


# ---------------------------------------------------------------- token_logprobs (any cotangent)

@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 4, 5, 6))
def _chunked_logprobs(hs, w, transposed, ys, temperature, with_entropy, suppress):
    return _chunked_logprobs_fwd(hs, w, transposed, ys, temperature, with_entropy, suppress)[0]


def _chunked_logprobs_fwd(hs, w, transposed, ys, temperature, with_entropy, suppress):
    def one(args):
        h, y = args
        logits = _chunk_logits(h, w, transposed, temperature, suppress)
        lse = jax.nn.logsumexp(logits, -1)
        lp = jnp.take_along_axis(logits, y[..., None], -1)[..., 0] - lse
        if not with_entropy:
            return lp, lse, jnp.zeros_like(lse)
        logp = logits - lse[..., None]  # H = -sum p log p, from the chunk's logits in hand
        return lp, lse, -jnp.sum(jnp.exp(logp) * logp, -1)

    lp, lse, ent = jax.lax.map(one, (hs, ys))
    return (lp, ent), (hs, w, ys, lse)  # residuals: no logits, only their logsumexp (n, B, c)


def _chunked_logprobs_bwd(transposed, temperature, with_entropy, suppress, res, g):
    hs, w, ys, lse = res
    g = g[0]  # the entropy is a metric: its cotangent is dropped (callers stop its gradient)

    def one(dw, args):
        h, y, l, gc = args
        # recomputed, one chunk at a time
        logits = _chunk_logits(h, w, transposed, temperature, suppress)
        dh, dwc = _matmul_grads(_logprob_grad(logits, l, y, gc, temperature, suppress), h, w,
                                transposed)
        return dw + dwc, dh

    dw, dhs = jax.lax.scan(one, jnp.zeros(w.shape, jnp.float32), (hs, ys, lse, g))
    return dhs, dw.astype(w.dtype), None


_chunked_logprobs.defvjp(_chunked_logprobs_fwd, _chunked_logprobs_bwd)


def _logprobs(hidden, weight, transposed, labels, chunk, temperature, with_entropy,
              suppress_ids=()):
    """(log-probs, entropies) (B, K) through _chunked_logprobs (entropies 0 unless asked)."""
    if temperature <= 0:
        raise ValueError(f"token_logprobs: temperature must be > 0, got {temperature} (greedy "
                         "decoding scores its tokens at temperature 1)")
    K = hidden.shape[1]
    hs, ys = _to_chunks(chunk, hidden, labels.astype(jnp.int32))
    suppress = tuple(sorted({int(i) for i in suppress_ids}))
    if suppress and not 0 <= suppress[0] <= suppress[-1] < weight.shape[0 if transposed else 1]:
        raise ValueError(f"token_logprobs: suppress_ids {suppress} must be token ids of the "
                         f"vocabulary ({weight.shape[0 if transposed else 1]})")
    lp, ent = _chunked_logprobs(hs, weight.astype(hidden.dtype), transposed, ys,
                                float(temperature), with_entropy, suppress)
    return _from_chunks(lp, K), _from_chunks(ent, K)


def token_logprobs(hidden: jax.Array, weight: jax.Array, transposed: bool, labels: jax.Array,
                   chunk: int = 256, temperature: float = 1.0,
                   suppress_ids: tuple[int, ...] = ()) -> jax.Array:
    """log softmax(hidden @ W / temperature)[labels]: hidden (B, K, D), labels (B, K) -> (B, K)
    float32, differentiable in hidden and weight for any per-token cotangent.

    weight: the LM head, (D, V) (transposed False) or the tied embedding (V, D) (True).
    Logits are fp32-accumulated products of `hidden.dtype` operands, `chunk` positions at a
    time; temperature is a static divisor of the logits (GRPO scores the sampling policy);
    suppress_ids are left out of the softmax (the module doc).
    """
    return _logprobs(hidden, weight, transposed, labels, chunk, temperature, False,
                     suppress_ids)[0]


def token_logprobs_with_entropy(hidden: jax.Array, weight: jax.Array, transposed: bool,
                                labels: jax.Array, chunk: int = 256, temperature: float = 1.0,
                                suppress_ids: tuple[int, ...] = ()
                                ) -> tuple[jax.Array, jax.Array]:
    """(token_logprobs(...), entropy (B, K)): the entropy of softmax(hidden @ W / T) at each
    position from the same chunk logits, so logging it costs no second vocabulary projection.
    The log-probs differentiate as token_logprobs'; the entropy is a metric (no gradient)."""
    lp, ent = _logprobs(hidden, weight, transposed, labels, chunk, temperature, True,
                        suppress_ids)
    return lp, jax.lax.stop_gradient(ent)


# ---------------------------------------------------------------- fused weighted sum (SFT)

@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 5))
def _fused_logprob_sum(hs, w, transposed, ys, ws, temperature):
    return _fused_fwd(hs, w, transposed, ys, ws, temperature)[0]


def _fused_fwd(hs, w, transposed, ys, ws, temperature):
    """Forward that also forms both gradients, chunk by chunk: d(sum)/dlogits is
    w * (onehot - softmax), known as soon as the chunk's logits are; so backward needs no
    logits and no second vocabulary projection."""
    def one(dw, args):
        h, y, wc = args
        logits = _chunk_logits(h, w, transposed, temperature)
        lse = jax.nn.logsumexp(logits, -1)
        lp = jnp.take_along_axis(logits, y[..., None], -1)[..., 0] - lse
        dh, dwc = _matmul_grads(_logprob_grad(logits, lse, y, wc, temperature), h, w, transposed)
        return dw + dwc, (jnp.sum(lp * wc), dh)

    dw, (totals, dhs) = jax.lax.scan(one, jnp.zeros(w.shape, jnp.float32), (hs, ys, ws))
    return totals.sum(), (dhs, dw.astype(w.dtype))


def _fused_bwd(transposed, temperature, res, g):
    dhs, dw = res
    return (g * dhs).astype(dhs.dtype), (g * dw).astype(dw.dtype), None, None


_fused_logprob_sum.defvjp(_fused_fwd, _fused_bwd)


def token_logprob_sum(hidden: jax.Array, weight: jax.Array, transposed: bool, labels: jax.Array,
                      token_weight: jax.Array, chunk: int = 256, temperature: float = 1.0
                      ) -> jax.Array:
    """sum(token_logprobs(...) * token_weight), a scalar, with the fused 3-matmul gradient.

    token_weight (B, K) is not differentiated (loss weights, masks): that is what lets the
    forward pass form the gradients. Shapes and dtypes as token_logprobs.
    """
    hs, ys, ws = _to_chunks(chunk, hidden, labels.astype(jnp.int32),
                            jax.lax.stop_gradient(token_weight.astype(jnp.float32)))
    return _fused_logprob_sum(hs, weight.astype(hidden.dtype), transposed, ys, ws,
                              float(temperature))


# ---------------------------------------------------------------- model side of a loss

def lm_head_weight(model) -> tuple[jax.Array, bool]:
    """(weight, transposed): logits = h @ W (untied, (D, V)) or h @ W.T (tied, (V, D))."""
    if model.lm_head is None:
        return model.model.language_model.embed_tokens.embedding[...], True
    return model.lm_head.kernel[...], False


def loss_hidden(model, batch: Mapping[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """(hidden (B, K, D), labels (B, K)) at the batch's loss positions: one forward, no logits.

    Position t predicts token t + 1, so labels are input_ids at loss_index + 1. Vision comes
    as data (train_state.with_vision: slot-layout pixels with image_inputs / video_inputs,
    traced under jit); concrete grids (image_grid_thw ...) with flat pixels work eagerly.
    """
    out = model(batch["input_ids"], batch["attention_mask"], batch["position_ids"],
                batch.get("pixel_values"), batch.get("image_grid_thw"),
                batch.get("pixel_values_videos"), batch.get("video_grid_thw"),
                compute_logits=False, image_inputs=batch.get("image_inputs"),
                video_inputs=batch.get("video_inputs"))
    index = batch["loss_index"]
    hidden = jnp.take_along_axis(out.last_hidden_state, index[..., None], axis=1)
    return hidden, jnp.take_along_axis(batch["input_ids"], index + 1, axis=1)


def policy_token_logprobs(model, batch: Mapping[str, jax.Array], temperature: float = 1.0,
                          chunk: int = 256, suppress_ids: tuple[int, ...] = ()) -> jax.Array:
    """(B, K) log-probs of the learned tokens (loss positions): the learner's, the reference
    model's, evaluation's, over the vocabulary without suppress_ids (the sampler's mask).
    Padding positions (loss_weight 0) hold the log-prob of token 1."""
    hidden, labels = loss_hidden(model, batch)
    weight, transposed = lm_head_weight(model)
    return token_logprobs(hidden, weight, transposed, labels, chunk, temperature, suppress_ids)


@register_loss("sft")
def sft_loss(model, batch: Mapping[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean NLL of the learned tokens: -sum(token_logprobs * loss_weight) / count."""
    hidden, labels = loss_hidden(model, batch)
    weight, transposed = lm_head_weight(model)
    w = batch["loss_weight"].astype(jnp.float32)
    count = jnp.sum(w)
    total = token_logprob_sum(hidden, weight, transposed, labels, w)
    return -total / jnp.maximum(count, 1.0), {"loss_tokens": count}


__all__ = ["LossFn", "get_loss", "lm_head_weight", "loss_hidden", "policy_token_logprobs",
           "register_loss", "registered_losses", "sft_loss", "token_logprob_sum",
           "token_logprobs", "token_logprobs_with_entropy"]
