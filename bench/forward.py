"""Forward-pass speed: our jitted Flax Qwen3-VL vs transformers' PyTorch forward.

Same config, same weights (loaded from one saved HF folder), same inputs, same process, runs
interleaved: hidden 512, 8 text layers, a 4-block vision tower, one 448x448 image + 256 text
tokens (`--text 2048` for the long row), float32 on CPU. Prints both median times, the ratio
(ours / theirs), tokens/s and the thread counts.

    python bench/forward.py [--repeats 10] [--text 256] [--image 448]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from seeker_jax.models.qwen3_vl import forward, from_pretrained, load_hf_config  # noqa: E402
from seeker_jax.checkpointing.parity import make_inputs, torch_logits  # noqa: E402


def build_reference(out_dir: str) -> transformers.Qwen3VLForConditionalGeneration:
    torch.manual_seed(0)
    cfg = transformers.Qwen3VLConfig(
        text_config=dict(vocab_size=151936, hidden_size=512, intermediate_size=1536,
                         num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4,
                         head_dim=64, rope_parameters=dict(rope_type="default", rope_theta=5e6,
                                                           mrope_section=[12, 10, 10],
                                                           mrope_interleaved=True)),
        vision_config=dict(depth=4, hidden_size=256, intermediate_size=1024, num_heads=4,
                           out_hidden_size=512, deepstack_visual_indexes=[1, 2]),
        tie_word_embeddings=True)
    model = transformers.Qwen3VLForConditionalGeneration(cfg).eval()
    model.save_pretrained(out_dir)
    return model


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--text", type=int, default=256, help="text tokens")
    ap.add_argument("--image", type=int, default=448, help="square image side in pixels")
    ap.add_argument("--json", default="", help="also write the figures to this file as JSON "
                    "(bench/run_all.py reads it)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as d:
        ref = build_reference(d)
        ours = from_pretrained(d)
        cfg = load_hf_config(d)
    side = args.image // 16
    inputs = make_inputs([[("text", args.text // 2), ("image", (side, side)),
                           ("text", args.text - args.text // 2)]], cfg, seed=0)
    n_tokens = inputs.input_ids.size

    def run_ours():
        forward(ours, **inputs.arrays()).logits.block_until_ready()

    def run_theirs():
        torch_logits(ref, inputs)

    t0 = time.perf_counter()
    run_ours()
    compile_s = time.perf_counter() - t0
    run_theirs()  # warm-up
    diff = np.abs(np.asarray(forward(ours, **inputs.arrays()).logits)
                  - torch_logits(ref, inputs)).max()
    mine, theirs = [], []
    for _ in range(args.repeats):  # interleaved: load from elsewhere falls on both alike
        mine += timed(run_ours, 1)
        theirs += timed(run_theirs, 1)
    t_ours, t_theirs = statistics.median(mine), statistics.median(theirs)
    print(f"config: hidden 512, 8 layers, vision depth 4, {args.image}x{args.image} image + "
          f"{args.text} text tokens = {n_tokens} tokens, float32, "
          f"{jax.devices()[0].platform} ({os.cpu_count()} cores) / torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); medians of {args.repeats} interleaved runs")
    print(f"max |logits diff| {diff:.2e}; first call (compile) {compile_s:.2f} s")
    print(f"transformers: {t_theirs * 1e3:8.1f} ms  ({n_tokens / t_theirs:8.0f} tokens/s)")
    print(f"seeker-jax:   {t_ours * 1e3:8.1f} ms  ({n_tokens / t_ours:8.0f} tokens/s)")
    print(f"ratio ours/theirs: {t_ours / t_theirs:.2f}x  (target <= 0.8x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bench": "forward", "args": vars(args), "tokens": int(n_tokens),
                       "ours_s": t_ours, "transformers_s": t_theirs, "ours_s_all": mine,
                       "transformers_s_all": theirs, "ours_over_theirs": t_ours / t_theirs,
                       "max_abs_logits_diff": float(diff), "compile_s": compile_s,
                       "platform": jax.devices()[0].platform, "cpu_count": os.cpu_count(),
                       "torch_threads": torch.get_num_threads(),
                       "torch_interop_threads": torch.get_num_interop_threads()}, f, indent=1)


if __name__ == "__main__":
    main()
