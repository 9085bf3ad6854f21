"""Logit parity against transformers' PyTorch Qwen3-VL, on any HF folder or a tiny random one.

`seeker-jax parity --hf-dir DIR` loads the same checkpoint in both frameworks and compares
logits on synthetic inputs (text; an image; a multi-group video with timestamps; all mixed; a
padded batch). Without --hf-dir it builds a tiny random reference first. Needs torch (the
`test` extra).
"""
from __future__ import annotations

import dataclasses
import tempfile
import time

import numpy as np

from seeker_jax.models.qwen3_vl import Qwen3VLConfig, forward, from_pretrained, load_hf_config


@dataclasses.dataclass
class Inputs:
    input_ids: np.ndarray
    attention_mask: np.ndarray
    mm_token_type_ids: np.ndarray
    pixel_values: np.ndarray | None = None
    image_grid_thw: np.ndarray | None = None
    pixel_values_videos: np.ndarray | None = None
    video_grid_thw: np.ndarray | None = None

    def arrays(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def sequence(parts: list, cfg: Qwen3VLConfig, rng: np.random.Generator, text_vocab: int
             ) -> tuple[list[int], list, list]:
    """Token ids for parts: ("text", n) | ("image", (h, w)) | ("video", (t, h, w)), in patches.

    Images use <vs><pad>*n<ve>; a video has, per temporal group, a few text tokens standing in
    for `<t seconds>` and then <vs><pad>*n<ve>. Returns ids and the image and video grids.
    """
    m2 = cfg.vision.spatial_merge_size ** 2
    vs, ve = cfg.vision_start_token_id, cfg.vision_end_token_id
    ids, images, videos = [], [], []
    for kind, arg in parts:
        if kind == "text":
            ids += rng.integers(0, text_vocab, arg).tolist()
        elif kind == "image":
            h, w = arg
            images.append((1, h, w))
            ids += [vs] + [cfg.image_token_id] * (h * w // m2) + [ve]
        elif kind == "video":
            t, h, w = arg
            videos.append((t, h, w))
            for g in range(t):
                ids += [15 + g % 10, 13, 16, 5701 % text_vocab]
                ids += [vs] + [cfg.video_token_id] * (h * w // m2) + [ve]
        else:
            raise ValueError(f"unknown part {kind!r}")
    return ids, images, videos


def make_inputs(batch_parts: list[list], cfg: Qwen3VLConfig, seed: int = 0,
                padding: str = "right", text_vocab: int | None = None) -> Inputs:
    """A padded batch from per-sample parts, with random pixels for every grid."""
    rng = np.random.default_rng(seed)
    text_vocab = text_vocab or min(cfg.vision_start_token_id, cfg.text.vocab_size) - 20
    seqs, images, videos = [], [], []
    for parts in batch_parts:
        ids, im, vi = sequence(parts, cfg, rng, text_vocab)
        seqs.append(ids), images.extend(im), videos.extend(vi)
    L = max(len(s) for s in seqs)
    input_ids = np.zeros((len(seqs), L), np.int64)
    mask = np.zeros((len(seqs), L), np.int64)
    for b, s in enumerate(seqs):
        sl = slice(L - len(s), L) if padding == "left" else slice(0, len(s))
        input_ids[b, sl], mask[b, sl] = s, 1
    types = ((input_ids == cfg.image_token_id) * 1
             + (input_ids == cfg.video_token_id) * 2).astype(np.int64)

    def pixels(grids):
        if not grids:
            return None, None
        g = np.array(grids, np.int64)
        n = int(g.prod(-1).sum())
        return rng.standard_normal((n, cfg.vision.patch_dim)).astype(np.float32), g

    pv, ig = pixels(images)
    pvv, vg = pixels(videos)
    return Inputs(input_ids, mask, types, pv, ig, pvv, vg)


CASES = {
    "text only": ([[("text", 24)]], "right"),
    "one image (non-square)": ([[("text", 5), ("image", (4, 8)), ("text", 7)]], "right"),
    "video, 3 groups + timestamps": ([[("text", 4), ("video", (3, 4, 4)), ("text", 6)]], "right"),
    "image + video + text": ([[("text", 3), ("image", (6, 4)), ("text", 4),
                               ("video", (2, 4, 6)), ("text", 5)]], "right"),
    "batch of 2, left padding": ([[("text", 20)], [("text", 3), ("image", (4, 4)),
                                                   ("text", 2)]], "left"),
}


def torch_logits(model, inputs: Inputs) -> np.ndarray:
    import torch

    kw = {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.arrays().items()}
    with torch.no_grad():
        return model(**kw).logits.float().numpy()


def build_tiny_reference(out_dir: str, seed: int = 0):
    """A tiny random transformers Qwen3-VL (real token ids), saved to out_dir."""
    import torch
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.Qwen3VLConfig(
        text_config=dict(vocab_size=151936, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=16, initializer_range=0.1,
                         rope_parameters=dict(rope_type="default", rope_theta=5e6,
                                              mrope_section=[4, 2, 2], mrope_interleaved=True)),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                           out_hidden_size=64, deepstack_visual_indexes=[0],
                           initializer_range=0.1),
        tie_word_embeddings=True)
    model = transformers.Qwen3VLForConditionalGeneration(cfg).eval()
    model.save_pretrained(out_dir)
    return model


def run_parity(hf_dir: str | None = None, tol: float = 1e-4, seed: int = 0,
               log=print) -> dict[str, float]:
    """Compares logits case by case; returns {case: max |diff|} over real positions."""
    import torch
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        if hf_dir is None:
            log("No --hf-dir: building a tiny random Qwen3-VL reference in transformers.")
            hf_dir = tmp
            build_tiny_reference(tmp, seed)
        t0 = time.time()
        ref = transformers.Qwen3VLForConditionalGeneration.from_pretrained(
            hf_dir, dtype=torch.float32).eval()
        ours = from_pretrained(hf_dir)
        cfg = load_hf_config(hf_dir)
        log(f"Loaded {hf_dir} in both frameworks ({time.time() - t0:.1f} s), float32.")
        errors = {}
        for name, (parts, padding) in CASES.items():
            inputs = make_inputs(parts, cfg, seed, padding)
            want = torch_logits(ref, inputs)
            got = np.asarray(forward(ours, **inputs.arrays()).logits)
            real = inputs.attention_mask.astype(bool)
            errors[name] = float(np.abs(got - want)[real].max())
            verdict = "ok" if errors[name] <= tol else "MISMATCH"
            log(f"  {name:32s} max |logits diff| {errors[name]:.2e}  "
                f"(|logits| up to {np.abs(want).max():.1f})  {verdict}")
    worst = max(errors.values())
    log(f"{'PASS' if worst <= tol else 'FAIL'}: worst {worst:.2e}, tolerance {tol:.0e}")
    return errors
