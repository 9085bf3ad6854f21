"""The tiny random model (models/qwen3_vl/tiny.py) as the things tests and benches need: inputs
in its token layout, and a whole seeker-jax checkpoint over Qwen's vocabulary.

Why in the package: benches must not import tests/, and tests, benches and the agent tests'
synthetic episodes all build the same model and the same inputs.
"""
from __future__ import annotations

import os

import numpy as np

from seeker_jax.checkpointing import parity
from seeker_jax.models.chat import Segment
from seeker_jax.models.qwen3_vl import from_hf_dict
from seeker_jax.models.qwen3_vl.tiny import TEXT_VOCAB, build_hf, tiny_hf_config, tiny_hf_dict


def tiny_inputs(batch_parts: list[list], seed: int = 0, padding: str = "right") -> parity.Inputs:
    """A padded batch for the tiny "test" vocabulary (vision ids 990-993), random pixels.
    batch_parts: per sample, parts such as ("text", 8), ("image", (4, 6)), ("video", (2, 4, 4))."""
    return parity.make_inputs(batch_parts, from_hf_dict(tiny_hf_dict()), seed, padding,
                              text_vocab=TEXT_VOCAB)


def tiny_segment(parts: list, seed: int) -> Segment:
    """One sample of `tiny_inputs` as a Segment (text, images, timestamped video groups)."""
    inp = tiny_inputs([parts], seed=seed)
    ids = inp.input_ids[0].astype(np.int32)
    return Segment(ids, inp.mm_token_type_ids[0].astype(np.int32), np.zeros_like(ids),
                   inp.pixel_values, inp.image_grid_thw, inp.pixel_values_videos,
                   inp.video_grid_thw)


def save_tiny_checkpoint(out_dir: str, env=None, scale: float = 5.0) -> str:
    """The tiny random model over Qwen's vocabulary, saved as our checkpoint in OUT_DIR/ckpt
    with its env config (default: EnvConfig()) and the offline tokenizer, and as a Hugging Face
    folder in OUT_DIR/hf (with that tokenizer: an hf: model loads its folder's own); returns
    OUT_DIR/ckpt. scale > 1 sharpens the random logits, so greedy outputs differ between
    prompts."""
    from seeker_jax.checkpointing import checkpoint as ckpt
    from seeker_jax.env.config import EnvConfig
    from seeker_jax.models.qwen3_vl import from_pretrained
    from seeker_jax.models.tokenizer import offline_qwen_tokenizer

    hf, out = os.path.join(out_dir, "hf"), os.path.join(out_dir, "ckpt")
    build_hf(tiny_hf_config(vocab="qwen"), scale=scale).save_pretrained(hf)
    offline_qwen_tokenizer().save_pretrained(hf)
    model = from_pretrained(hf)
    ckpt.save_params(out, model, model.config)
    ckpt.write_env_config(out, env if env is not None else EnvConfig(), "offline_qwen")
    return out


__all__ = ["save_tiny_checkpoint", "tiny_inputs", "tiny_segment"]
