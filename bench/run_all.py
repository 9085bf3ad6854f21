"""Runs the benchmarks that matter on the current code and writes docs/benchmarks.md.

    python bench/run_all.py                       # every row, then docs/benchmarks.md
    python bench/run_all.py --only generate,grpo  # some benches (the file holds only those)
    python bench/run_all.py --quick --allow-busy --out /tmp/bench_smoke.md   # plumbing check

Why it works this way:
- Each bench runs in its own subprocess, one after another, never two at once: two
  benchmarks sharing the cores would measure each other.
- Each bench times ours and its reference (transformers, TRL) interleaved in one process, so
  load falls on both alike. Each table puts that ratio first. Ratios may be compared across
  days and machines; the absolute times after them only show the scale.
- Figures from a loaded machine mislead. If the 1-minute load average is above 0.5 at the
  start, the command refuses to run. `--allow-busy` runs anyway and marks every row BUSY.
- Every row names the CPU model, cores, thread counts and date. The header names the commit
  and the library versions. The file is rewritten whole, so no figure from older code stays.

Each bench script writes its figures as JSON with `--json PATH` (what it prints is unchanged);
this script reads that file. Only the standard library is imported here.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/tables.py, beside us
from tables import BUSY_LOAD, render  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("jax", "jaxlib", "flax", "optax", "numpy", "torch", "transformers", "trl")
THREAD_ENV = ("XLA_FLAGS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "JAX_PLATFORMS")
FLAGS_OF_NOTE = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                 "amx_tile")
TORCH_PROBE = ("import json, torch; print(json.dumps({'torch_intra_op': torch.get_num_threads(),"
               " 'torch_inter_op': torch.get_num_interop_threads()}))")


@dataclass(frozen=True)
class Row:
    """One run of one bench script: its label while it runs and its arguments; under --quick
    the options in `quick` replace the same options' values in `args` (or are added)."""
    bench: str
    label: str
    args: tuple[str, ...]
    quick: tuple[str, ...] = ()

    def argv(self, quick: bool) -> tuple[str, ...]:
        if not quick:
            return self.args
        out = list(self.args)
        for opt, value in _options(self.quick):
            if opt in out:
                i = out.index(opt)
                del out[i:i + 1 + (value is not None)]
                out[i:i] = [opt] + ([value] if value is not None else [])
            else:
                out += [opt] + ([value] if value is not None else [])
        return tuple(out)

    def command(self, quick: bool) -> str:
        return shlex.join(("python", f"bench/{self.bench}.py", *self.argv(quick)))


def _options(argv: Sequence[str]) -> list[tuple[str, str | None]]:
    """("--opt", value) pairs of an argument list; value None for a flag."""
    out, i = [], 0
    while i < len(argv):
        has_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
        out.append((argv[i], argv[i + 1] if has_value else None))
        i += 2 if has_value else 1
    return out


ROWS = (  # labels name the row while it runs; the tables spell out its settings from its JSON
    Row("generate", "greedy decode, vocab 1,000",
        ("--batch", "8", "--vocab", "1000", "--repeats", "7", "--skip-prefill"),
        ("--repeats", "2", "--new", "16")),
    Row("generate", "greedy decode, vocab 151,936 (Qwen3-VL's)",
        ("--batch", "8", "--vocab", "151936", "--repeats", "7", "--skip-prefill"),
        ("--repeats", "2", "--new", "16")),
    Row("forward", "forward, 256 text tokens", ("--repeats", "10"), ("--repeats", "2")),
    Row("forward", "forward, 2,048 text tokens", ("--text", "2048", "--repeats", "10"),
        ("--repeats", "2")),
    Row("train_step", "SFT step", ("--size", "small", "--batch", "2", "--length", "512",
                                   "--steps", "7"), ("--steps", "2")),
    Row("grpo", "GRPO iterations", ("--iters", "6"), ("--quick",)),
)
BENCHES = tuple(dict.fromkeys(r.bench for r in ROWS))


# ------------------------------------------------------------------ the machine

def parse_lscpu(text: str) -> dict[str, str]:
    """`lscpu`'s "Key: value" lines as a dict (keys as lscpu spells them)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


def _lscpu_text() -> str:
    try:
        return subprocess.run(["lscpu"], capture_output=True, text=True,
                              env={**os.environ, "LC_ALL": "C"}).stdout
    except FileNotFoundError:  # no util-linux: the first CPU of /proc/cpuinfo, renamed
        block = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
        names = {"model name": "Model name", "flags": "Flags", "vendor_id": "Vendor ID"}
        info = parse_lscpu(block)
        return "\n".join(f"{names[k]}: {v}" for k, v in info.items() if k in names)


def machine_info(lscpu: str | None = None, meminfo: str | None = None,
                 usable_cores: int | None = None) -> dict[str, Any]:
    """CPU model, identity, flags of note (AVX-512 above all: XLA:CPU and torch pick their
    kernels by it), core counts and memory. Arguments override what is read from this machine
    (tests pass synthetic text)."""
    info = parse_lscpu(_lscpu_text() if lscpu is None else lscpu)
    if meminfo is None:
        meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem_kb = parse_lscpu(meminfo).get("MemTotal", "0 kB").split()[0]
    flags = set(info.get("Flags", "").split())
    cores = len(os.sched_getaffinity(0)) if usable_cores is None else usable_cores
    return {
        "cpu_model": info.get("Model name", "unknown CPU"),
        "vendor": info.get("Vendor ID", ""),
        "cpu_id": " ".join(f"{k.lower()} {info[k]}" for k in ("CPU family", "Model", "Stepping")
                           if k in info),
        "hypervisor": info.get("Hypervisor vendor", ""),
        "flags": [f for f in FLAGS_OF_NOTE if f in flags],
        "avx512": any(f.startswith("avx512") for f in flags),
        "cores": cores,
        "cpus": info.get("CPU(s)", str(cores)),
        "topology": " x ".join(f"{info[k]} {k.lower()}" for k in
                               ("Socket(s)", "Core(s) per socket", "Thread(s) per core")
                               if k in info),
        "memory_gib": round(int(mem_kb) / 2**20, 1),
    }


def thread_info(env: dict[str, str], cores: int) -> dict[str, Any]:
    """The thread counts a bench process gets: torch's (asked in a child with the benches'
    environment), XLA:CPU's (one per usable core unless XLA_FLAGS says otherwise) and the
    environment variables that change either."""
    probe = subprocess.run([sys.executable, "-c", TORCH_PROBE], capture_output=True, text=True,
                           env=env, cwd=ROOT)
    torch = (json.loads(probe.stdout.strip().splitlines()[-1]) if probe.returncode == 0
             else {"torch_intra_op": "?", "torch_inter_op": "?"})
    return {**torch, "xla_cpu": cores, "env": {k: env.get(k, "") for k in THREAD_ENV}}


def library_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_info(exclude: Path) -> dict[str, Any]:
    """The commit, and how many tracked files differ from it (the output file aside)."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout

    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no"
                                        ).splitlines()]
    rel = os.path.relpath(exclude.resolve(), ROOT)
    return {"commit": git("rev-parse", "HEAD").strip() or "unknown",
            "changed_files": sorted(f for f in changed if f != rel)}


# ------------------------------------------------------------------ running

def run_row(row: Row, quick: bool, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """One bench subprocess (its output goes to this terminal); its JSON figures, or None with
    the exit status when it failed."""
    print(f"\n[run_all] {row.bench}: {row.label}\n[run_all] $ {row.command(quick)}", flush=True)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "figures.json")
        argv = [sys.executable, str(ROOT / "bench" / f"{row.bench}.py"), *row.argv(quick),
                "--json", path]
        t0 = time.perf_counter()
        try:
            status: int | str = subprocess.run(argv, cwd=ROOT, env=env, timeout=timeout
                                               ).returncode
        except subprocess.TimeoutExpired:
            status = f"timed out after {timeout:.0f} s"
        result = None
        if status == 0 and os.path.exists(path):
            with open(path) as f:
                result = json.load(f)
        elif status == 0:
            status = "wrote no --json file"
    return {"bench": row.bench, "label": row.label, "command": row.command(quick),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "wall_s": round(time.perf_counter() - t0, 1), "status": status, "result": result}


# ------------------------------------------------------------------ the file


def busy_refusal(load: float, allow_busy: bool) -> str | None:
    """The message to stop with when the machine is busy and --allow-busy was not given."""
    if load <= BUSY_LOAD or allow_busy:
        return None
    return (f"run_all: the 1-minute load average is {load:.2f} (above {BUSY_LOAD}): other work "
            "is running, and figures measured now would mislead. Wait until the machine is "
            "quiet, or pass --allow-busy (every row is then marked BUSY).")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help=f"comma-separated benches of {','.join(BENCHES)}")
    p.add_argument("--quick", action="store_true", help="few repeats: a smoke check")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--allow-busy", action="store_true",
                   help=f"run even if the load average is above {BUSY_LOAD} (rows marked BUSY)")
    p.add_argument("--raw", default="", help="where to save the collected figures as JSON "
                   "(written before the table; default: a file in the temporary folder)")
    p.add_argument("--render", default="", metavar="RAW",
                   help="measure nothing: rewrite --out from a --raw file of an earlier run")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per bench run")
    args = p.parse_args(argv)
    only = [b for b in args.only.split(",") if b] or list(BENCHES)
    unknown = sorted(set(only) - set(BENCHES))
    if unknown:
        p.error(f"--only: unknown bench {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    args.only = only
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:  # the figures, machine and date stay those of the run that measured them
        report = json.loads(Path(args.render).read_text())
        Path(args.out).write_text(render(report))
        print(f"[run_all] wrote {args.out} from {args.render} ({report['date']})")
        return 0
    load = os.getloadavg()[0]
    refusal = busy_refusal(load, args.allow_busy)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    out = Path(args.out)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    machine = machine_info()
    report: dict[str, Any] = {
        "command": shlex.join(["python", "bench/run_all.py", *(argv if argv is not None
                                                                else sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load": load, "busy": load > BUSY_LOAD, "quick": args.quick, "only": args.only,
        "machine": machine, "threads": thread_info(env, machine["cores"]),
        "libraries": library_versions(), "git": git_info(out), "runs": []}
    rows = [r for r in ROWS if r.bench in args.only]
    for k, row in enumerate(rows, 1):
        print(f"[run_all] {k}/{len(rows)}", end="", flush=True)
        report["runs"].append(run_row(row, args.quick, env, args.timeout))
    stamp = report["date"].replace(" ", "_").replace(":", "")
    raw = Path(args.raw or Path(tempfile.gettempdir()) / f"seeker_run_all_{stamp}.json")
    raw.write_text(json.dumps(report, indent=1))  # first: a table bug must not lose the figures
    print(f"\n[run_all] figures saved in {raw} (`--render {raw}` rewrites the table)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(report))
    failed = [r for r in report["runs"] if r["result"] is None]
    print(f"[run_all] wrote {out}" + (f"; FAILED: {', '.join(r['label'] for r in failed)}"
                                        if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
