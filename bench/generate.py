"""Generation figures: decode tokens/s (ours vs transformers' `generate`, same process, same
random model) and prefill work per turn (cache appends vs re-prefilling the conversation).

    python bench/generate.py [--hidden 256 --layers 4 --batch 8 --new 128 --vocab 1000
                              --temperature 0]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from seeker_jax.checkpointing.tiny import tiny_segment as segment  # the tiny "test" vocabulary
from seeker_jax.models.chat import Segment
from seeker_jax.models.qwen3_vl.tiny import build_hf, tiny_hf_config
from seeker_jax.models.qwen3_vl import from_pretrained
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams



def decode_speed(hf, model, batch: int, prompt: int, new: int, repeats: int,
                 vocab: int, temperature: float = 0.0) -> dict:
    """Decode of `new` tokens for `batch` prompts: ours (Sampler.generate, XLA on every backend)
    and transformers' generate, interleaved `repeats` times in this process; medians. Greedy
    at temperature 0, else both sample from the whole tempered softmax (no top-k / top-p on
    either side). Returns the figures printed."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 980, (batch, prompt))  # below the vision ids (990-993)
    sampler = Sampler(model, batch_size=batch, max_len=prompt + new + 8,
                      params=SamplingParams(temperature), decode_steps=32,
                      max_chunk=max(prompt, 16))
    prompts = [Segment(r.astype(np.int32), np.zeros(prompt, np.int32), np.zeros(prompt, np.int32))
               for r in ids]
    x = torch.from_numpy(ids)
    kw = dict(do_sample=False, eos_token_id=vocab - 1, pad_token_id=0)
    if temperature:
        kw.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)

    def ours():
        return sampler.generate(prompts, max_new_tokens=new)

    def theirs():
        with torch.no_grad():
            return hf.generate(input_ids=x, max_new_tokens=new, min_new_tokens=new, **kw)

    t0 = time.perf_counter()
    ours()
    compile_s = time.perf_counter() - t0
    theirs()  # warm-up
    t_ours, t_theirs, in_decode = [], [], []
    for _ in range(repeats):
        sampler.stats.clear()
        t0 = time.perf_counter()
        mine = ours()
        t_ours.append(time.perf_counter() - t0)
        stats = sampler.stats
        in_decode.append(stats["decode_s"] / max(stats["decode_tokens"], 1))
        t0 = time.perf_counter()
        out = theirs()
        t_theirs.append(time.perf_counter() - t0)
    same = sum(np.array_equal(t.ids, o[prompt:].numpy()) for t, o in zip(mine, out))
    total = batch * new
    a, b = statistics.median(t_ours), statistics.median(t_theirs)
    mode = f"sampled at temperature {temperature}" if temperature else "greedy"
    print(f"decode, batch {batch}, prompt {prompt}, {new} new tokens, {mode}, vocab {vocab}; "
          f"medians of {repeats} interleaved runs; torch {torch.get_num_threads()} threads, "
          f"XLA CPU on {os.cpu_count()} cores:")
    print(f"  ours: {total / a:8.1f} tok/s end to end ({1e3 * a / new:.2f} ms per batch step; "
          f"{1e3 * batch * statistics.median(in_decode):.2f} ms per step inside decode calls); "
          f"first call incl. compilation {compile_s:.1f} s")
    print(f"  transformers generate: {total / b:8.1f} tok/s ({1e3 * b / new:.2f} ms per step)")
    print(f"  speed-up: {b / a:.2f}x; identical sequences: {same}/{batch}"
          + (" (sampled: not expected)" if temperature else ""))
    return {"ours_tok_s": total / a, "transformers_tok_s": total / b, "ratio": b / a,
            "same_sequences": same, "batch": batch, "mode": mode, "vocab": vocab,
            "repeats": repeats, "ours_s": a, "transformers_s": b, "ours_s_all": t_ours,
            "transformers_s_all": t_theirs, "compile_s": compile_s, "prompt": prompt,
            "new_tokens": new, "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "cpu_count": os.cpu_count()}


def prefill_work(model, turns: int = 5) -> None:
    """A 5-turn episode: prompt (text, image, video), then per turn 24 generated tokens and a
    tool response alternating text+image and text+video."""
    sampler = Sampler(model, batch_size=1, max_len=2048, params=SamplingParams(0.0),
                      stop_token_ids=(999,), decode_steps=32, max_chunk=256)
    prompt = segment([("text", 40), ("image", (8, 8)), ("text", 20), ("video", (4, 8, 8)),
                      ("text", 10)], 0)
    tools = [segment([("text", 12), ("image", (8, 8)), ("text", 4)] if k % 2 == 0 else
                     [("text", 12), ("video", (2, 8, 8)), ("text", 4)], k + 1)
             for k in range(turns)]
    print(f"prefill work per turn ({turns}-turn episode, tokens computed before each turn):")
    print("  turn   appended   full re-prefill   append s")
    total_app = total_full = 0
    seg = prompt
    for k in range(turns + 1):
        before = sampler.stats["prefill_tokens"]
        t0 = time.perf_counter()
        sampler.append({0: seg}, max_new_tokens=24)
        dt = time.perf_counter() - t0
        appended = sampler.stats["prefill_tokens"] - before
        full = len(sampler.conversation(0).input_ids)
        total_app, total_full = total_app + appended, total_full + full
        print(f"  {k:4d}   {appended:8d}   {full:15d}   {dt:8.3f}")
        while sampler.active_rows:
            sampler.step()
        if k < turns:
            seg = tools[k]
    print(f"  total  {total_app:8d}   {total_full:15d}   -> {total_full / total_app:.2f}x "
          "fewer tokens with appends")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=1000, help="151936: Qwen3-VL's real vocabulary")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--temperature", type=float, default=0.0,
                    help="0: greedy; else both sides sample, untruncated")
    ap.add_argument("--skip-prefill", action="store_true")
    ap.add_argument("--json", default="", help="also write the decode figures to this file "
                    "as JSON (bench/run_all.py reads it)")
    args = ap.parse_args()
    cfg = tiny_hf_config(vocab_size=args.vocab, hidden_size=args.hidden,
                         intermediate_size=4 * args.hidden, num_hidden_layers=args.layers,
                         num_attention_heads=8, num_key_value_heads=4, head_dim=32,
                         rope_parameters=dict(rope_type="default", rope_theta=10000.0,
                                              mrope_section=[6, 5, 5], mrope_interleaved=True))
    hf = build_hf(cfg)
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        model = from_pretrained(d)
    print(f"model: hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}, float32; "
          f"CPU, {os.cpu_count()} cores")
    figures = decode_speed(hf, model, args.batch, args.prompt, args.new, args.repeats,
                           args.vocab, args.temperature)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bench": "generate", "args": vars(args), "decode": figures}, f, indent=1)
    if not args.skip_prefill:
        prefill_work(model)


if __name__ == "__main__":
    main()
