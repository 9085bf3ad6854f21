"""The sampler's device programs (jitted): extend a batch of rows' caches by a chunk of tokens,
decode up to `steps` tokens in one while_loop, copy cache rows, sample first tokens, and encode
vision (grids as data: one compile per bucket).

Conventions (see seeker_jax.generation.sampler for the host side): a cache is a list of per-layer
LayerCache (B, S, kv_heads, head_dim); rows that take no part in a call write at slot
max_len (scratch); each row's sampling key is row_keys(seed_key, episode, token index).

Sampling: `params` (static) is a SamplingParams (one value for every row, compiled in) or a
SamplingPlan with each row's temperature / top-k / top-p in `sampling` (data: one program for any
values; see seeker_jax.generation.sampling).

`top_n` (static, 0 by default): the programs that sample also return each sampled position's
top_n alternatives under the learner distribution (sampling.top_logprobs), computed on device
inside the loop: ids and log-probs (B, top_n) per position, or None when top_n is 0 (then the
program is the one it always was, and GRPO rollouts and evaluation pay nothing).

The decode step's logits are the model's own projection (`model.logits`), on every backend.
"""
from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from seeker_jax.models.qwen3_vl.modeling import (Qwen3VLForConditionalGeneration,
                                                 scatter_features, visibility_mask)
from seeker_jax.models.qwen3_vl.vision_inputs import VisionInputs
from seeker_jax.generation.sampling import (RowSampling, SamplingParams, SamplingPlan, as_plan,
                                            row_keys, sample, top_logprobs)

STOP_TOKEN, STOP_MAX_NEW, STOP_MAX_LEN, STOP_STRING, STOP_CANCELLED = 1, 2, 3, 4, 5
STOP_REASONS = {STOP_TOKEN: "stop_token", STOP_MAX_NEW: "max_new_tokens",
                STOP_MAX_LEN: "max_len", STOP_STRING: "stop_string",
                STOP_CANCELLED: "cancelled"}


def top_alternatives(logits: jax.Array, params: SamplingParams | SamplingPlan,
                     rows: RowSampling | None, top_n: int
                     ) -> tuple[jax.Array, jax.Array] | None:
    """Each row's top_n learner log-probs, best first: logits (B, V) -> ids (B, top_n) int32,
    log-probs (B, top_n) float32; None when top_n is 0 (nothing is computed)."""
    if not top_n:
        return None
    plan, rows = as_plan(params, rows, logits.shape[0], logits.shape[-1])
    return top_logprobs(logits, top_n, rows.temperature, plan.suppress_ids)


def language_model(model: Qwen3VLForConditionalGeneration, cache, ids, positions, write_index,
                   n_valid, feats, deepstack, window: int | None = None):
    """The decoder on (B, L) ids written at write_index (B,); n_valid (B,) real tokens each.

    window (static): attention reads only the first `window` cache slots (None: all). Every
    row that takes part must end inside it (write_index + n_valid <= window); rows writing to
    the scratch slots beyond it are ignored anyway.

    feats (F, D) / deepstack (k, F, D): vision features for the visual tokens of `ids` in
    row-major order (padded at the end).
    """
    cfg = model.config
    lm = model.model.language_model
    B, L = ids.shape
    embeds = lm.embed_tokens(ids)
    extra = None
    if feats is not None:
        is_visual = (ids == cfg.image_token_id) | (ids == cfg.video_token_id)
        embeds = scatter_features(embeds, is_visual, feats)
        zeros = jnp.zeros_like(embeds)
        extra = [scatter_features(zeros, is_visual, d) for d in deepstack]
    S = cache[0].key.shape[2] if window is None else window  # head-major (B, KVH, S, D)
    valid = jnp.arange(S)[None, :] < (write_index + n_valid)[:, None]
    mask = visibility_mask(valid, B, L, cache, write_index)
    return lm(embeds, positions, mask, extra, cache, write_index)


@partial(jax.jit, static_argnames=("graphdef", "params", "top_n", "window"),
         donate_argnames=("cache",))
def extend(state, cache, ids, positions, write_index, n_valid, feats, deepstack, forced,
           seed_key, episode, *, graphdef, params, sampling=None, top_n=0, window=None):
    """Writes (B, L) ids and samples each row's next token, at conversation index
    write_index + n_valid, with its episode's key. Returns the cache, tokens (B,), log-probs
    (B,), the last logits (B, V) and the top_n alternatives (see top_alternatives)."""
    model = nnx.merge(graphdef, state)
    hidden, cache = language_model(model, cache, ids, positions, write_index, n_valid, feats,
                                   deepstack, window)
    last = hidden[jnp.arange(ids.shape[0]), n_valid - 1]
    logits = model.logits(last).astype(jnp.float32)
    keys = row_keys(seed_key, episode, write_index + n_valid)
    token, logprob = sample(logits, keys, params, forced, sampling)
    return cache, token, logprob, logits, top_alternatives(logits, params, sampling, top_n)


@partial(jax.jit, static_argnames=("graphdef",))
def encode_visual(state, pixels, inputs: VisionInputs, *, graphdef):
    """The vision tower on slot-layout pixels (N, 1536) and their VisionInputs (grids as data):
    one compile per vision bucket. Returns features (F, D) and DeepStack features (k, F, D),
    the first `inputs.num_features` real (HF order), padding after."""
    model = nnx.merge(graphdef, state)
    out = model.model.visual(pixels, inputs=inputs)
    return out.embeds, jnp.stack(out.deepstack)


@partial(jax.jit, donate_argnames=("cache",))
def copy_rows(cache, source):
    """Row b of the new cache is row source[b] (B,) of the old one (every slot)."""
    return jax.tree.map(lambda x: x[source], cache)


@partial(jax.jit, static_argnames=("params", "top_n"))
def first_tokens(logits, seed_key, episode, token_index, forced, *, params, sampling=None,
                 top_n=0):
    """The first token of a turn from logits (B, V) already computed (a forked row's): tokens,
    log-probs (B,) and the top_n alternatives (see top_alternatives)."""
    token, logprob = sample(logits, row_keys(seed_key, episode, token_index), params, forced,
                            sampling)
    return token, logprob, top_alternatives(logits, params, sampling, top_n)


class DecodeOut(NamedTuple):
    """What `decode` returns (a pytree): the cache; tokens / log-probs (B, steps) (-1 / 0
    where a row was inactive); the new row state (last token, length, position, tokens
    generated, still active); the stop code of rows that stopped (STOP_REASONS); and the
    top_n alternatives of each step, ids (B, steps, top_n) (-1 where inactive) and log-probs,
    or None when top_n is 0."""

    cache: Any
    tokens: jax.Array
    logprobs: jax.Array
    last: jax.Array
    length: jax.Array
    pos: jax.Array
    n_gen: jax.Array
    active: jax.Array
    stop: jax.Array
    top: tuple[jax.Array, jax.Array] | None


@partial(jax.jit, static_argnames=("graphdef", "params", "steps", "stop_ids", "max_len", "top_n",
                                   "window"), donate_argnames=("cache",))
def decode(state, cache, last, length, pos, n_gen, active, max_new, forced, forced_len,
           seed_key, episode, *, graphdef, params, steps, stop_ids, max_len, sampling=None,
           top_n=0, window=None):
    """Up to `steps` decode steps; stops early when no row is active. window: see
    language_model (every active row must stay inside it for all `steps`).

    last: the pending token of each row (written at slot `length`, position `pos`); the token
    it predicts is at conversation index length + 1 and drawn with its episode's key.
    Returns a DecodeOut.
    """
    model = nnx.merge(graphdef, state)
    B = last.shape[0]
    rows = jnp.arange(B)
    stops = jnp.asarray(stop_ids if stop_ids else (-1,), jnp.int32)

    def body(carry):
        i, cache, last, length, pos, n_gen, active, stop, toks, lps, tops = carry
        keys = row_keys(seed_key, episode, length + 1)
        write = jnp.where(active, length, max_len)
        positions = jnp.broadcast_to(pos[None, :, None], (3, B, 1))
        hidden, cache = language_model(model, cache, last[:, None], positions, write,
                                       jnp.ones_like(length), None, None, window)
        logits = model.logits(hidden[:, 0]).astype(jnp.float32)
        want = forced[rows, jnp.clip(n_gen, 0, forced.shape[1] - 1)]
        token, logprob = sample(logits, keys, params, jnp.where(n_gen < forced_len, want, -1),
                                sampling)
        step = active.astype(jnp.int32)
        length, pos, n_gen = length + step, pos + step, n_gen + step
        toks = toks.at[:, i].set(jnp.where(active, token, -1))
        lps = lps.at[:, i].set(jnp.where(active, logprob, 0.0))
        if top_n:
            top_ids, top_lps = top_alternatives(logits, params, sampling, top_n)
            tops = (tops[0].at[:, i].set(jnp.where(active[:, None], top_ids, -1)),
                    tops[1].at[:, i].set(jnp.where(active[:, None], top_lps, 0.0)))
        reason = jnp.where(jnp.isin(token, stops), STOP_TOKEN,
                           jnp.where(n_gen >= max_new, STOP_MAX_NEW,
                                     jnp.where(length + 1 >= max_len, STOP_MAX_LEN, 0)))
        stopping = active & (reason > 0)
        stop = jnp.where(stopping, reason, stop)
        last = jnp.where(active, token, last)
        return (i + 1, cache, last, length, pos, n_gen, active & ~stopping, stop, toks, lps,
                tops)

    toks = jnp.full((B, steps), -1, jnp.int32)
    lps = jnp.zeros((B, steps), jnp.float32)
    tops = ((jnp.full((B, steps, top_n), -1, jnp.int32),
             jnp.zeros((B, steps, top_n), jnp.float32)) if top_n else None)
    carry = (jnp.int32(0), cache, last, length, pos, n_gen, active, jnp.zeros_like(length),
             toks, lps, tops)
    carry = jax.lax.while_loop(lambda c: (c[0] < steps) & jnp.any(c[6]), body, carry)
    _, cache, last, length, pos, n_gen, active, stop, toks, lps, tops = carry
    return DecodeOut(cache, toks, lps, last, length, pos, n_gen, active, stop, tops)


__all__ = ["DecodeOut", "STOP_CANCELLED", "STOP_MAX_LEN", "STOP_MAX_NEW", "STOP_REASONS", "STOP_STRING",
           "STOP_TOKEN", "copy_rows", "decode", "encode_visual", "extend", "first_tokens",
           "language_model", "top_alternatives"]
