"""Convert / export throughput and memory on a random ~1.8 GB bf16 checkpoint.

A mid-size Qwen3-VL config (text hidden 1536 x 12 layers, full 151936 vocab, untied head;
vision 768 x 12 blocks): about 0.9 B parameters. The HF folder is generated with safetensors
directly, shard by shard (no torch model is built). Each phase runs in its own subprocess so
its peak RSS is its own:

    generate  random HF folder, ~400 MB shards + index
    convert   seeker-jax convert  (HF -> orbax)
    export    seeker-jax export   (orbax -> HF, 500 MB shards)

Prints seconds, MB/s and peak RSS (absolute, and as a multiple of the checkpoint size; the
target is <= 1.5x), plus the RSS of the imports alone. Spot-checks that exported tensors equal
the generated ones bit for bit.

    python bench/convert.py [--dir /tmp/seeker_bench_convert] [--layers 12] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time


def _rss_now() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _config(layers: int):
    from seeker_jax.models.qwen3_vl import Qwen3VLConfig, TextConfig, VisionConfig

    return Qwen3VLConfig(
        text=TextConfig(hidden_size=1536, intermediate_size=4096, num_hidden_layers=layers,
                        num_attention_heads=12, num_key_value_heads=4, head_dim=128,
                        mrope_section=(24, 20, 20)),
        vision=VisionConfig(depth=12, hidden_size=768, intermediate_size=3072, num_heads=12,
                            out_hidden_size=1536, deepstack_visual_indexes=(3, 7, 11)),
        tie_word_embeddings=False)


def generate(hf_dir: str, layers: int, shard_bytes: int = 400_000_000) -> None:
    """A random bf16 HF folder, written with safetensors.torch one shard at a time."""
    import torch
    from flax import nnx
    from safetensors.torch import save_file

    from seeker_jax.models.qwen3_vl import params as P
    from seeker_jax.models.qwen3_vl import to_hf_dict
    from seeker_jax.models.qwen3_vl.hf_io import INDEX, abstract_model

    cfg = _config(layers)
    shapes = dict(nnx.to_flat_state(nnx.state(abstract_model(cfg), nnx.Param)))
    specs = [(e.hf_name, P.hf_shape(e, tuple(shapes[e.flax_path].shape), cfg))
             for e in P.expand(cfg)]
    os.makedirs(hf_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    groups, size = [[]], 0
    for name, shape in specs:
        n = 2 * int(torch.Size(shape).numel())
        if groups[-1] and size + n > shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append((name, shape))
        size += n
    weight_map, total = {}, 0
    for i, group in enumerate(groups):
        fn = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        tensors = {name: (0.02 * torch.randn(shape, generator=gen)).to(torch.bfloat16)
                   for name, shape in group}
        save_file(tensors, os.path.join(hf_dir, fn), metadata={"format": "pt"})
        total += sum(t.numel() * 2 for t in tensors.values())
        weight_map.update({name: fn for name in tensors})
        del tensors
    with open(os.path.join(hf_dir, INDEX), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
    with open(os.path.join(hf_dir, "config.json"), "w") as f:
        json.dump(to_hf_dict(cfg, "bfloat16"), f, indent=2)


def phase(name: str, root: str, layers: int) -> dict:
    """Runs in the child: one phase, then its figures as JSON."""
    import jax  # noqa: F401  (imports count in the baseline, not in the phase)

    from seeker_jax.checkpointing.convert import convert, export

    baseline = _rss_now()
    t0 = time.perf_counter()
    hf, ckpt, out = (os.path.join(root, n) for n in ("hf", "ckpt", "export"))
    line = ""
    if name == "generate":
        generate(hf, layers)
    elif name == "convert":
        line = convert(hf, ckpt, overwrite=True, progress=False)
    elif name == "export":
        line = export(ckpt, out, max_shard_size="500MB", overwrite=True, progress=False)
    return {"phase": name, "seconds": time.perf_counter() - t0, "baseline_rss": baseline,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "summary": line}


def folder_bytes(path: str, suffix: str = "") -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
               if f.endswith(suffix))


def spot_check(root: str, count: int = 6) -> int:
    """Exported tensors equal the generated ones, bit for bit (a spread of names)."""
    import torch
    from safetensors import safe_open

    def tensor_map(d):
        with open(os.path.join(d, "model.safetensors.index.json")) as f:
            return json.load(f)["weight_map"]

    src, dst = tensor_map(os.path.join(root, "hf")), tensor_map(os.path.join(root, "export"))
    assert sorted(src) == sorted(dst), "exported names differ from the input"
    names = sorted(src)[:: max(1, len(src) // count)]
    for name in names:
        with safe_open(os.path.join(root, "hf", src[name]), "pt") as a, \
                safe_open(os.path.join(root, "export", dst[name]), "pt") as b:
            x, y = a.get_tensor(name), b.get_tensor(name)
            assert x.dtype == y.dtype and x.shape == y.shape, name
            assert torch.equal(x.view(torch.int16), y.view(torch.int16)), name
    return len(names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="/tmp/seeker_bench_convert")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--keep", action="store_true", help="keep the generated folders")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.dir, args.layers)))
        return

    shutil.rmtree(args.dir, ignore_errors=True)
    results = []
    for name in ("generate", "convert", "export"):
        proc = subprocess.run([sys.executable, __file__, "--phase", name, "--dir", args.dir,
                               "--layers", str(args.layers)], capture_output=True, text=True,
                              env={**os.environ, "JAX_PLATFORMS": "cpu"})
        if proc.returncode:
            sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    size = folder_bytes(os.path.join(args.dir, "hf"), ".safetensors")
    checked = spot_check(args.dir)
    print(f"checkpoint: {size / 1e9:.2f} GB bf16 ({args.layers} text layers), "
          f"orbax {folder_bytes(os.path.join(args.dir, 'ckpt')) / 1e9:.2f} GB, "
          f"export {folder_bytes(os.path.join(args.dir, 'export'), '.safetensors') / 1e9:.2f} GB")
    print(f"{'phase':9s} {'seconds':>8s} {'MB/s':>7s} {'peak RSS':>9s} {'x ckpt':>7s} "
          f"{'imports':>8s} {'(peak-imports) x ckpt':>22s}")
    for r in results:
        print(f"{r['phase']:9s} {r['seconds']:8.1f} {size / 1e6 / r['seconds']:7.0f} "
              f"{r['peak_rss'] / 1e9:8.2f}G {r['peak_rss'] / size:7.2f} "
              f"{r['baseline_rss'] / 1e9:7.2f}G {(r['peak_rss'] - r['baseline_rss']) / size:22.2f}")
        if r["summary"]:
            print("   ", r["summary"])
    print(f"spot check: {checked} tensors bit-exact after HF -> orbax -> HF")
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
