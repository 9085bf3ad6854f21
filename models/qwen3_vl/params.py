"""The one HF <-> Flax name-mapping table, and the conversions driven by it.

`RULES` lists every parameter once: its Hugging Face name, its Flax path and the transform
between them. Placeholders `{v}` (vision block), `{d}` (DeepStack merger) and `{l}` (text
layer) expand over the config. Import reads each HF name and writes the Flax path; export
reads the Flax path and writes the HF name. Both walk the same expanded list, so they cannot
drift apart.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import jax.numpy as jnp
import numpy as np

from seeker_jax.models.qwen3_vl.config import Qwen3VLConfig

LINEAR, CONV3D, IDENTITY = "linear", "conv3d", "identity"

_VISION_LINEARS = ("attn.qkv", "attn.proj", "mlp.linear_fc1", "mlp.linear_fc2")
_MERGER_LINEARS = ("linear_fc1", "linear_fc2")
_TEXT_LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
_TEXT_NORMS = ("self_attn.q_norm", "self_attn.k_norm", "input_layernorm",
               "post_attention_layernorm")

V, D, T = "model.visual", "model.visual.deepstack_merger_list.{d}", "model.language_model"

RULES: tuple[tuple[str, str, str], ...] = (
    (f"{V}.patch_embed.proj.weight", f"{V}.patch_embed.proj.kernel", CONV3D),
    (f"{V}.patch_embed.proj.bias", f"{V}.patch_embed.proj.bias", IDENTITY),
    (f"{V}.pos_embed.weight", f"{V}.pos_embed.embedding", IDENTITY),
    *((f"{V}.blocks.{{v}}.{m}.weight", f"{V}.blocks.{{v}}.{m}.kernel", LINEAR)
      for m in _VISION_LINEARS),
    *((f"{V}.blocks.{{v}}.{m}.bias", f"{V}.blocks.{{v}}.{m}.bias", IDENTITY)
      for m in _VISION_LINEARS),
    *((f"{V}.blocks.{{v}}.{n}.{p}", f"{V}.blocks.{{v}}.{n}.{p}", IDENTITY)
      for n in ("norm1", "norm2") for p in ("weight", "bias")),
    *((f"{pre}.{m}.weight", f"{pre}.{m}.kernel", LINEAR)
      for pre in (f"{V}.merger", D) for m in _MERGER_LINEARS),
    *((f"{pre}.{m}.bias", f"{pre}.{m}.bias", IDENTITY)
      for pre in (f"{V}.merger", D) for m in _MERGER_LINEARS),
    *((f"{pre}.norm.{p}", f"{pre}.norm.{p}", IDENTITY)
      for pre in (f"{V}.merger", D) for p in ("weight", "bias")),
    (f"{T}.embed_tokens.weight", f"{T}.embed_tokens.embedding", IDENTITY),
    *((f"{T}.layers.{{l}}.{m}.weight", f"{T}.layers.{{l}}.{m}.kernel", LINEAR)
      for m in _TEXT_LINEARS),
    *((f"{T}.layers.{{l}}.{n}.weight", f"{T}.layers.{{l}}.{n}.weight", IDENTITY)
      for n in _TEXT_NORMS),
    (f"{T}.norm.weight", f"{T}.norm.weight", IDENTITY),
    ("lm_head.weight", "lm_head.kernel", LINEAR),
)

# Present in some checkpoints, never needed: attention biases are off in Qwen3 (a config with
# attention_bias=true is refused by the missing-tensor check instead).
TIED_EXTRA = "lm_head.weight"


@dataclasses.dataclass(frozen=True)
class Entry:
    hf_name: str
    flax_path: tuple[str | int, ...]
    transform: str


def _path(dotted: str) -> tuple[str | int, ...]:
    return tuple(int(p) if p.isdigit() else p for p in dotted.split("."))


def expand(cfg: Qwen3VLConfig) -> list[Entry]:
    """Every parameter of a model with this config, as (HF name, Flax path, transform)."""
    counts = {"v": cfg.vision.depth, "d": len(cfg.vision.deepstack_visual_indexes),
              "l": cfg.text.num_hidden_layers}
    out = []
    for hf, fx, tr in RULES:
        if hf == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        keys = [k for k in counts if "{" + k + "}" in hf]
        if not keys:
            out.append(Entry(hf, _path(fx), tr))
            continue
        (k,) = keys
        for i in range(counts[k]):
            out.append(Entry(hf.replace("{" + k + "}", str(i)), _path(fx.replace("{" + k + "}",
                                                                                 str(i))), tr))
    return out


def hf_shape(entry: Entry, flax_shape: tuple[int, ...], cfg: Qwen3VLConfig) -> tuple[int, ...]:
    """The HF tensor shape for a Flax parameter shape."""
    if entry.transform == LINEAR:
        return tuple(reversed(flax_shape))
    if entry.transform == CONV3D:
        v = cfg.vision
        return (flax_shape[1], v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size)
    return tuple(flax_shape)


def to_flax(entry: Entry, tensor, cfg: Qwen3VLConfig):
    """HF tensor -> Flax array layout (works on numpy and jax arrays)."""
    if entry.transform == LINEAR:
        return tensor.T
    if entry.transform == CONV3D:
        return tensor.reshape(tensor.shape[0], -1).T
    return tensor


def to_hf(entry: Entry, array, cfg: Qwen3VLConfig):
    """Flax array -> HF tensor layout; the exact inverse of `to_flax`."""
    if entry.transform == LINEAR:
        return array.T
    if entry.transform == CONV3D:
        return array.T.reshape(hf_shape(entry, array.shape, cfg))
    return array


def iter_flax_to_hf(state_get: Callable[[tuple], object], cfg: Qwen3VLConfig
                    ) -> Iterator[tuple[str, object]]:
    """Yields (HF name, HF-layout tensor) for every parameter, reading Flax paths lazily."""
    for entry in expand(cfg):
        yield entry.hf_name, to_hf(entry, state_get(entry.flax_path), cfg)


def np_dtype(dtype) -> np.dtype:
    return np.dtype(jnp.dtype(dtype))
