"""Shared test helpers: tiny random transformers Qwen3-VL references and matching inputs.

The reference model is built in-process from a tiny config, saved with `save_pretrained`, and
loaded into Flax with `from_pretrained`: the same path a user's checkpoint takes.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch
import transformers

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


@dataclasses.dataclass
class Inputs:
    input_ids: np.ndarray
    attention_mask: np.ndarray
    mm_token_type_ids: np.ndarray
    pixel_values: np.ndarray | None = None
    image_grid_thw: np.ndarray | None = None
    pixel_values_videos: np.ndarray | None = None
    video_grid_thw: np.ndarray | None = None

    def torch_kwargs(self) -> dict:
        out = {k: torch.from_numpy(np.asarray(v)) for k, v in dataclasses.asdict(self).items()
               if v is not None}
        return out

    def flax_kwargs(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def sequence(parts: list, rng: np.random.Generator) -> tuple[list[int], list, list]:
    """Token ids for parts: ("text", n) | ("image", (h, w)) | ("video", (t, h, w)).

    Images and videos use the real layouts: <vs><pad>*n<ve> for an image, and per temporal
    group `<t seconds>` text tokens then <vs><pad>*n<ve>. Returns ids and the image / video
    grids in order.
    """
    ids, images, videos = [], [], []
    for kind, arg in parts:
        if kind == "text":
            ids += rng.integers(0, TEXT_VOCAB, arg).tolist()
        elif kind == "image":
            h, w = arg
            images.append((1, h, w))
            ids += [VSTART] + [IMAGE] * (h * w // 4) + [VEND]
        elif kind == "video":
            t, h, w = arg
            videos.append((t, h, w))
            for g in range(t):
                ids += [15 + g % 10, 13, 16, 5701 % TEXT_VOCAB]  # stands in for "<1.5 seconds>"
                ids += [VSTART] + [VIDEO] * (h * w // 4) + [VEND]
        else:
            raise ValueError(kind)
    return ids, images, videos


def make_inputs(batch_parts: list[list], seed: int = 0, padding: str = "right") -> Inputs:
    """A padded batch from per-sample parts, with random pixels for every grid."""
    rng = np.random.default_rng(seed)
    seqs, images, videos = [], [], []
    for parts in batch_parts:
        ids, im, vi = sequence(parts, rng)
        seqs.append(ids), images.extend(im), videos.extend(vi)
    L = max(len(s) for s in seqs)
    input_ids = np.zeros((len(seqs), L), np.int64)
    mask = np.zeros((len(seqs), L), np.int64)
    for b, s in enumerate(seqs):
        sl = slice(L - len(s), L) if padding == "left" else slice(0, len(s))
        input_ids[b, sl], mask[b, sl] = s, 1
    types = ((input_ids == IMAGE) * 1 + (input_ids == VIDEO) * 2).astype(np.int64)

    def pixels(grids):
        if not grids:
            return None, None
        g = np.array(grids, np.int64)
        return rng.standard_normal((int(g.prod(-1).sum()), 1536)).astype(np.float32), g

    pv, ig = pixels(images)
    pvv, vg = pixels(videos)
    return Inputs(input_ids, mask, types, pv, ig, pvv, vg)


def hf_logits(model, inputs: Inputs) -> np.ndarray:
    with torch.no_grad():
        return model(**inputs.torch_kwargs()).logits.float().numpy()


def offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
