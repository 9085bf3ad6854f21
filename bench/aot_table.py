"""The tables of docs/pods.md ("TPU pods: will it fit?"): `seeker-jax aot` for each step x model x
topology, at the paper's recipe (SFT sequences of 16,384 tokens with a 256-frame prompt video,
GRPO responses of 4,096 tokens on top, the sampler's KV cache of 8 rows x 20k tokens), from the
presets as shipped (scanned decoder layers; "auto" attention, splash for a TPU topology).

    python bench/aot_table.py [--out runs/aot] [--only sft:8b:v5p:2x2x1 ...]

Each row is one `seeker-jax aot` subprocess under `/usr/bin/time -v` (one at a time: a
real-size compile takes minutes and several GB of host memory), its figures saved as
OUT/<step>_<model>_<topology>.json with the compile's wall time and peak host memory; rows
already saved are reused. Each row records the compile's wall and user CPU seconds and the
1-minute load average when it started: a wall time from a loaded machine is not a figure.
Prints the markdown tables.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

SEQ = ("--seq-len", "16384")
ROWS = [  # (step, model, topology, extra arguments)
    ("sft", "8b", "v5p:2x2x1", SEQ),
    ("sft", "8b", "v5p:2x2x4", SEQ),
    ("sft", "8b", "v6e:4x4", SEQ),
    ("sft", "4b", "v5p:2x2x1", SEQ),
    ("sft", "4b", "v5p:2x2x4", SEQ),
    ("sft", "4b", "v6e:4x4", SEQ),
    ("grpo", "8b", "v5p:2x2x1", ()),
    ("grpo", "8b", "v5p:2x2x4", ()),
    ("decode", "8b", "v5p:2x2x1", ("--rows", "8")),
    ("decode", "8b", "v5p:2x2x4", ("--rows", "8")),
]
PRESETS = {"sft": "configs/sft.py:qwen3_vl_{}", "grpo": "configs/grpo.py:paper_{}",
           "decode": "configs/grpo.py:paper_{}"}
PODS = {"v5p:2x2x1": "v5p-8", "v5p:2x2x4": "v5p-32", "v6e:4x4": "v6e-16", "v5e:2x2": "v5e-4"}
GIB = 1024**3


def row_path(out: str, step: str, model: str, topology: str) -> str:
    return os.path.join(out, f"{step}_{model}_{topology.replace(':', '_')}.json")


def run_row(step: str, model: str, topology: str, extra: tuple, out: str) -> dict:
    path = row_path(out, step, model, topology)
    if not os.path.exists(path):
        config = PRESETS[step].format(model)
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "seeker_jax.cli.main", "aot",
               *(("--decode",) if step == "decode" else ()), "--config", config, *extra,
               "--topology", topology, "--json", path]
        start, load = time.time(), os.getloadavg()[0]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode not in (0, 2) or not os.path.exists(path):
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
        peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        user = re.search(r"User time \(seconds\): ([\d.]+)", proc.stderr)
        with open(path) as f:
            figures = json.load(f)
        figures["compile_s"] = round(time.time() - start, 1)
        figures["host_peak_gb"] = round(int(peak.group(1)) * 1024 / 1e9, 2) if peak else None
        figures["compile_user_s"] = float(user.group(1)) if user else None
        figures["load_avg_1m"] = round(load, 2)
        figures["report"] = proc.stdout
        with open(path, "w") as f:
            json.dump(figures, f, indent=1)
    with open(path) as f:
        return json.load(f)


def _pod(f: dict) -> str:
    return f"{PODS.get(f['topology'], f['topology'])} (`{f['topology']}`)"


def _host(f: dict) -> str:
    step = f" (step {f['step_compile_s']:.0f} s)" if f.get("step_compile_s") else ""
    user = f", {f['compile_user_s']:.0f} s CPU" if f.get("compile_user_s") else ""
    load = f", load {f['load_avg_1m']:.1f}" if f.get("load_avg_1m") is not None else ""
    return f"{f.get('compile_s', 0):.0f} s{step}{user}, {f.get('host_peak_gb') or 0:.1f} GB{load}"


def train_table(rows: list[dict]) -> str:
    lines = ["| step | model | pod | mesh | attention | tokens / example | per chip (args / temps "
             "/ total) | fits | FLOPs / 6NT | projected step, MFU (roofline) | process wall (step "
             "compile), user CPU, host peak, load |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in rows:
        mesh = " x ".join(str(v) for v in f["mesh"].values())
        if f["fits"]:
            mem = (f"{f['argument_bytes'] / GIB:.2f} / {f['temp_bytes'] / GIB:.2f} / "
                   f"**{f['total_bytes'] / GIB:.2f} GiB** of {f['hbm_gib']:.0f}")
            fits = f"yes ({100 * f['total_bytes'] / (f['hbm_gib'] * GIB):.0f}%)"
        else:
            mem = f"needs {f['used_gib']:.1f} GiB" if f.get("used_gib") else "over HBM"
            fits = "**no**"
        ratio = "n/a" if f.get("flops_ratio") is None else f"{f['flops_ratio']:.2f}"
        p = f.get("projection")
        proj = "n/a" if not p else f"{p['step_s']:.2f} s ({p['bound']}), {100 * p['mfu']:.0f}%"
        lines.append(f"| {f['step']} | {f['model'].upper()} | {_pod(f)} | {mesh} | "
                     f"{f.get('attention_impl', 'n/a')} | {f['seq_len']:,} | {mem} | {fits} | "
                     f"{ratio} | {proj} | {_host(f)} |")
    return "\n".join(lines)


def decode_table(rows: list[dict]) -> str:
    lines = ["| model | pod | mesh | KV cache (rows x slots, dtype): all / per chip | weights "
             "per chip | decode step per chip | + learner state | fits beside the learner | "
             "compile wall, user CPU, host peak, load |", "|---|---|---|---|---|---|---|---|---|"]
    for f in rows:
        mesh = " x ".join(str(v) for v in f["mesh"].values())
        g = lambda k: f[k] / GIB  # noqa: E731
        step = "does not fit" if "error" in f else f"{g('total_bytes'):.2f} GiB"
        beside = ("no" if "error" in f else
                  f"{'yes' if f['fits_beside_learner'] else '**no**'} "
                  f"({g('beside_learner_bytes'):.1f} of {f['hbm_gib']:.0f} GiB)")
        lines.append(f"| {f['model'].upper()} | {_pod(f)} | {mesh} | {f['rows']} x "
                     f"{f['cache_slots']:,}, {f['dtype']}: {g('cache_bytes_total'):.1f} / "
                     f"{g('cache_bytes_per_chip'):.2f} GiB | {g('weights_bytes_per_chip'):.2f} GiB"
                     f" | {step} | {g('learner_state_bytes_per_chip'):.2f} GiB | {beside} | "
                     f"{_host(f)} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/aot")
    p.add_argument("--only", nargs="*", default=None,
                   help="step:model:topology, e.g. sft:8b:v5p:2x2x1 or decode:8b:v5p:2x2x1")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = [r for r in ROWS if args.only is None or f"{r[0]}:{r[1]}:{r[2]}" in args.only]
    train, decode = [], []
    for step, model, topology, extra in rows:
        f = run_row(step, model, topology, extra, args.out)
        (decode if step == "decode" else train).append(f)
        print(f"{step} {model} {topology}: {'fits' if f['fits'] else 'does not fit'} "
              f"({_host(f)})", flush=True)
    if train:
        print(train_table(train))
    if decode:
        print(decode_table(decode))


if __name__ == "__main__":
    main()
