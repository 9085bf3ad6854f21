"""The README's "TPU pods: will it fit?" table: `seeker-jax aot` for each model x topology.

    python bench/aot_table.py [--out runs/aot] [--only 4b:v5p:2x2x1 ...]

Each row is one `seeker-jax aot` subprocess (one at a time: a real-size compile takes minutes
and ~3-5 GB of host memory), its figures saved as OUT/<model>_<topology>.json; rows already
saved are reused. Prints the markdown table.

Measured (this CPU, 2 cores, shared): 4B on v5p:2x2x1 fits at 26.9 GiB/chip (compile 13 min,
13 GB host peak, under load); 8B on v5p:2x2x1 fits at 50.0 GiB/chip (compile 7 min). With
same-size videos batched into one vision attention, the 16-chip fsdp rows compile in 6-7 min
at 9-10 GB host peak: 4B v5p:2x2x4 31.6 GiB, 4B v6e:4x4 24.7 GiB, 8B v5p:2x2x4 38.6 GiB,
8B v6e:4x4 30.7 GiB of 32 (all fit). The README's table has every row.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROWS = [  # (model, topology, batch per chip, config overrides)
    ("4b", "v5p:2x2x1", 1, ()), ("4b", "v5p:2x2x4", 1, ()), ("4b", "v6e:4x4", 1, ()),
    ("8b", "v5p:2x2x1", 1, ()), ("8b", "v5p:2x2x4", 1, ()), ("8b", "v6e:4x4", 1, ()),
    # fsdp 4 x tensor 4: 4 videos per step instead of 16, a smaller program to compile
    ("8b", "v6e:4x4", 1, ("--config.mesh.data=1", "--config.mesh.fsdp=4",
                          "--config.mesh.tensor=4")),
]
PODS = {"v5p:2x2x1": "v5p-8", "v5p:2x2x4": "v5p-32", "v6e:4x4": "v6e-16", "v5e:2x2": "v5e-4"}
GIB = 1024**3


def run_row(model: str, topology: str, batch_per_chip: int, overrides: tuple, out: str) -> dict:
    tag = "_tp" + overrides[-1].split("=")[-1] if overrides else ""
    path = os.path.join(out, f"{model}_{topology.replace(':', '_')}{tag}.json")
    if not os.path.exists(path):
        cmd = [sys.executable, "-m", "seeker_jax.cli", "aot", "--config",
               f"configs/sft.py:qwen3_vl_{model}", *overrides, "--topology", topology,
               "--batch-per-chip", str(batch_per_chip), "--json", path]
        start = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode not in (0, 2):
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
        with open(path) as f:
            figures = json.load(f)
        figures["compile_s"] = round(time.time() - start, 1)
        with open(path, "w") as f:
            json.dump(figures, f, indent=1)
    with open(path) as f:
        return json.load(f)


def table(rows: list[dict]) -> str:
    lines = ["| model | pod (topology) | mesh data x fsdp x tensor | batch/chip | seq len (64-frame video) "
             "| per-chip memory | HBM | fits | FLOPs / 6NT |",
             "|---|---|---|---|---|---|---|---|---|"]
    for f in rows:
        mesh = " x ".join(str(v) for v in f["mesh"].values())
        pod = f"{PODS.get(f['topology'], f['topology'])} (`{f['topology']}`)"
        if f["fits"]:
            mem = f"{f['total_bytes'] / GIB:.1f} GiB"
            ratio = "n/a" if f.get("flops_ratio") is None else f"{f['flops_ratio']:.2f}"
        else:
            mem = (f"needs {f['used_gib']:.1f} GiB" if f.get("used_gib") else "over HBM")
            ratio = "-"
        lines.append(f"| {f['model'].upper()} | {pod} | {mesh} | {f['batch_per_chip']} | "
                     f"{f['seq_len']} | {mem} | {f['hbm_gib']:.0f} GiB | "
                     f"{'yes' if f['fits'] else '**no**'} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/aot")
    p.add_argument("--only", nargs="*", default=None, help="model:topology, e.g. 8b:v5p:2x2x1")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = [r for r in ROWS if args.only is None or f"{r[0]}:{r[1]}" in args.only]
    figures = []
    for model, topology, bpc, overrides in rows:
        figures.append(run_row(model, topology, bpc, overrides, args.out))
        print(f"{model} {topology}: {'fits' if figures[-1]['fits'] else 'does not fit'} "
              f"({figures[-1].get('compile_s', '?')} s)", flush=True)
    print(table(figures))


if __name__ == "__main__":
    main()
