"""Attention forward + backward: our implementations against PyTorch's fused SDPA.

One causal attention call and its gradient w.r.t. q, k, v, at Qwen3-VL-8B's text shape (32
query heads over 8 KV heads, head_dim 128), batch 1, per sequence length. Each row times, in
one process and interleaved round by round:
- ours: "reference" (dense scores), "chunked" (pure-JAX flash), "cudnn" (GPU only; also with
  right padding, which goes in as key lengths),
- torch: `F.scaled_dot_product_attention(is_causal=True, enable_gqa=True)`, whichever fused
  backend torch picks (flash on a GPU), when torch is installed,
and prints the median time of each, its ratio to torch's, and the memory each needs: XLA's
compiled temporaries for ours, `torch.cuda.max_memory_allocated` above the inputs for torch
(GPU only). On a GPU it runs bfloat16; on a CPU float32 at smaller lengths (cuDNN skipped).

    python bench/attention.py [--lengths 4608 16384] [--repeats 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from seeker_jax.models.qwen3_vl import attention as A

H, KVH, D = 32, 8, 128
DENSE_LIMIT_GB = 16.0  # skip the dense reference when its float32 scores alone exceed this


def jax_step(impl: str, padded: bool, L: int):
    """A jitted fn(q, k, v, w) -> (dq, dk, dv) of sum(attention * w); padded: the last L // 8
    keys are padding."""
    mask = A.causal_mask(jnp.arange(L)[None] < L - L // 8 if padded else None)

    def loss(q, k, v, w):
        return (A.dot_product_attention(q, k, v, mask, impl).astype(jnp.float32) * w).sum()

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def torch_step(torch, q, k, v, w):
    import torch.nn.functional as F

    def run():
        for t in (q, k, v):
            t.grad = None
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        (out.float() * w).sum().backward()
        return q.grad
    return run


def median_ms(times: list[float]) -> float:
    return 1e3 * statistics.median(times)


def main() -> None:
    gpu = jax.default_backend() == "gpu"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+",
                    default=[4608, 16384] if gpu else [1024, 2048])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    dtype = jnp.bfloat16 if gpu else jnp.float32
    try:
        import torch
    except ImportError:
        torch = None
    tdev = "cuda" if gpu else "cpu"
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({jax.default_backend()}), jax {jax.__version__}, "
          f"{jnp.dtype(dtype).name}; host threads: {os.cpu_count()} cores"
          + (f", torch {torch.__version__} threads {torch.get_num_threads()}" if torch else ""))
    print(f"shape: batch 1, {H} query heads / {KVH} KV heads, head_dim {D}, causal; "
          f"median of {args.repeats} interleaved rounds after one warm-up")
    for L in args.lengths:
        r = np.random.default_rng(L)
        arrays = [r.standard_normal(s).astype(np.float32)
                  for s in ((1, L, H, D), (1, L, KVH, D), (1, L, KVH, D), (1, L, H, D))]
        q, k, v = (jnp.asarray(a, dtype) for a in arrays[:3])
        w = jnp.asarray(arrays[3])
        rows = {}
        impls = [("reference", False), ("chunked", False)]
        if gpu:
            impls += [("cudnn", False), ("cudnn", True)]
        dense_gb = H * L * L * 4 / 2**30
        for impl, padded in impls:
            name = impl + (" (right-padded)" if padded else "")
            if impl == "reference" and dense_gb > DENSE_LIMIT_GB:
                print(f"L={L}: {name} skipped: its float32 scores alone take {dense_gb:.0f} GiB")
                continue
            fn = jax_step(impl, padded, L)
            compiled = fn.lower(q, k, v, w).compile()
            temp = compiled.memory_analysis().temp_size_in_bytes
            jax.block_until_ready(compiled(q, k, v, w))
            rows[name] = (lambda c=compiled: jax.block_until_ready(c(q, k, v, w)), temp, [])
        if torch is not None:
            tt = [torch.tensor(a, device=tdev).transpose(1, 2).contiguous() for a in arrays]
            tdtype = torch.bfloat16 if gpu else torch.float32
            tq, tk, tv = (t.to(tdtype).requires_grad_() for t in tt[:3])
            run = torch_step(torch, tq, tk, tv, tt[3])
            sync = torch.cuda.synchronize if gpu else (lambda: None)
            if gpu:
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            run()
            sync()
            mem = torch.cuda.max_memory_allocated() - base if gpu else None
            rows["torch sdpa"] = (lambda: (run(), sync()), mem, [])
        for _ in range(args.repeats):
            for fn, _, times in rows.values():
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        ref = median_ms(rows["torch sdpa"][2]) if "torch sdpa" in rows else None
        for name, (_, mem, times) in rows.items():
            ms = median_ms(times)
            ratio = f"{ms / ref:5.2f}x torch's time" if ref else ""
            mem_s = "n/a" if mem is None else f"{mem / 2**30:7.2f} GiB"
            print(f"L={L:6d}  {name:24s} {ms:9.2f} ms   memory {mem_s}   {ratio}")


if __name__ == "__main__":
    main()
