"""Tokens/s of our jitted SFT step vs a plain PyTorch/transformers step (fwd + bwd + AdamW).

Same model config (configs/qwen3_vl.py:SIZE, random init), same text batch (B, L), loss on
every token, one process, fp32, every parameter trained on both sides (no vision input, so
the vision tower costs neither side anything). Steps alternate between the two frameworks so
that load from other processes falls on both alike; medians are reported. Prints one JSON
line per framework.

    python bench/train_step.py --size small --batch 2 --length 512 --steps 5

Where the time goes (small, B=2, L=512; 151,936 x 256 tied embedding = 39M of the 41M
parameters): the vocabulary projection is ~90% of the step's FLOPs. transformers does three
vocab-sized matmuls per step (logits, dX, dW). Ours does three as well: the loss forms its
gradients in the forward pass (seeker_jax.training.losses.token_logprob_sum, under the "sft"
loss) instead of recomputing the logits in backward under jax.checkpoint, memory still one
chunk. Figures: docs/benchmarks.md, written by bench/run_all.py.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np


def jax_step(cfg_dict: dict, ids: np.ndarray):
    """A callable running one jitted SFT step (batch placement included); returns the loss."""
    import optax
    from flax import nnx

    from seeker_jax.models.qwen3_vl.config import from_hf_dict
    from seeker_jax.models.qwen3_vl.modeling import Qwen3VLForConditionalGeneration
    from seeker_jax.training.train_state import create_train_state, make_train_step, place_batch

    model = Qwen3VLForConditionalGeneration(from_hf_dict(cfg_dict), rngs=nnx.Rngs(0))
    tx = optax.adamw(1e-4)
    state = create_train_state(model, tx, mesh=None, freeze_vision=False)
    step = make_train_step(tx)
    batch = {"input_ids": ids, "attention_mask": np.ones_like(ids),
             "mm_token_type_ids": np.zeros_like(ids), "loss_mask": np.ones_like(ids)}

    def run() -> float:
        placed, vision = place_batch(batch, model, None)
        return float(step(state, placed, vision)["loss"])
    return run


def torch_step(cfg_dict: dict, ids: np.ndarray):
    """A callable running one transformers forward + backward + AdamW step; returns the loss."""
    import torch
    import transformers

    torch.manual_seed(0)
    model = transformers.Qwen3VLForConditionalGeneration(transformers.Qwen3VLConfig(**cfg_dict))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.tensor(ids, dtype=torch.long)

    def run() -> float:
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())
    return run


def main() -> None:
    import importlib.util
    from pathlib import Path

    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="small")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--json", default="", help="also write the rows to this file as JSON "
                   "(bench/run_all.py reads it)")
    args = p.parse_args()
    spec = importlib.util.spec_from_file_location(
        "qwen_sizes", Path(__file__).resolve().parents[1] / "configs" / "qwen3_vl.py")
    sizes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sizes)
    cfg_dict = sizes.hf_config(args.size)
    ids = np.random.default_rng(0).integers(0, 150000, (args.batch, args.length)).astype(np.int32)
    runs = {"jax": jax_step(cfg_dict, ids), "torch": torch_step(cfg_dict, ids)}
    first, times, losses = {}, {k: [] for k in runs}, {}
    for name, run in runs.items():  # compile / warm-up
        t0 = time.perf_counter()
        losses[name] = [run()]
        first[name] = time.perf_counter() - t0
    for _ in range(args.steps):  # interleaved
        for name, run in runs.items():
            t0 = time.perf_counter()
            losses[name].append(run())
            times[name].append(time.perf_counter() - t0)
    threads = {"jax": os.cpu_count(), "torch": torch.get_num_threads()}
    rows = []
    for name in runs:
        med = statistics.median(times[name])
        rows.append({"size": args.size, "batch": args.batch, "length": args.length,
                     "framework": name, "threads": threads[name],
                     "compile_and_first_s": round(first[name], 2),
                     "first_loss": losses[name][0], "last_loss": losses[name][-1],
                     "step_s_median": round(med, 3), "step_s_all":
                     [round(t, 2) for t in times[name]],
                     "tokens_per_s": round(ids.size / med, 1)})
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bench": "train_step", "args": vars(args), "rows": rows,
                       "torch_interop_threads": torch.get_num_interop_threads()}, f, indent=1)


if __name__ == "__main__":
    main()
