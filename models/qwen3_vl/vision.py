"""Qwen3-VL vision tower in Flax NNX (mirrors transformers' Qwen3VLVisionModel).

Patches arrive flattened, (N, C*T*P*P) = (N, 1536), grouped per grid (image or video) and laid
out in spatial-merge-block order. `grid_thw` must be concrete (numpy): it fixes shapes, so
under jit pass it as a static argument.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seeker_jax.models.qwen3_vl.config import VisionConfig
from seeker_jax.models.qwen3_vl.layers import Embed, LayerNorm, Linear, activation, gelu_erf
from seeker_jax.models.qwen3_vl.rope import (apply_rotary, pos_embed_interpolation_np,
                                             vision_position_ids_np, vision_rotary_cos_sin)


def concrete_grid(grid_thw, name: str = "grid_thw") -> np.ndarray:
    """grid_thw as an (n, 3) numpy array; a traced value is refused with a clear message."""
    if isinstance(grid_thw, jax.core.Tracer):
        raise TypeError(f"{name} must be concrete (numpy or a tuple): it fixes array shapes. "
                        "Under jit, pass it as a static argument.")
    return np.asarray(grid_thw, dtype=np.int64).reshape(-1, 3)


class Qwen3VLVisionPatchEmbed(nnx.Module):
    """Conv3d with kernel == stride is a matmul over flattened (c, t, p, p) patches."""

    def __init__(self, cfg: VisionConfig, *, dtype, param_dtype, rngs: nnx.Rngs):
        self.proj = Linear(cfg.patch_dim, cfg.hidden_size, ("patch", "vision_embed"),
                           use_bias=True, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, pixel_values: jax.Array) -> jax.Array:
        return self.proj(pixel_values)


class Qwen3VLVisionMLP(nnx.Module):
    def __init__(self, cfg: VisionConfig, *, dtype, param_dtype, rngs: nnx.Rngs):
        kw = dict(use_bias=True, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.linear_fc1 = Linear(cfg.hidden_size, cfg.intermediate_size,
                                 ("vision_embed", "vision_mlp"), **kw)
        self.linear_fc2 = Linear(cfg.intermediate_size, cfg.hidden_size,
                                 ("vision_mlp", "vision_embed"), **kw)
        self.act = activation(cfg.hidden_act)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear_fc2(self.act(self.linear_fc1(x)))


class Qwen3VLVisionAttention(nnx.Module):
    """Bidirectional attention inside each temporal patch (h*w tokens); fused qkv with bias."""

    def __init__(self, cfg: VisionConfig, *, dtype, param_dtype, rngs: nnx.Rngs):
        kw = dict(use_bias=True, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.qkv = Linear(cfg.hidden_size, 3 * cfg.hidden_size, ("vision_embed", "vision_qkv"),
                          **kw)
        self.proj = Linear(cfg.hidden_size, cfg.hidden_size, ("vision_qkv", "vision_embed"), **kw)
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.head_dim
        self.dtype = dtype

    def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array,
                 grid_thw: np.ndarray) -> jax.Array:
        n = x.shape[0]
        qkv = self.qkv(x).reshape(n, 3, self.num_heads, self.head_dim)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
        c, s = cos[:, None, :], sin[:, None, :]
        q = apply_rotary(q.astype(jnp.float32), c, s).astype(self.dtype)
        k = apply_rotary(k.astype(jnp.float32), c, s).astype(self.dtype)
        outs, start = [], 0
        for t, hw in attention_runs(grid_thw):
            size = t * hw
            # (t, h*w, heads, D): attention never crosses a temporal patch.
            seg = [a[start:start + size].reshape(t, hw, self.num_heads, self.head_dim)
                   for a in (q, k, v)]
            outs.append(_full_attention(*seg).reshape(size, -1))
            start += size
        return self.proj(jnp.concatenate(outs, axis=0))


def attention_runs(grid_thw: np.ndarray) -> list[tuple[int, int]]:
    """(temporal patches, tokens per patch) of each run of consecutive grids of one size.

    Attention is per temporal patch, so consecutive images / videos of the same h x w are one
    batched attention: a batch of 16 same-size videos compiles one attention, not 16.
    """
    runs: list[tuple[int, int]] = []
    for t, h, w in np.asarray(grid_thw).tolist():
        if runs and runs[-1][1] == h * w:
            runs[-1] = (runs[-1][0] + t, h * w)
        else:
            runs.append((t, h * w))
    return runs


def _full_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Unmasked attention, (G, S, H, D) -> (G, S, H, D), float32 softmax."""
    scale = q.shape[-1] ** -0.5
    scores = jnp.einsum("gqhd,gkhd->ghqk", q, k).astype(jnp.float32) * scale
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("ghqk,gkhd->gqhd", probs, v)


class Qwen3VLVisionBlock(nnx.Module):
    def __init__(self, cfg: VisionConfig, *, dtype, param_dtype, rngs: nnx.Rngs):
        norm = dict(eps=1e-6, dtype=dtype, param_dtype=param_dtype)
        self.norm1 = LayerNorm(cfg.hidden_size, ("vision_embed",), **norm)
        self.norm2 = LayerNorm(cfg.hidden_size, ("vision_embed",), **norm)
        self.attn = Qwen3VLVisionAttention(cfg, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.mlp = Qwen3VLVisionMLP(cfg, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x, cos, sin, grid_thw: np.ndarray) -> jax.Array:
        x = x + self.attn(self.norm1(x), cos, sin, grid_thw)
        return x + self.mlp(self.norm2(x))


class Qwen3VLVisionPatchMerger(nnx.Module):
    """LayerNorm, 2x2 merge to 4C, fc1, erf-GELU, fc2 to the LM width.

    DeepStack mergers use `use_postshuffle_norm`: the norm is over the merged 4C vector.
    """

    def __init__(self, cfg: VisionConfig, use_postshuffle_norm: bool, *, dtype, param_dtype,
                 rngs: nnx.Rngs):
        merged = cfg.hidden_size * cfg.spatial_merge_size**2
        self.merged = merged
        self.use_postshuffle_norm = use_postshuffle_norm
        self.norm = LayerNorm(merged if use_postshuffle_norm else cfg.hidden_size,
                              ("vision_merged" if use_postshuffle_norm else "vision_embed",),
                              eps=1e-6, dtype=dtype, param_dtype=param_dtype)
        kw = dict(use_bias=True, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.linear_fc1 = Linear(merged, merged, ("vision_merged", "vision_mlp"), **kw)
        self.linear_fc2 = Linear(merged, cfg.out_hidden_size, ("vision_mlp", "embed"), **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.use_postshuffle_norm:
            x = self.norm(x.reshape(-1, self.merged))
        else:
            x = self.norm(x).reshape(-1, self.merged)
        return self.linear_fc2(gelu_erf(self.linear_fc1(x)))


class VisionOutput(NamedTuple):
    embeds: jax.Array              # (N / m^2, out_hidden)
    deepstack: list[jax.Array]     # one (N / m^2, out_hidden) per deepstack index


class Qwen3VLVisionModel(nnx.Module):
    def __init__(self, cfg: VisionConfig, *, dtype=jnp.float32, param_dtype=jnp.float32,
                 rngs: nnx.Rngs):
        self.config = cfg
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.patch_embed = Qwen3VLVisionPatchEmbed(cfg, **kw)
        self.pos_embed = Embed(cfg.num_position_embeddings, cfg.hidden_size,
                               ("vision_pos", "vision_embed"), **kw)
        self.blocks = nnx.List([Qwen3VLVisionBlock(cfg, **kw) for _ in range(cfg.depth)])
        self.merger = Qwen3VLVisionPatchMerger(cfg, False, **kw)
        self.deepstack_merger_list = nnx.List(
            [Qwen3VLVisionPatchMerger(cfg, True, **kw) for _ in cfg.deepstack_visual_indexes])
        self.dtype = dtype

    def position_embedding(self, grid_thw: np.ndarray) -> jax.Array:
        """Learned 48x48 table bilinearly resized to each grid, (N, C)."""
        idx, w = pos_embed_interpolation_np(grid_thw, self.config.num_grid_per_side,
                                            self.config.spatial_merge_size)
        table = self.pos_embed.embedding[...]
        return (jnp.take(table, jnp.asarray(idx), axis=0).astype(jnp.float32)
                * jnp.asarray(w)[:, :, None]).sum(1)

    def rotary(self, grid_thw: np.ndarray) -> tuple[jax.Array, jax.Array]:
        pos = vision_position_ids_np(grid_thw, self.config.spatial_merge_size)
        return vision_rotary_cos_sin(jnp.asarray(pos), self.config.head_dim,
                                     self.config.rope_theta)

    def __call__(self, pixel_values: jax.Array, grid_thw) -> VisionOutput:
        grid_thw = concrete_grid(grid_thw)
        expected = int(grid_thw.prod(-1).sum())
        if pixel_values.shape != (expected, self.config.patch_dim):
            raise ValueError(f"pixel values have shape {tuple(pixel_values.shape)} but grid_thw "
                             f"{grid_thw.tolist()} needs ({expected}, {self.config.patch_dim})")
        x = self.patch_embed(pixel_values)
        x = x + self.position_embedding(grid_thw).astype(x.dtype)
        cos, sin = self.rotary(grid_thw)
        deepstack = []
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, grid_thw)
            if i in self.config.deepstack_visual_indexes:
                j = self.config.deepstack_visual_indexes.index(i)
                deepstack.append(self.deepstack_merger_list[j](x))
        return VisionOutput(self.merger(x), deepstack)
