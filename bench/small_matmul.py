"""The CPU decode kernel (models/cpu_kernels.py) against XLA's dot on a decode step's shapes:
rows x (K, N) float32, each weight used once per step as in a decode loop, interleaved in one
process, medians.

    python bench/small_matmul.py [--rows 8 --repeats 9]

Shapes: the bench model's (hidden 256, intermediate 1024) gate/up and down projections, 24 of
each in a chain (24 MB: like a real step, they do not all fit in cache), and the tied head at
Qwen3-VL's 151,936-token vocabulary (155 MB). Also XLA's sum over each packed weight: a
reference for how fast XLA streams the same bytes (not a hard floor: the kernel can beat it).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from seeker_jax.models import cpu_kernels


def chain(mm, weights, x, steps):
    """`steps` decode-like steps: each multiplies the running rows by every weight in turn."""
    K = x.shape[-1]

    def step(i, h):
        for w in weights:
            y = mm(h, w)
            h = h + 1e-3 * jnp.tanh(y[:, :K] if y.shape[1] >= K else jnp.tile(y, (1, K // y.shape[1])))
        return h

    return jax.jit(lambda x, ws: jax.lax.fori_loop(0, steps, step, x))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    if not cpu_kernels.available():
        raise SystemExit("the CPU decode kernel is not available on this machine")
    print(f"rows {args.rows}, float32; XLA CPU on {os.cpu_count()} cores "
          f"(the kernel uses XLA's intra-op pool); medians of {args.repeats} interleaved runs")
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((args.rows, 256)).astype(np.float32))
    for name, K, N, count, steps in [("gate/up 256x1024", 256, 1024, 24, 100),
                                     ("down 1024x256", 1024, 256, 24, 100),
                                     ("head 256x151936", 256, 151936, 1, 10)]:
        ws = [jnp.asarray((rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32))
              for _ in range(count)]
        packed = [cpu_kernels.pack(w) for w in ws]
        xk = x if K == 256 else jnp.tile(x, (1, K // 256))
        xla = chain(jnp.dot, ws, xk, steps)
        ours = chain(lambda h, p: cpu_kernels.matmul(h, p, N), packed, xk, steps)
        read = jax.jit(lambda ps: sum(p.sum() for p in ps))
        err = float(jnp.abs(cpu_kernels.matmul(xk, packed[0], N) - jnp.dot(xk, ws[0])).max())
        runs = {"xla": (xla, (xk, ws)), "kernel": (ours, (xk, packed)), "read": (read, (packed,))}
        for fn, a in runs.values():
            jax.block_until_ready(fn(*a))
        times = {k: [] for k in runs}
        for _ in range(args.repeats):
            for k, (fn, a) in runs.items():
                t0 = time.perf_counter()
                jax.block_until_ready(fn(*a))
                times[k].append(time.perf_counter() - t0)
        per = {k: statistics.median(v) / (steps * count if k != "read" else count)
               for k, v in times.items()}
        gb = K * N * 4 / 1e9
        print(f"  {name} (x{count}): XLA dot {1e6 * per['xla']:9.1f} us ({gb / per['xla']:5.1f} GB/s)"
              f"   kernel {1e6 * per['kernel']:9.1f} us ({gb / per['kernel']:5.1f} GB/s)"
              f"   {per['xla'] / per['kernel']:.2f}x   XLA sum {1e6 * per['read']:8.1f} us;"
              f" max |kernel - dot| {err:.1e}")


if __name__ == "__main__":
    main()
