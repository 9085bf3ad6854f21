"""Qwen3-VL configuration, read from and written back to a Hugging Face `config.json`.

The dataclasses hold only what the Flax model needs. `from_hf_dict` accepts both the current
transformers layout (`rope_parameters`) and the legacy one the released checkpoints use
(`rope_scaling` + `rope_theta`, `tie_word_embeddings` inside `text_config`).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from seeker_jax.models.qwen3_vl.attention import AttentionAxes, check_impl

MODEL_TYPE = "qwen3_vl"


class ConfigError(ValueError):
    """A config.json that is not a Qwen3-VL config, or is inconsistent."""


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    depth: int = 27
    hidden_size: int = 1152
    intermediate_size: int = 4304
    num_heads: int = 16
    in_channels: int = 3
    patch_size: int = 16
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    out_hidden_size: int = 4096
    num_position_embeddings: int = 2304
    deepstack_visual_indexes: tuple[int, ...] = (8, 16, 24)
    hidden_act: str = "gelu_pytorch_tanh"
    rope_theta: float = 10000.0
    initializer_range: float = 0.02

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def patch_dim(self) -> int:
        """Length of one flattened patch: C * T * P * P (1536 for Qwen3-VL)."""
        return self.in_channels * self.temporal_patch_size * self.patch_size**2

    @property
    def num_grid_per_side(self) -> int:
        return int(self.num_position_embeddings**0.5)


@dataclasses.dataclass(frozen=True)
class TextConfig:
    vocab_size: int = 151936
    hidden_size: int = 4096
    intermediate_size: int = 12288
    num_hidden_layers: int = 36
    num_attention_heads: int = 32
    num_key_value_heads: int = 8
    head_dim: int = 128
    rms_norm_eps: float = 1e-6
    rope_theta: float = 5_000_000.0
    mrope_section: tuple[int, int, int] = (24, 20, 20)
    mrope_interleaved: bool = True
    max_position_embeddings: int = 262144
    hidden_act: str = "silu"
    attention_bias: bool = False
    initializer_range: float = 0.02


@dataclasses.dataclass(frozen=True)
class Qwen3VLConfig:
    text: TextConfig = dataclasses.field(default_factory=TextConfig)
    vision: VisionConfig = dataclasses.field(default_factory=VisionConfig)
    tie_word_embeddings: bool = False
    image_token_id: int = 151655
    video_token_id: int = 151656
    vision_start_token_id: int = 151652
    vision_end_token_id: int = 151653
    # How attention runs (models/qwen3_vl/attention.py): a runtime choice, not part of the
    # checkpoint, so to_hf_dict never writes it and from_hf_dict leaves the default.
    attention_impl: str = "auto"
    # The mesh axes of the batch and the heads for kernels run under shard_map (runtime too;
    # the core sets them from its sharding rules).
    attention_axes: AttentionAxes | None = None

    def __post_init__(self):
        check_impl(self.attention_impl)

    def replace(self, **kw: Any) -> "Qwen3VLConfig":
        return dataclasses.replace(self, **kw)

    def stored(self) -> "Qwen3VLConfig":
        """The config as a checkpoint holds it: the runtime choices (attention_impl,
        attention_axes) at their defaults, since config.json never records them."""
        return self.replace(attention_impl="auto", attention_axes=None)


_VISION_KEYS = {f.name for f in dataclasses.fields(VisionConfig)} - {"rope_theta"}
_TEXT_KEYS = {f.name for f in dataclasses.fields(TextConfig)} - {
    "rope_theta", "mrope_section", "mrope_interleaved"}


def _rope_fields(section: dict[str, Any], default_theta: float) -> dict[str, Any]:
    """Reads rope settings from `rope_parameters` (new) or `rope_scaling`/`rope_theta` (legacy)."""
    params = dict(section.get("rope_parameters") or {})
    legacy = dict(section.get("rope_scaling") or {})
    merged = {**legacy, **params}
    theta = merged.get("rope_theta", section.get("rope_theta", default_theta))
    rope_type = merged.get("rope_type", merged.get("type", "default"))
    out: dict[str, Any] = {"rope_theta": float(theta), "rope_type": rope_type}
    if "mrope_section" in merged:
        out["mrope_section"] = tuple(int(s) for s in merged["mrope_section"])
    if "mrope_interleaved" in merged:
        out["mrope_interleaved"] = bool(merged["mrope_interleaved"])
    return out


def from_hf_dict(d: dict[str, Any]) -> Qwen3VLConfig:
    """Builds a config from a parsed HF config.json (a `qwen3_vl` model)."""
    model_type = d.get("model_type")
    if model_type != MODEL_TYPE:
        raise ConfigError(
            f"config.json has model_type={model_type!r}; seeker-jax loads {MODEL_TYPE!r} "
            "(Qwen3-VL dense). For qwen3_vl_moe or other families there is no mapping yet.")
    if "text_config" not in d or "vision_config" not in d:
        raise ConfigError("config.json lacks text_config or vision_config")
    t, v = d["text_config"], d["vision_config"]

    text_rope = _rope_fields(t, 5_000_000.0)
    if text_rope["rope_type"] not in ("default", "mrope"):
        raise ConfigError(f"text rope_type {text_rope['rope_type']!r} is not supported "
                          "(only the default interleaved MRoPE)")
    text_kw = {k: t[k] for k in _TEXT_KEYS if k in t and t[k] is not None}
    if text_kw.get("num_key_value_heads") is None and "num_attention_heads" in text_kw:
        text_kw["num_key_value_heads"] = text_kw["num_attention_heads"]
    text_kw["rope_theta"] = text_rope["rope_theta"]
    for k in ("mrope_section", "mrope_interleaved"):
        if k in text_rope:
            text_kw[k] = text_rope[k]
    if "head_dim" not in text_kw and "hidden_size" in text_kw:
        text_kw["head_dim"] = text_kw["hidden_size"] // text_kw.get("num_attention_heads", 32)
    text = TextConfig(**text_kw)
    if not text.mrope_interleaved:
        raise ConfigError("mrope_interleaved=false is Qwen2.5-VL's layout; Qwen3-VL is interleaved")
    if sum(text.mrope_section) != text.head_dim // 2:
        raise ConfigError(f"mrope_section {text.mrope_section} must sum to head_dim/2 = "
                          f"{text.head_dim // 2}")

    vision_kw = {k: v[k] for k in _VISION_KEYS if k in v and v[k] is not None}
    if "deepstack_visual_indexes" in vision_kw:
        vision_kw["deepstack_visual_indexes"] = tuple(vision_kw["deepstack_visual_indexes"])
    for k in ("patch_size", "temporal_patch_size"):
        if isinstance(vision_kw.get(k), (list, tuple)):
            vision_kw[k] = int(vision_kw[k][0])
    vision_kw["rope_theta"] = _rope_fields(v, 10000.0)["rope_theta"]
    vision = VisionConfig(**vision_kw)

    tie = d.get("tie_word_embeddings", t.get("tie_word_embeddings", False))
    top = {k: int(d[k]) for k in ("image_token_id", "video_token_id", "vision_start_token_id",
                                  "vision_end_token_id") if d.get(k) is not None}
    return Qwen3VLConfig(text=text, vision=vision, tie_word_embeddings=bool(tie), **top)


def to_hf_dict(cfg: Qwen3VLConfig, dtype: str = "float32") -> dict[str, Any]:
    """The config.json transformers writes for the same model (current layout)."""
    t, v = cfg.text, cfg.vision
    return {
        "architectures": ["Qwen3VLForConditionalGeneration"],
        "model_type": MODEL_TYPE,
        "dtype": dtype,
        "image_token_id": cfg.image_token_id,
        "video_token_id": cfg.video_token_id,
        "vision_start_token_id": cfg.vision_start_token_id,
        "vision_end_token_id": cfg.vision_end_token_id,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "text_config": {
            "model_type": "qwen3_vl_text",
            "vocab_size": t.vocab_size,
            "hidden_size": t.hidden_size,
            "intermediate_size": t.intermediate_size,
            "num_hidden_layers": t.num_hidden_layers,
            "num_attention_heads": t.num_attention_heads,
            "num_key_value_heads": t.num_key_value_heads,
            "head_dim": t.head_dim,
            "hidden_act": t.hidden_act,
            "max_position_embeddings": t.max_position_embeddings,
            "initializer_range": t.initializer_range,
            "rms_norm_eps": t.rms_norm_eps,
            "attention_bias": t.attention_bias,
            "attention_dropout": 0.0,
            "use_cache": True,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": t.rope_theta,
                "mrope_section": list(t.mrope_section),
                "mrope_interleaved": t.mrope_interleaved,
            },
        },
        "vision_config": {
            "model_type": "qwen3_vl_vision",
            "depth": v.depth,
            "hidden_size": v.hidden_size,
            "intermediate_size": v.intermediate_size,
            "num_heads": v.num_heads,
            "in_channels": v.in_channels,
            "patch_size": v.patch_size,
            "temporal_patch_size": v.temporal_patch_size,
            "spatial_merge_size": v.spatial_merge_size,
            "out_hidden_size": v.out_hidden_size,
            "num_position_embeddings": v.num_position_embeddings,
            "deepstack_visual_indexes": list(v.deepstack_visual_indexes),
            "hidden_act": v.hidden_act,
            "initializer_range": v.initializer_range,
            "rope_parameters": {"rope_type": "axial", "rope_theta": v.rope_theta},
        },
    }


def load_hf_config(hf_dir: str) -> Qwen3VLConfig:
    """Reads `hf_dir/config.json`, with a clear error when it is missing or malformed."""
    path = os.path.join(hf_dir, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(f"{hf_dir!r} has no config.json; is it a Hugging Face model folder?")
    try:
        with open(path) as f:
            d = json.load(f)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from e
    return from_hf_dict(d)
