"""Qwen3VLForConditionalGeneration in Flax NNX: vision tower + Qwen3 decoder + LM head.

The forward takes transformers' argument names. Vision features replace the image / video
placeholder tokens in order; DeepStack features are added to the hidden states at the same
positions after the first decoder layers.

Host-side work (the MRoPE index, vision grids) needs concrete inputs. Under jit, pass
`position_ids` (from `get_rope_index`) and the grids as data: `prepare_vision` gives the
slot-layout pixels and `VisionInputs` for `image_inputs=` / `video_inputs=` (a concrete grid
as a static argument still works, but compiles once per grid).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seeker_jax.models.qwen3_vl.attention import causal_mask
from seeker_jax.models.qwen3_vl.config import Qwen3VLConfig
from seeker_jax.models.qwen3_vl.layers import Linear
from seeker_jax.models.qwen3_vl.rope import get_rope_index_np
from seeker_jax.models.qwen3_vl.text import LayerCache, Qwen3VLTextModel
from seeker_jax.models.qwen3_vl.vision import Qwen3VLVisionModel
from seeker_jax.models.qwen3_vl.vision_inputs import (DEFAULT_BUCKETS, VisionBuckets,
                                                      VisionInputs, is_concrete, layout_pixels)


class Qwen3VLOutput(NamedTuple):
    logits: jax.Array | None          # (B, L, vocab)
    last_hidden_state: jax.Array      # (B, L, D), after the final norm
    cache: list[LayerCache] | None


def _is_concrete(x) -> bool:
    return x is not None and not isinstance(x, jax.core.Tracer)


def token_type_ids(input_ids, cfg: Qwen3VLConfig):
    """mm_token_type_ids from the placeholder tokens: 0 text, 1 image, 2 video."""
    xp = np if isinstance(input_ids, np.ndarray) else jnp
    return (xp.where(input_ids == cfg.image_token_id, 1, 0)
            + xp.where(input_ids == cfg.video_token_id, 2, 0)).astype(xp.int32)


def scatter_features(embeds: jax.Array, is_token: jax.Array, features: jax.Array) -> jax.Array:
    """Puts features (N, D) at the positions where is_token (B, L) holds, row-major order."""
    flat = is_token.reshape(-1)
    idx = jnp.clip(jnp.cumsum(flat) - 1, 0, features.shape[0] - 1)
    gathered = jnp.take(features, idx, axis=0).reshape(embeds.shape).astype(embeds.dtype)
    return jnp.where(is_token[..., None], gathered, embeds)


def visibility_mask(attention_mask, B: int, L: int, cache, write_index) -> jax.Array:
    """(B, L, S) visibility: causal, and only keys the attention mask marks as real.

    Without a cache, attention_mask is (B, L) over the input. With a cache, it is (B, W) over
    the first W <= S cache slots as they will be after this write (attention then reads only
    those: a window), and query i of sequence b sits at slot write_index[b] + i.
    """
    if cache is None:
        causal = jnp.tril(jnp.ones((L, L), bool))[None]
        if attention_mask is None:
            return jnp.broadcast_to(causal, (B, L, L))
        return causal & jnp.asarray(attention_mask).astype(bool)[:, None, :]
    # head-major (B, KVH, S, D); a narrower attention_mask (B, W) is a window: the first W slots
    S = cache[0].key.shape[2] if attention_mask is None else jnp.shape(attention_mask)[1]
    if write_index is None:
        raise ValueError("a cache needs write_index (B,): where each sequence's new tokens go")
    q_slot = jnp.asarray(write_index, jnp.int32)[:, None] + jnp.arange(L)[None]
    visible = jnp.arange(S)[None, None, :] <= q_slot[:, :, None]
    if attention_mask is not None:
        visible = visible & jnp.asarray(attention_mask).astype(bool)[:, None, :]
    return visible


class Qwen3VLModel(nnx.Module):
    def __init__(self, cfg: Qwen3VLConfig, *, dtype=jnp.float32, param_dtype=jnp.float32,
                 rngs: nnx.Rngs, remat: str = "none", scan_layers: bool = False):
        self.config = cfg
        self.visual = Qwen3VLVisionModel(cfg.vision, dtype=dtype, param_dtype=param_dtype,
                                         rngs=rngs, attention_impl=cfg.attention_impl,
                                         attention_axes=cfg.attention_axes,
                                         scan_layers=scan_layers)
        self.language_model = Qwen3VLTextModel(cfg.text, dtype=dtype, param_dtype=param_dtype,
                                               rngs=rngs, remat=remat,
                                               scan_layers=scan_layers,
                                               attention_impl=cfg.attention_impl,
                                               attention_axes=cfg.attention_axes)

    def get_rope_index(self, input_ids, mm_token_type_ids=None, image_grid_thw=None,
                       video_grid_thw=None, attention_mask=None) -> tuple[np.ndarray, np.ndarray]:
        """(3, B, L) MRoPE positions and (B, 1) deltas, as transformers computes them."""
        ids = np.asarray(input_ids)
        types = (token_type_ids(ids, self.config) if mm_token_type_ids is None
                 else np.asarray(mm_token_type_ids))
        return get_rope_index_np(ids, types, image_grid_thw, video_grid_thw,
                                 None if attention_mask is None else np.asarray(attention_mask),
                                 self.config.vision.spatial_merge_size)

    def _vision(self, input_ids, embeds, pixel_values, grid_thw, inputs, token_id, name):
        """Runs the tower on one modality and scatters its features; returns deepstack too.

        With `inputs` (VisionInputs), pixel_values is in its slot layout and the features come
        back padded (real first); the scatter takes the first n in order, n = token count.
        """
        out = self.visual(pixel_values, grid_thw, inputs=inputs)
        is_token = input_ids == token_id
        if _is_concrete(input_ids):
            n_tokens = int(np.asarray(is_token).sum())
            n_feats = (out.embeds.shape[0] if inputs is None
                       else int(inputs.num_features) if is_concrete(inputs) else None)
            if n_feats is not None and n_tokens != n_feats:
                raise ValueError(f"{name} features and {name} tokens do not match: "
                                 f"{n_tokens} tokens, {n_feats} features. A vision "
                                 "span was cut or duplicated.")
        return scatter_features(embeds, is_token, out.embeds), is_token, out.deepstack

    def _positions(self, input_ids, attention_mask, position_ids, mm_token_type_ids,
                   image_grid_thw, video_grid_thw, write_index, has_vision):
        B, L = input_ids.shape
        if position_ids is not None:
            position_ids = jnp.asarray(position_ids)
            if position_ids.ndim == 2:
                return jnp.broadcast_to(position_ids[None], (3, B, L))
            return position_ids[1:] if position_ids.shape[0] == 4 else position_ids
        if has_vision or mm_token_type_ids is not None:
            if not _is_concrete(input_ids) or isinstance(attention_mask, jax.core.Tracer):
                raise ValueError("with images or videos, pass position_ids (from "
                                 "get_rope_index) when calling under jit")
            pos, _ = self.get_rope_index(input_ids, mm_token_type_ids, image_grid_thw,
                                         video_grid_thw, attention_mask)
            return jnp.asarray(pos)
        pos = jnp.arange(L, dtype=jnp.int32)[None, :]
        if write_index is not None:
            pos = pos + jnp.asarray(write_index, jnp.int32)[:, None]
        return jnp.broadcast_to(pos, (3, B, L))

    def __call__(self, input_ids, attention_mask=None, position_ids=None, pixel_values=None,
                 image_grid_thw=None, pixel_values_videos=None, video_grid_thw=None,
                 mm_token_type_ids=None, cache=None, write_index=None, image_inputs=None,
                 video_inputs=None) -> tuple[jax.Array, list[LayerCache] | None]:
        cfg = self.config
        embeds = self.language_model.embed_tokens(jnp.asarray(input_ids))
        B, L = embeds.shape[:2]
        deepstack = None
        has_vision = pixel_values is not None or pixel_values_videos is not None
        for pixels, grid, inputs, token_id, name in (
                (pixel_values, image_grid_thw, image_inputs, cfg.image_token_id, "image"),
                (pixel_values_videos, video_grid_thw, video_inputs, cfg.video_token_id, "video")):
            if pixels is None:
                continue
            embeds, is_token, feats = self._vision(input_ids, embeds, jnp.asarray(pixels), grid,
                                                   inputs, token_id, name)
            zeros = [jnp.zeros_like(embeds) for _ in feats] if deepstack is None else deepstack
            deepstack = [scatter_features(z, jnp.asarray(is_token), f)
                         for z, f in zip(zeros, feats)]

        positions = self._positions(input_ids, attention_mask, position_ids, mm_token_type_ids,
                                    image_grid_thw, video_grid_thw, write_index, has_vision)
        mask = (causal_mask(attention_mask) if cache is None
                else visibility_mask(attention_mask, B, L, cache, write_index))
        return self.language_model(embeds, positions, mask, deepstack, cache, write_index)


class Qwen3VLForConditionalGeneration(nnx.Module):
    """The full model; parameter paths mirror transformers' module names."""

    def __init__(self, cfg: Qwen3VLConfig, *, dtype=jnp.float32, param_dtype=jnp.float32,
                 rngs: nnx.Rngs | None = None, remat: str = "none",
                 scan_layers: bool = False):
        """remat: a text.REMAT_POLICIES name; scan_layers: store the decoder layers and the
        vision blocks stacked (stacking.py: `(n_layers, ...)` arrays, stacked parameter paths)
        and run each stack as one lax.scan (text.scan_decoder, vision.scan_blocks): the same
        numbers, one compiled layer and one compiled block."""
        rngs = rngs if rngs is not None else nnx.Rngs(0)
        self.config = cfg
        self.dtype = dtype
        self.model = Qwen3VLModel(cfg, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
                                  remat=remat, scan_layers=scan_layers)
        self.lm_head = (None if cfg.tie_word_embeddings else
                        Linear(cfg.text.hidden_size, cfg.text.vocab_size, ("embed", "vocab"),
                               use_bias=False, dtype=dtype, param_dtype=param_dtype, rngs=rngs))

    def logits(self, hidden: jax.Array) -> jax.Array:
        if self.lm_head is None:
            return self.model.language_model.embed_tokens.attend(hidden)
        return self.lm_head(hidden)

    def get_rope_index(self, *args, **kwargs):
        return self.model.get_rope_index(*args, **kwargs)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, pixel_values=None,
                 image_grid_thw=None, pixel_values_videos=None, video_grid_thw=None,
                 mm_token_type_ids=None, *, cache: list[LayerCache] | None = None,
                 write_index=None, compute_logits: bool = True,
                 image_inputs: VisionInputs | None = None,
                 video_inputs: VisionInputs | None = None) -> Qwen3VLOutput:
        """transformers' arguments; or, for grids as data under jit, `image_inputs` /
        `video_inputs` from `prepare_vision` with pixel values in their slot layout (then
        `position_ids` is needed and the grids may be omitted)."""
        hidden, cache = self.model(input_ids, attention_mask, position_ids, pixel_values,
                                   image_grid_thw, pixel_values_videos, video_grid_thw,
                                   mm_token_type_ids, cache, write_index, image_inputs,
                                   video_inputs)
        logits = self.logits(hidden) if compute_logits else None
        return Qwen3VLOutput(logits, hidden, cache)


def grid_key(grid) -> tuple[tuple[int, int, int], ...] | None:
    """A grid_thw as a hashable tuple of (t, h, w) rows: the static jit argument for grids."""
    return None if grid is None else tuple(tuple(int(x) for x in row)
                                           for row in np.asarray(grid).reshape(-1, 3))


def check_vision_tokens(input_ids: np.ndarray, grid_thw, token_id: int, name: str,
                        merge: int) -> None:
    """Host check: as many placeholder tokens as the grids give features."""
    want = int(np.asarray(grid_thw).reshape(-1, 3).prod(-1).sum()) // merge**2
    got = int((np.asarray(input_ids) == token_id).sum())
    if want != got:
        raise ValueError(f"{name} features and {name} tokens do not match: {got} tokens, "
                         f"{want} features. A vision span was cut or duplicated.")


def prepare_vision(model: Qwen3VLForConditionalGeneration, pixel_values, grid_thw,
                   buckets: VisionBuckets = DEFAULT_BUCKETS, **sizes
                   ) -> tuple[np.ndarray | jax.Array, VisionInputs]:
    """Host side, one modality: (flat pixels, grid_thw) -> (slot-layout pixels, VisionInputs).

    The pair is what the jitted model takes as `pixel_values=` / `image_inputs=` (or the video
    ones); its shapes depend only on the bucket, so batches of other grids reuse the program.
    """
    inputs = model.model.visual.vision_inputs(grid_thw, buckets, **sizes)
    n_patches = int(np.asarray(grid_thw).reshape(-1, 3).prod(-1).sum())
    if pixel_values.shape[0] != n_patches:
        raise ValueError(f"pixel values have {pixel_values.shape[0]} rows but grid_thw "
                         f"{np.asarray(grid_thw).tolist()} has {n_patches} patches")
    return layout_pixels(pixel_values, inputs), inputs


@nnx.jit(static_argnames=("compute_logits",))
def _jitted_forward(model, input_ids, attention_mask, position_ids, pixel_values,
                    pixel_values_videos, image_inputs, video_inputs, compute_logits):
    return model(input_ids, attention_mask, position_ids, pixel_values,
                 pixel_values_videos=pixel_values_videos, compute_logits=compute_logits,
                 image_inputs=image_inputs, video_inputs=video_inputs)


def forward(model: Qwen3VLForConditionalGeneration, input_ids, attention_mask=None,
            position_ids=None, pixel_values=None, image_grid_thw=None, pixel_values_videos=None,
            video_grid_thw=None, mm_token_type_ids=None, compute_logits: bool = True,
            buckets: VisionBuckets = DEFAULT_BUCKETS) -> Qwen3VLOutput:
    """Jitted forward with transformers' arguments: host work here, the rest compiled.

    The grids become bucketed arrays on the host (`prepare_vision`), so this compiles once
    per (token shape, vision bucket), not once per grid. Checks placeholder counts here.
    """
    input_ids = np.asarray(input_ids)
    has_vision = pixel_values is not None or pixel_values_videos is not None
    cfg = model.config
    vision = {}
    for pixels, grid, token_id, name in ((pixel_values, image_grid_thw, cfg.image_token_id,
                                          "image"),
                                         (pixel_values_videos, video_grid_thw,
                                          cfg.video_token_id, "video")):
        if pixels is None:
            continue
        if grid is None:
            raise ValueError(f"{name} pixel values need {name}_grid_thw")
        check_vision_tokens(input_ids, grid, token_id, name, cfg.vision.spatial_merge_size)
        px, inputs = prepare_vision(model, np.asarray(pixels), grid, buckets)
        vision[name] = jax.device_put((px, inputs))  # (jnp.asarray would compile a copy)
    if position_ids is None and (has_vision or mm_token_type_ids is not None):
        position_ids, _ = model.get_rope_index(input_ids, mm_token_type_ids, image_grid_thw,
                                               video_grid_thw, attention_mask)
    image, video = vision.get("image", (None, None)), vision.get("video", (None, None))
    return _jitted_forward(model, input_ids, attention_mask, position_ids, image[0], video[0],
                           image[1], video[1], compute_logits)
