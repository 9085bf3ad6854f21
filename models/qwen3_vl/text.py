"""Qwen3-VL language model in Flax NNX (mirrors transformers' Qwen3VLTextModel).

Qwen3 decoder: RMSNorm, GQA with per-head RMSNorm on q and k before RoPE, no attention bias,
SwiGLU; interleaved MRoPE; DeepStack visual features added after the first decoder layers.

The KV cache is an explicit pytree (a list of head-major `LayerCache`), passed in and
returned, so a jitted sampler owns it. Each sequence writes its new keys at its own offset
`write_index[b]` and the caller gives the (B, Lq, S) boolean mask of what each query may see. Without a cache
(training, prefill) the mask is an `attention.AttentionMask`, so the configured fused
attention can run; a dense mask always runs the reference.

`scan_layers=True` stores the decoder layers stacked (stacking.py: one module whose arrays carry
a leading layer axis) and runs them as one `jax.lax.scan` (see `scan_decoder`): XLA compiles
one layer body instead of `num_hidden_layers` copies.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from seeker_jax.models.qwen3_vl.attention import (AttentionAxes, AttentionMask, cache_attention,
                                                  check_impl,
                                                  dot_product_attention, reference_attention)
from seeker_jax.models.qwen3_vl.config import TextConfig
from seeker_jax.models.qwen3_vl.layers import Embed, Linear, RMSNorm, activation
from seeker_jax.models.qwen3_vl.rope import apply_rotary, mrope_cos_sin
from seeker_jax.models.qwen3_vl.stacking import stack_modules


class LayerCache(NamedTuple):
    """Head-major, as attention reads it: (B, kv_heads, S, head_dim). Scores and values are
    then batched matmuls over (B, kv_heads) with no transposed copy of the cache per step (a
    (B, S, kv_heads, D) cache was copied twice per layer and token in decode)."""
    key: jax.Array    # (B, kv_heads, S, head_dim)
    value: jax.Array  # (B, kv_heads, S, head_dim)



def init_cache(cfg: TextConfig, batch: int, max_len: int, dtype=jnp.float32) -> list[LayerCache]:
    shape = (batch, cfg.num_key_value_heads, max_len, cfg.head_dim)
    return [LayerCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))
            for _ in range(cfg.num_hidden_layers)]


def _write(cache: jax.Array, new: jax.Array, index: jax.Array) -> jax.Array:
    """Writes new (B, L, kv_heads, D) into cache (B, kv_heads, S, D) at per-sequence slot
    offsets index (B,)."""
    def one(c, n, i):
        n = jnp.swapaxes(n, 0, 1).astype(c.dtype)  # (kv_heads, L, D)
        return jax.lax.dynamic_update_slice_in_dim(c, n, i, axis=1)
    return jax.vmap(one)(cache, new, index)


# The dense reference (kept under its old name: parity tests and the cache path use it).
attention = reference_attention


class Qwen3VLTextAttention(nnx.Module):
    def __init__(self, cfg: TextConfig, *, dtype, param_dtype, rngs: nnx.Rngs,
                 attention_impl: str = "auto",
                 attention_axes: AttentionAxes | None = None):
        kw = dict(use_bias=cfg.attention_bias, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        h, kvh, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.q_proj = Linear(cfg.hidden_size, h * d, ("embed", "q_heads"), **kw)
        self.k_proj = Linear(cfg.hidden_size, kvh * d, ("embed", "kv_heads"), **kw)
        self.v_proj = Linear(cfg.hidden_size, kvh * d, ("embed", "kv_heads"), **kw)
        self.o_proj = Linear(h * d, cfg.hidden_size, ("q_heads", "embed"), **kw)
        norm = dict(eps=cfg.rms_norm_eps, dtype=dtype, param_dtype=param_dtype)
        self.q_norm = RMSNorm(d, ("head_dim",), **norm)
        self.k_norm = RMSNorm(d, ("head_dim",), **norm)
        self.num_heads, self.num_kv_heads, self.head_dim = h, kvh, d
        self.attention_impl = check_impl(attention_impl)
        self.attention_axes = attention_axes

    def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array,
                 mask: AttentionMask | jax.Array,
                 cache: LayerCache | None = None, write_index: jax.Array | None = None
                 ) -> tuple[jax.Array, LayerCache | None]:
        B, L, _ = x.shape
        q = self.q_norm(self.q_proj(x).reshape(B, L, self.num_heads, self.head_dim))
        k = self.k_norm(self.k_proj(x).reshape(B, L, self.num_kv_heads, self.head_dim))
        v = self.v_proj(x).reshape(B, L, self.num_kv_heads, self.head_dim)
        c, s = cos[:, :, None, :], sin[:, :, None, :]
        q, k = apply_rotary(q, c, s), apply_rotary(k, c, s)
        if cache is not None:
            cache = LayerCache(_write(cache.key, k, write_index), _write(cache.value, v, write_index))
            # The mask's width is the window of slots attention reads (a sampler attends only
            # to the bucket of slots its rows have filled, not the whole cache).
            window = mask.shape[-1]
            out = cache_attention(q, cache.key[:, :, :window].astype(q.dtype),
                                  cache.value[:, :, :window].astype(q.dtype), mask)
        else:
            out = dot_product_attention(q, k, v, mask, self.attention_impl,
                                        self.attention_axes)
        return self.o_proj(out.reshape(B, L, -1)), cache


class Qwen3VLTextMLP(nnx.Module):
    def __init__(self, cfg: TextConfig, *, dtype, param_dtype, rngs: nnx.Rngs):
        kw = dict(use_bias=False, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.gate_proj = Linear(cfg.hidden_size, cfg.intermediate_size, ("embed", "mlp"), **kw)
        self.up_proj = Linear(cfg.hidden_size, cfg.intermediate_size, ("embed", "mlp"), **kw)
        self.down_proj = Linear(cfg.intermediate_size, cfg.hidden_size, ("mlp", "embed"), **kw)
        self.act = activation(cfg.hidden_act)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class Qwen3VLTextDecoderLayer(nnx.Module):
    def __init__(self, cfg: TextConfig, *, dtype, param_dtype, rngs: nnx.Rngs,
                 attention_impl: str = "auto",
                 attention_axes: AttentionAxes | None = None):
        kw = dict(dtype=dtype, param_dtype=param_dtype)
        self.self_attn = Qwen3VLTextAttention(cfg, rngs=rngs, attention_impl=attention_impl,
                                              attention_axes=attention_axes, **kw)
        self.mlp = Qwen3VLTextMLP(cfg, rngs=rngs, **kw)
        self.input_layernorm = RMSNorm(cfg.hidden_size, ("embed",), eps=cfg.rms_norm_eps, **kw)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, ("embed",),
                                                eps=cfg.rms_norm_eps, **kw)

    def __call__(self, x, cos, sin, mask, cache=None, write_index=None):
        h, cache = self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, write_index)
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x)), cache


class Qwen3VLTextModel(nnx.Module):
    def __init__(self, cfg: TextConfig, *, dtype=jnp.float32, param_dtype=jnp.float32,
                 rngs: nnx.Rngs, remat: str = "none", scan_layers: bool = False,
                 attention_impl: str = "auto",
                 attention_axes: AttentionAxes | None = None):
        """attention_impl: an attention.IMPLEMENTATIONS name, used when the mask is an
        AttentionMask (training / prefill); a dense mask (the cache path) runs the reference."""
        self.config = cfg
        kw = dict(dtype=dtype, param_dtype=param_dtype)
        self.embed_tokens = Embed(cfg.vocab_size, cfg.hidden_size, ("vocab", "embed"),
                                  rngs=rngs, **kw)
        layers = [Qwen3VLTextDecoderLayer(cfg, rngs=rngs, attention_impl=attention_impl,
                                          attention_axes=attention_axes, **kw)
                  for _ in range(cfg.num_hidden_layers)]
        # Stacked: one layer module holding (n_layers, ...) arrays (stacking.py); the same
        # random init as the list, drawn in the same order.
        self.layers = stack_modules(layers) if scan_layers else nnx.List(layers)
        self.norm = RMSNorm(cfg.hidden_size, ("embed",), eps=cfg.rms_norm_eps, **kw)
        self.dtype = dtype
        self.remat = remat
        self.scan_layers = scan_layers

    def __call__(self, inputs_embeds: jax.Array, position_ids: jax.Array,
                 mask: AttentionMask | jax.Array, deepstack: list[jax.Array] | None = None,
                 cache: list[LayerCache] | None = None, write_index: jax.Array | None = None
                 ) -> tuple[jax.Array, list[LayerCache] | None]:
        """inputs_embeds (B, L, D); position_ids (3, B, L); mask: an AttentionMask
        (causal with padding, no cache) or a dense (B, L, S) bool visibility (cache calls).

        deepstack: per-layer (B, L, D) additions (zero off visual tokens) for layers 0..k-1.
        """
        cfg = self.config
        cos, sin = mrope_cos_sin(position_ids, cfg.head_dim, cfg.rope_theta, cfg.mrope_section,
                                 self.dtype)
        x = inputs_embeds.astype(self.dtype)
        if self.scan_layers:
            x, new_cache = scan_decoder(self.layers, x, cos, sin, mask, deepstack, cache,
                                        write_index, self.remat)
            return self.norm(x), new_cache
        new_cache = [] if cache is not None else None
        for i, layer in enumerate(self.layers):
            fn = _remat(layer, self.remat)
            x, layer_cache = fn(x, cos, sin, mask, None if cache is None else cache[i],
                                write_index)
            if new_cache is not None:
                new_cache.append(layer_cache)
            if deepstack is not None and i < len(deepstack):
                x = x + deepstack[i].astype(x.dtype)
        return self.norm(x), new_cache


REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def _remat(layer: Qwen3VLTextDecoderLayer, policy: str):
    """The layer's call, rematerialized in the backward pass under `policy`."""
    if policy not in REMAT_POLICIES:
        raise ValueError(f"unknown remat policy {policy!r}; choose from {sorted(REMAT_POLICIES)}")
    if policy == "none":
        return layer
    return functools.partial(nnx.remat(type(layer).__call__, policy=REMAT_POLICIES[policy]),
                             layer)


def _stack(trees: list):
    """Per-layer pytrees with equal structure -> one pytree with a leading layer axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def scan_decoder(layers: Qwen3VLTextDecoderLayer, x: jax.Array, cos: jax.Array,
                 sin: jax.Array, mask: jax.Array, deepstack: list[jax.Array] | None = None,
                 cache: list[LayerCache] | None = None, write_index: jax.Array | None = None,
                 remat: str = "none") -> tuple[jax.Array, list[LayerCache] | None]:
    """The decoder stack as one `lax.scan`: equal to the unrolled loop, compiled once.

    layers: the stacked decoder layer (stacking.stack_modules: every array (n_layers, ...)),
    scanned over as stored: no per-call copy of the weights, and their gradients come back
    stacked, so the optimizer sees one array per weight name. x (B, L, D); cos/sin (B, L,
    head_dim); mask (B, L, S); deepstack: k (B, L, D) additions for layers 0..k-1; cache: one
    LayerCache (B, KVH, S, head_dim) per layer.

    DeepStack: layer i adds table[min(i, k-1)] where i < k, zero otherwise, with the (k, B,
    L, D) table read by the layer index, so no (n_layers, B, L, D) zeros are materialized.
    The cache, when given, is stacked to (n_layers, B, S, ...) and split back after the scan
    (a transient second copy of the cache: fine for training and small serving batches).
    `remat` (REMAT_POLICIES) is applied to the scan body, so it acts per layer as unrolled.
    """
    if remat not in REMAT_POLICIES:
        raise ValueError(f"unknown remat policy {remat!r}; choose from {sorted(REMAT_POLICIES)}")
    graphdef, params = nnx.split(layers)
    n = jax.tree.leaves(params)[0].shape[0]
    k = 0 if deepstack is None else min(len(deepstack), n)
    table = jnp.stack([d.astype(x.dtype) for d in deepstack[:k]]) if k else None
    caches = None if cache is None else _stack(list(cache))

    def body(h, xs):
        i, state, layer_cache = xs
        h, layer_cache = nnx.merge(graphdef, state)(h, cos, sin, mask, layer_cache, write_index)
        if table is not None:
            inject = jax.lax.dynamic_index_in_dim(table, jnp.minimum(i, k - 1), keepdims=False)
            h = h + jnp.where(i < k, inject, jnp.zeros_like(inject))
        return h, layer_cache

    if remat != "none":
        body = jax.checkpoint(body, policy=REMAT_POLICIES[remat], prevent_cse=False)
    x, caches = jax.lax.scan(body, x, (jnp.arange(n), params, caches))
    if cache is None:
        return x, None
    return x, [LayerCache(caches.key[i], caches.value[i]) for i in range(n)]
