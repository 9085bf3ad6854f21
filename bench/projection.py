"""The decode step's vocabulary projection at Qwen3-VL's real vocabulary, and the memory floor
under it: is a 3x decode speed-up over transformers reachable on this CPU in float32?

One greedy decode step ends in logits = h @ E.T, h (rows, hidden), E the tied embedding
(vocab, hidden): every step reads all of E. At bench/generate.py's config (hidden 256, vocab
151,936, fp32) that is 155 MB a step. This bench times, interleaved in one process (medians):
  h @ E.T     the jitted projection as training and prefill run it (layers.Embed.attend,
              called on a real Embed)
  ours        as a decode step runs it, (E @ h.T).T (layers.Embed.attend_few)
  E copy      h @ Et with a transposed (hidden, vocab) copy of E (the CPU sampler's decode form:
              decoding.transposed_head, one more table of memory)
  torch       the same product in PyTorch (what transformers' lm_head runs)
  read floor  a jitted reduction that reads E once and does nothing else (E.max()): a rough
              floor only (the transposed copy has beaten it: XLA's reduction does not run
              at full bandwidth either)
and prints each in ms and GB/s of E read, and the decode ratio the floor allows given the rest
of a step (--rest-ms, bench/generate.py's per-step time at vocab 1,000).

    python bench/projection.py [--rows 8 --hidden 256 --vocab 151936 --repeats 30]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

from seeker_jax.models.qwen3_vl.layers import Embed


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=151_936)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--rest-ms", type=float, default=2.36,
                    help="the rest of our decode step (bench/generate.py, vocab 1,000)")
    ap.add_argument("--theirs-ms", type=float, default=29.9,
                    help="transformers' decode step at the real vocabulary (bench/generate.py)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    E = rng.standard_normal((args.vocab, args.hidden), dtype=np.float32)
    h = rng.standard_normal((args.rows, args.hidden), dtype=np.float32)
    Ej, hj, Et, ht = jnp.asarray(E), jnp.asarray(h), torch.from_numpy(E), torch.from_numpy(h)

    emb = Embed(args.vocab, args.hidden, ("vocab", "embed"), dtype=jnp.float32,
                param_dtype=jnp.float32, rngs=nnx.Rngs(0))
    emb.embedding[...] = Ej
    graphdef, state = nnx.split(emb)
    project = jax.jit(lambda state, h: nnx.merge(graphdef, state).attend(h))
    few = jax.jit(lambda state, h: nnx.merge(graphdef, state).attend_few(h))
    copy = jax.jit(lambda h, Et: h @ Et)
    Etj = jnp.asarray(E.T.copy())
    read = jax.jit(lambda E: E.max())
    runs = {
        "h @ E.T": lambda: project(state, hj).block_until_ready(),
        "ours": lambda: few(state, hj).block_until_ready(),
        "E copy": lambda: copy(hj, Etj).block_until_ready(),
        "torch": lambda: h_at(Et, ht),
        "read floor": lambda: read(Ej).block_until_ready(),
    }
    ref = np.asarray(project(state, hj))
    for other in (few(state, hj), copy(hj, Etj), h_at(Et, ht).numpy()):
        assert np.allclose(ref, np.asarray(other), atol=1e-3), "the projections disagree"
    for fn in runs.values():  # compile and warm up
        fn()
    times = {k: [] for k in runs}
    for _ in range(args.repeats):  # interleaved
        for k, fn in runs.items():
            times[k].append(_once(fn))
    gb = E.nbytes / 1e9
    print(f"rows {args.rows}, hidden {args.hidden}, vocab {args.vocab}, float32 (E is "
          f"{1e3 * gb:.0f} MB); medians of {args.repeats} interleaved runs; torch "
          f"{torch.get_num_threads()} threads, XLA CPU on {os.cpu_count()} cores")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, t in med.items():
        print(f"  {k:<11} {1e3 * t:7.2f} ms  {gb / t:6.1f} GB/s")
    print(f"  ours vs torch: {med['torch'] / med['ours']:.2f}x; ours vs the read floor: "
          f"{med['ours'] / med['read floor']:.2f}x the floor's time")
    fastest = min(med["read floor"], med["E copy"])   # the fastest read of E measured here
    best = args.rest_ms + 1e3 * fastest
    print(f"  with the projection as fast as the fastest read of E here, a decode step takes "
          f"about {args.rest_ms:.2f} + {1e3 * fastest:.2f} = {best:.2f} ms: at most about "
          f"{args.theirs_ms / best:.2f}x transformers' {args.theirs_ms:.1f} ms step")


def h_at(Et: torch.Tensor, ht: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return ht @ Et.T


if __name__ == "__main__":
    main()
