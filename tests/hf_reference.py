"""Shared test helpers: tiny random transformers Qwen3-VL references and matching inputs.

The reference model is built in-process from a tiny config, saved with `save_pretrained`, and
loaded into Flax with `from_pretrained`: the same path a user's checkpoint takes.
"""
from __future__ import annotations

import numpy as np
import torch
import transformers

from seeker_jax.checkpointing import parity
from seeker_jax.models.qwen3_vl import from_hf_dict
from seeker_jax.checkpointing.parity import Inputs

IMAGE, VIDEO, VSTART, VEND = 990, 991, 992, 993
TEXT_VOCAB = 980  # ordinary token ids are drawn below this


def tiny_hf_config(tied: bool = True, **text_overrides) -> transformers.Qwen3VLConfig:
    text = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                rope_parameters=dict(rope_type="default", rope_theta=10000.0,
                                     mrope_section=[2, 3, 3], mrope_interleaved=True))
    text.update(text_overrides)
    vision = dict(depth=3, hidden_size=32, intermediate_size=64, num_heads=2,
                  out_hidden_size=text["hidden_size"], deepstack_visual_indexes=[0, 1],
                  num_position_embeddings=64)
    return transformers.Qwen3VLConfig(
        text_config=text, vision_config=vision, image_token_id=IMAGE, video_token_id=VIDEO,
        vision_start_token_id=VSTART, vision_end_token_id=VEND, tie_word_embeddings=tied)


def build_hf(cfg: transformers.Qwen3VLConfig, seed: int = 0, scale: float = 1.0):
    """A random reference model in float32, eval mode. `scale` multiplies the init std."""
    torch.manual_seed(seed)
    cfg.text_config.initializer_range = 0.02 * scale
    cfg.vision_config.initializer_range = 0.02 * scale
    model = transformers.Qwen3VLForConditionalGeneration(cfg).eval()
    if scale != 1.0:  # norms start at 1; perturb them so they are exercised
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.add_(0.1 * torch.randn_like(p))
    return model


def save_tiny_hf(out_dir: str, tied: bool = True, seed: int = 0, dtype: str = "float32",
                 max_shard_size: str | None = None, scale: float = 1.0):
    """Saves a tiny random reference to out_dir and returns the torch model."""
    model = build_hf(tiny_hf_config(tied), seed, scale)
    if dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    kw = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(out_dir, **kw)
    return model


def make_inputs(batch_parts: list[list], seed: int = 0, padding: str = "right") -> Inputs:
    """A padded batch for the tiny config (token ids 990-993), with random pixels."""
    return parity.make_inputs(batch_parts, from_hf_dict(tiny_hf_config().to_dict()), seed,
                              padding, text_vocab=TEXT_VOCAB)


def torch_kwargs(inputs: Inputs) -> dict:
    return {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.arrays().items()}


hf_logits = parity.torch_logits


def segment(parts, seed) -> "Segment":
    """A segment of this module's layout (text, images, timestamped video groups)."""
    from seeker_jax.models.chat import Segment

    inp = make_inputs([parts], seed=seed)
    ids = inp.input_ids[0].astype(np.int32)
    return Segment(ids, inp.mm_token_type_ids[0].astype(np.int32), np.zeros_like(ids),
                   inp.pixel_values, inp.image_grid_thw, inp.pixel_values_videos,
                   inp.video_grid_thw)


def save_tiny_qwen_checkpoint(out_dir: str, env=None, scale: float = 5.0) -> str:
    """A tiny random Qwen3-VL over the real Qwen vocabulary (its vision token ids), saved as our
    checkpoint in OUT_DIR/ckpt with its env config and the offline tokenizer (the same weights
    as a Hugging Face folder in OUT_DIR/hf); returns OUT_DIR/ckpt. scale > 1 sharpens the random logits, so greedy outputs differ between prompts."""
    import os

    from seeker_jax.checkpointing import checkpoint as ckpt
    from seeker_jax.env.config import EnvConfig
    from seeker_jax.models.qwen3_vl import from_pretrained
    from seeker_jax.models.tokenizer import offline_qwen_tokenizer

    tok = offline_qwen_tokenizer()
    cfg = tiny_hf_config(vocab_size=151936)
    for name, token in (("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                        ("vision_start_token_id", "<|vision_start|>"),
                        ("vision_end_token_id", "<|vision_end|>")):
        setattr(cfg, name, tok.convert_tokens_to_ids(token))
    hf, out = os.path.join(out_dir, "hf"), os.path.join(out_dir, "ckpt")
    build_hf(cfg, scale=scale).save_pretrained(hf)
    tok.save_pretrained(hf)  # an hf: model loads its folder's own tokenizer
    model = from_pretrained(hf)
    ckpt.save_params(out, model, model.config)
    ckpt.write_env_config(out, env if env is not None else EnvConfig(), "offline_qwen")
    return out
