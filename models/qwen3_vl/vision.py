"""Qwen3-VL vision tower in Flax NNX (mirrors transformers' Qwen3VLVisionModel).

Patches arrive flattened, (N, C*T*P*P) = (N, 1536), grouped per grid (image or video) and laid
out in spatial-merge-block order. The grids reach the device as data: `vision_inputs.py` turns
them (on the host) into bucketed arrays, and the tower runs on packed attention blocks, so one
program serves every mix of grids that lands in the same bucket. A concrete `grid_thw` still
works: the arrays are then built on the spot.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seeker_jax.models.qwen3_vl.attention import (AttentionAxes, check_impl,
                                                  dot_product_attention,
                                                  reference_segment_attention, segment_mask)
from seeker_jax.models.qwen3_vl.config import VisionConfig
from seeker_jax.models.qwen3_vl.layers import Embed, LayerNorm, Linear, activation, gelu_erf
from seeker_jax.models.qwen3_vl.rope import (apply_rotary, pos_embed_interpolation_np,
                                             vision_position_ids_np, vision_rotary_cos_sin)
from seeker_jax.models.qwen3_vl.stacking import stack_modules
from seeker_jax.models.qwen3_vl.vision_inputs import (DEFAULT_BUCKETS, VisionBuckets,
                                                      VisionInputs, build_vision_inputs,
                                                      layout_pixels)


def concrete_grid(grid_thw, name: str = "grid_thw") -> np.ndarray:
    """grid_thw as an (n, 3) numpy array; a traced value is refused with a clear message."""
    if isinstance(grid_thw, jax.core.Tracer):
        raise TypeError(f"{name} must be concrete (numpy or a tuple): it is read on the host. "
                        "Under jit, pass the arrays from build_vision_inputs instead "
                        "(inputs=/image_inputs=/video_inputs=), or the grid as a static argument.")
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
    """Bidirectional attention inside each temporal patch; fused qkv with bias.

    x (B, S, C) in the packed block layout of `vision_inputs`; segment_ids (B, S) say which
    temporal patch each slot holds (-1 padding), so attention never crosses a group.
    """

    def __init__(self, cfg: VisionConfig, *, dtype, param_dtype, rngs: nnx.Rngs,
                 attention_impl: str = "auto",
                 attention_axes: AttentionAxes | None = None):
        kw = dict(use_bias=True, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.qkv = Linear(cfg.hidden_size, 3 * cfg.hidden_size, ("vision_embed", "vision_qkv"),
                          **kw)
        self.proj = Linear(cfg.hidden_size, cfg.hidden_size, ("vision_qkv", "vision_embed"), **kw)
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.head_dim
        self.dtype = dtype
        self.attention_impl = check_impl(attention_impl)
        self.attention_axes = attention_axes

    def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array,
                 segment_ids: jax.Array) -> jax.Array:
        B, S, _ = x.shape
        qkv = self.qkv(x).reshape(B, S, 3, self.num_heads, self.head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        c, s = cos[:, :, None, :], sin[:, :, None, :]
        q = apply_rotary(q.astype(jnp.float32), c, s).astype(self.dtype)
        k = apply_rotary(k.astype(jnp.float32), c, s).astype(self.dtype)
        out = dot_product_attention(q, k, v, segment_mask(segment_ids), self.attention_impl,
                                    self.attention_axes)
        return self.proj(out.reshape(B, S, -1))


# The dense reference per block (kept under its old name; parity tests use it).
block_attention = reference_segment_attention


class Qwen3VLVisionBlock(nnx.Module):
    def __init__(self, cfg: VisionConfig, *, dtype, param_dtype, rngs: nnx.Rngs,
                 attention_impl: str = "auto",
                 attention_axes: AttentionAxes | None = None):
        norm = dict(eps=1e-6, dtype=dtype, param_dtype=param_dtype)
        self.norm1 = LayerNorm(cfg.hidden_size, ("vision_embed",), **norm)
        self.norm2 = LayerNorm(cfg.hidden_size, ("vision_embed",), **norm)
        self.attn = Qwen3VLVisionAttention(cfg, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
                                           attention_impl=attention_impl,
                                           attention_axes=attention_axes)
        self.mlp = Qwen3VLVisionMLP(cfg, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x, cos, sin, segment_ids: jax.Array) -> jax.Array:
        """x (B, S, C), cos/sin (B, S, head_dim), segment_ids (B, S)."""
        x = x + self.attn(self.norm1(x), cos, sin, segment_ids)
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
    embeds: jax.Array              # (F, out_hidden): real features first, in HF order
    deepstack: list[jax.Array]     # one (F, out_hidden) per deepstack index


class Qwen3VLVisionModel(nnx.Module):
    def __init__(self, cfg: VisionConfig, *, dtype=jnp.float32, param_dtype=jnp.float32,
                 rngs: nnx.Rngs, attention_impl: str = "auto",
                 attention_axes: AttentionAxes | None = None, scan_layers: bool = False):
        """scan_layers: run the blocks as one lax.scan (`scan_blocks`): one compiled block."""
        self.config = cfg
        self.scan_layers = scan_layers
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.patch_embed = Qwen3VLVisionPatchEmbed(cfg, **kw)
        self.pos_embed = Embed(cfg.num_position_embeddings, cfg.hidden_size,
                               ("vision_pos", "vision_embed"), **kw)
        blocks = [Qwen3VLVisionBlock(cfg, attention_impl=attention_impl,
                                     attention_axes=attention_axes, **kw)
                  for _ in range(cfg.depth)]
        # Stacked (stacking.py) when scanned: one block module holding (depth, ...) arrays.
        self.blocks = stack_modules(blocks) if scan_layers else nnx.List(blocks)
        self.merger = Qwen3VLVisionPatchMerger(cfg, False, **kw)
        self.deepstack_merger_list = nnx.List(
            [Qwen3VLVisionPatchMerger(cfg, True, **kw) for _ in cfg.deepstack_visual_indexes])
        self.dtype = dtype

    def vision_inputs(self, grid_thw, buckets: VisionBuckets = DEFAULT_BUCKETS,
                      **sizes) -> VisionInputs:
        """Host-side: the bucketed arrays for these grids (see `vision_inputs.py`)."""
        return build_vision_inputs(concrete_grid(grid_thw), merge=self.config.spatial_merge_size,
                                   side=self.config.num_grid_per_side, buckets=buckets, **sizes)

    def interpolate_pos_embed(self, index, weight) -> jax.Array:
        """sum_k table[index[:, k]] * weight[:, k]: (N, 4) taps -> (N, C) float32."""
        table = self.pos_embed.embedding[...]
        return (jnp.take(table, jnp.asarray(index), axis=0).astype(jnp.float32)
                * jnp.asarray(weight)[:, :, None]).sum(1)

    def position_embedding(self, grid_thw: np.ndarray) -> jax.Array:
        """Learned 48x48 table bilinearly resized to each grid, (N, C), flat patch order."""
        idx, w = pos_embed_interpolation_np(concrete_grid(grid_thw), self.config.num_grid_per_side,
                                            self.config.spatial_merge_size)
        return self.interpolate_pos_embed(idx, w)

    def rotary(self, grid_thw: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """cos, sin (N, head_dim) in flat patch order."""
        pos = vision_position_ids_np(concrete_grid(grid_thw), self.config.spatial_merge_size)
        return vision_rotary_cos_sin(jnp.asarray(pos), self.config.head_dim,
                                     self.config.rope_theta)

    def __call__(self, pixel_values: jax.Array, grid_thw=None, *,
                 inputs: VisionInputs | None = None) -> VisionOutput:
        """Two ways in.

        - `inputs=` (grids as data, jit-friendly): pixel_values is already in the slot layout,
          (N, patch_dim) = `layout_pixels(flat, inputs)`; returns F = N / m^2 features, the
          first `inputs.num_features` real.
        - `grid_thw` (concrete): pixel_values is the flat (n_patches, patch_dim) array as HF
          takes it; the inputs are built here and exactly the real features come back.
        """
        if inputs is not None:
            if pixel_values.shape != (inputs.num_slots, self.config.patch_dim):
                raise ValueError(f"pixel values have shape {tuple(pixel_values.shape)} but the "
                                 f"vision inputs need ({inputs.num_slots}, "
                                 f"{self.config.patch_dim}); lay them out with layout_pixels")
            return self.encode(pixel_values, inputs)
        if grid_thw is None:
            raise ValueError("the vision tower needs grid_thw or inputs=VisionInputs")
        grid = concrete_grid(grid_thw)
        expected = int(grid.prod(-1).sum())
        if pixel_values.shape != (expected, self.config.patch_dim):
            raise ValueError(f"pixel values have shape {tuple(pixel_values.shape)} but grid_thw "
                             f"{grid.tolist()} needs ({expected}, {self.config.patch_dim})")
        inputs = self.vision_inputs(grid)
        out = self.encode(layout_pixels(pixel_values, inputs), inputs)
        n = int(inputs.num_features)
        return VisionOutput(out.embeds[:n], [d[:n] for d in out.deepstack])

    def encode(self, pixel_values: jax.Array, inputs: VisionInputs) -> VisionOutput:
        """The tower on the slot layout: no Python loop over grids, shapes from buckets only."""
        B, S = inputs.segment_ids.shape
        x = self.patch_embed(pixel_values)
        x = x + self.interpolate_pos_embed(inputs.pos_embed_index,
                                           inputs.pos_embed_weight).astype(x.dtype)
        cos, sin = vision_rotary_cos_sin(jnp.asarray(inputs.rotary_pos), self.config.head_dim,
                                         self.config.rope_theta)
        x, cos, sin = (a.reshape(B, S, -1) for a in (x, cos, sin))
        segment_ids = jnp.asarray(inputs.segment_ids)
        order = jnp.asarray(inputs.feature_index)

        def merge(merger, h):
            return jnp.take(merger(h.reshape(B * S, -1)), order, axis=0)

        taps = self.config.deepstack_visual_indexes
        if self.scan_layers:
            x, tapped = scan_blocks(self.blocks, x, cos, sin, segment_ids, taps)
            deepstack = [merge(m, t) for m, t in zip(self.deepstack_merger_list, tapped)]
            return VisionOutput(merge(self.merger, x), deepstack)
        deepstack = []
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, segment_ids)
            if i in taps:
                deepstack.append(merge(self.deepstack_merger_list[taps.index(i)], x))
        return VisionOutput(merge(self.merger, x), deepstack)


def scan_blocks(blocks: Qwen3VLVisionBlock, x: jax.Array, cos: jax.Array, sin: jax.Array,
                segment_ids: jax.Array, taps: Sequence[int]) -> tuple[jax.Array, list[jax.Array]]:
    """The vision blocks as one `lax.scan`, equal to the loop: x (B, S, C) -> x and the hidden
    states after each block in `taps` (DeepStack), in taps order.

    blocks: the stacked block (stacking.stack_modules), scanned over as stored, as
    text.scan_decoder does. The tapped states ride in the carry, a (k, B, S, C)
    buffer that block i writes into slot taps.index(i) (a no-op write elsewhere), so no
    (depth, B, S, C) stack of every block's output is kept.
    """
    graphdef, params = nnx.split(blocks)
    depth = jax.tree.leaves(params)[0].shape[0]
    k = len(taps)
    slot = np.full(depth, -1, np.int32)
    slot[list(taps)] = np.arange(k, dtype=np.int32)
    buffer = jnp.zeros((max(k, 1),) + x.shape, x.dtype)

    def body(carry, xs):
        h, buf = carry
        j, state = xs
        h = nnx.merge(graphdef, state)(h, cos, sin, segment_ids)
        at = jnp.maximum(j, 0)
        keep = jax.lax.dynamic_index_in_dim(buf, at, keepdims=False)
        buf = jax.lax.dynamic_update_index_in_dim(buf, jnp.where(j >= 0, h, keep), at, axis=0)
        return (h, buf), None

    (x, buffer), _ = jax.lax.scan(body, (x, buffer), (jnp.asarray(slot), params))
    return x, [buffer[i] for i in range(k)]
