"""The tiny random Qwen3-VL that tests and benches build: one config, one place.

Why these sizes: small enough that a transformers forward takes about 0.1 s on a CPU, and
still every path a real model takes: three decoder layers, DeepStack features from vision
blocks 0 and 1 added after the first two (and a layer past them), GQA (4 heads, 2 kv heads),
head_dim 16 whose 8 rotary frequencies fill all three MRoPE sections (2/3/3), and a rope theta
of 10,000, so that small positions still rotate (at Qwen's 5e6 the rotation of a 20-token test
is near the identity, and a rope bug would pass unseen).

Two vocabularies (`vocab`):
  "test": 1,000 tokens with the vision ids 990-993 (ordinary text below TEXT_VOCAB): logits
          stay small, for layer-by-layer parity;
  "qwen": Qwen's 151,936 tokens and its real vision ids, for anything that tokenizes text
          (the offline tokenizer): rollouts, eval, serve.

torch is imported only where a transformers model is built (`build_hf`, `save_tiny_hf`): the
config itself needs neither torch nor transformers (`tiny_hf_dict`).
"""
from __future__ import annotations

import copy
from typing import Any

IMAGE, VIDEO, VSTART, VEND = 990, 991, 992, 993  # the "test" vocabulary's vision ids
TEXT_VOCAB = 980  # ordinary "test" token ids are drawn below this
_VOCABS = {
    "test": dict(vocab_size=1000, image_token_id=IMAGE, video_token_id=VIDEO,
                 vision_start_token_id=VSTART, vision_end_token_id=VEND),
    "qwen": dict(vocab_size=151936, image_token_id=151655, video_token_id=151656,
                 vision_start_token_id=151652, vision_end_token_id=151653),
}
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0,
                                 mrope_section=[2, 3, 3], mrope_interleaved=True))
VISION = dict(depth=3, hidden_size=32, intermediate_size=64, num_heads=2,
              deepstack_visual_indexes=[0, 1], num_position_embeddings=64)


def tiny_hf_dict(tied: bool = True, vocab: str = "test", **text_overrides: Any) -> dict:
    """The HF config.json dict of the tiny model; text_overrides replace text_config keys
    (benches widen it: hidden_size=256, num_hidden_layers=4, ...)."""
    if vocab not in _VOCABS:
        raise ValueError(f"tiny model: vocab {vocab!r}; use one of {sorted(_VOCABS)}")
    ids = dict(_VOCABS[vocab])
    text = {**copy.deepcopy(TEXT), "vocab_size": ids.pop("vocab_size"), **text_overrides}
    vision = {**copy.deepcopy(VISION), "out_hidden_size": text["hidden_size"]}
    return {"model_type": "qwen3_vl", "text_config": text, "vision_config": vision,
            "tie_word_embeddings": tied, **ids}


def tiny_hf_config(tied: bool = True, vocab: str = "test", **text_overrides: Any):
    """The tiny model's `transformers.Qwen3VLConfig`."""
    import transformers

    d = tiny_hf_dict(tied, vocab, **text_overrides)
    d.pop("model_type")
    return transformers.Qwen3VLConfig(**d)


def build_hf(cfg, seed: int = 0, scale: float = 1.0):
    """A random transformers model of `cfg` in float32, eval mode. `scale` multiplies the init
    std (> 1 sharpens the logits, so greedy tokens differ between prompts) and perturbs the
    norms (they start at 1), so that they are exercised."""
    import torch
    import transformers

    torch.manual_seed(seed)
    cfg.text_config.initializer_range = 0.02 * scale
    cfg.vision_config.initializer_range = 0.02 * scale
    model = transformers.Qwen3VLForConditionalGeneration(cfg).eval()
    if scale != 1.0:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.add_(0.1 * torch.randn_like(p))
    return model


def save_tiny_hf(out_dir: str, tied: bool = True, seed: int = 0, dtype: str = "float32",
                 max_shard_size: str | None = None, scale: float = 1.0, vocab: str = "test"):
    """Saves a tiny random transformers model to out_dir (an HF folder); returns it."""
    model = build_hf(tiny_hf_config(tied, vocab), seed, scale)
    if dtype == "bfloat16":
        import torch

        model = model.to(torch.bfloat16)
    kw = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(out_dir, **kw)
    return model


__all__ = ["IMAGE", "TEXT", "TEXT_VOCAB", "VEND", "VIDEO", "VISION", "VSTART", "build_hf",
           "save_tiny_hf", "tiny_hf_config", "tiny_hf_dict"]
