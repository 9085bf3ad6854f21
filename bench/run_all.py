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
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
BUSY_LOAD = 0.5  # 1-minute load average above which the machine counts as busy
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

def _f(x: float, digits: int = 2) -> str:
    return f"{x:,.{digits}f}"


def _ratio(x: float) -> str:
    return f"**{x:.2f}x**"


class Table:
    """A markdown table whose rows all end with the machine cell and the command."""

    def __init__(self, report: dict[str, Any], columns: Sequence[str],
                 libraries: Sequence[str] = ("jax", "flax", "torch", "transformers")):
        self.report, self.columns, self.libraries = report, list(columns), libraries
        self.lines = ["| " + " | ".join([*columns, "machine, threads, versions, date",
                                         "rerun"]) + " |",
                      "|" + "---|" * (len(columns) + 2)]

    def add(self, run: dict[str, Any], cells: Sequence[str], torch_threads: Any = None) -> None:
        assert len(cells) == len(self.columns), (cells, self.columns)
        self.lines.append("| " + " | ".join([*cells, machine_cell(self.report, run,
                                                                   torch_threads,
                                                                   self.libraries),
                                             f"`{run['command']}`"]) + " |")

    def add_failed(self, run: dict[str, Any]) -> None:
        cells = [run["label"], f"failed: {_status(run)}"] + ["-"] * (len(self.columns) - 2)
        self.add(run, cells)


def _status(run: dict[str, Any]) -> str:
    s = run["status"]
    return f"exit status {s}" if isinstance(s, int) else str(s)


def machine_cell(report: dict[str, Any], run: dict[str, Any], torch_threads: Any = None,
                 libraries: Sequence[str] = ()) -> str:
    """CPU model and AVX-512, cores, torch (as the bench reported, else as probed) and XLA:CPU
    threads, the versions of the libraries compared, date; BUSY first when the run was allowed
    on a loaded machine."""
    m, t = report["machine"], report["threads"]
    torch = torch_threads if torch_threads is not None else t["torch_intra_op"]
    versions = ", ".join(f"{k} {report['libraries'].get(k, '?')}" for k in libraries)
    cell = (f"{m['cpu_model']} ({'AVX-512' if m['avx512'] else 'no AVX-512'}), "
            f"{m['cores']} cores; threads: torch {torch}, XLA:CPU {t['xla_cpu']}; "
            + (f"{versions}; " if versions else "") + run["date"])
    if report["busy"]:
        cell = f"**BUSY (load {report['load']:.2f})** {cell}"
    if report["quick"]:
        cell = f"quick smoke run: {cell}"
    return cell


def render_generate(report: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    t = Table(report, ["row", "speed-up vs transformers `generate`", "ours tok/s",
                       "transformers tok/s", "ours ms/step", "transformers ms/step",
                       "identical sequences", "medians of"])
    for run in runs:
        if run["result"] is None:
            t.add_failed(run)
            continue
        d, a = run["result"]["decode"], run["result"]["args"]
        label = (f"{d['mode']}, batch {d['batch']}, vocab {d['vocab']:,}, hidden {a['hidden']} "
                 f"x {a['layers']} layers, prompt {d['prompt']} + {d['new_tokens']} new tokens")
        t.add(run, [label, _ratio(d["transformers_s"] / d["ours_s"]),
                    _f(d["ours_tok_s"], 1), _f(d["transformers_tok_s"], 1),
                    _f(1e3 * d["ours_s"] / d["new_tokens"]),
                    _f(1e3 * d["transformers_s"] / d["new_tokens"]),
                    f"{d['same_sequences']}/{d['batch']}", f"{d['repeats']} runs"],
              d.get("torch_threads"))
    return ["Decode of a tiny random Qwen3-VL text model (float32): `Sampler.generate` "
            "against transformers' `generate`, same weights and prompts, interleaved in one "
            "process. Speed-up = transformers' time / ours (> 1: ours is faster).", "",
            *t.lines]


def render_forward(report: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    t = Table(report, ["row", "speed-up vs transformers", "ours ms", "transformers ms",
                       "tokens", "max \\|logits diff\\|", "medians of"])
    for run in runs:
        if run["result"] is None:
            t.add_failed(run)
            continue
        d = run["result"]
        label = f"{d['args']['image']}x{d['args']['image']} image + {d['args']['text']} text"
        t.add(run, [label, _ratio(d["transformers_s"] / d["ours_s"]),
                    _f(1e3 * d["ours_s"], 1), _f(1e3 * d["transformers_s"], 1),
                    str(d["tokens"]), f"{d['max_abs_logits_diff']:.1e}",
                    f"{d['args']['repeats']} runs"], d.get("torch_threads"))
    return ["One forward pass of a random Qwen3-VL (hidden 512, 8 text layers, 4 vision blocks, "
            "vocab 151,936, float32) over one image and text, our jitted forward against "
            "transformers' PyTorch forward on the same weights and inputs, interleaved. "
            "Speed-up = transformers' time / ours.", "", *t.lines]


def render_train_step(report: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    t = Table(report, ["row", "speed-up vs transformers + AdamW", "ours s/step",
                       "transformers s/step", "ours tokens/s", "transformers tokens/s",
                       "loss first -> last (ours; transformers)", "medians of"])
    for run in runs:
        if run["result"] is None:
            t.add_failed(run)
            continue
        by = {r["framework"]: r for r in run["result"]["rows"]}
        ours, ref = by["jax"], by["torch"]
        label = f"size {ours['size']}, batch {ours['batch']} x {ours['length']} tokens"
        t.add(run, [label, _ratio(ref["step_s_median"] / ours["step_s_median"]),
                    _f(ours["step_s_median"], 3), _f(ref["step_s_median"], 3),
                    _f(ours["tokens_per_s"], 1), _f(ref["tokens_per_s"], 1),
                    f"{ours['first_loss']:.3f} -> {ours['last_loss']:.3f}; "
                    f"{ref['first_loss']:.3f} -> {ref['last_loss']:.3f}",
                    f"{len(ours['step_s_all'])} steps"], ref["threads"])
    return ["One SFT step (forward, backward, AdamW; every parameter trained, loss on every "
            "token, text only, float32) of configs/qwen3_vl.py's size from random init: our "
            "jitted step against transformers + torch.optim.AdamW, steps alternating. Speed-up "
            "= transformers' step time / ours.", "", *t.lines]


SPLIT_COLUMNS = (("prefill", "prefill"), ("decode", "decode"),
                 ("generate", "generate (TRL: prefill + decode)"), ("tool_wait", "tool wait"),
                 ("reward", "reward"), ("logprobs", "log-probs (reference, old)"),
                 ("optimizer", "update (loss fwd + bwd, optimizer)"),
                 ("refresh", "weight refresh"), ("other", "other host work"))


def render_grpo(report: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    libs = ("jax", "flax", "torch", "transformers", "trl")
    vs = Table(report, ["row", "speed-up vs TRL `GRPOTrainer` (episodes/s)",
                        "policy tokens/s ratio", "ours episodes/s", "TRL episodes/s",
                        "ours s/iteration", "TRL s/iteration", "medians of"], libs)
    agentic = Table(report, ["row", "speed-up", "episodes/s", "policy tokens/s",
                             "s/iteration", "tool calls/episode", "turns/episode",
                             "medians of"], libs)
    split = Table(report, ["iteration", *(name for _, name in SPLIT_COLUMNS)], libs)
    for run in runs:
        if run["result"] is None:
            for table in (vs, agentic):
                table.add_failed(run)
            continue
        rows = run["result"]["rows"]
        torch = rows[0].get("threads", {}).get("torch_intra_op")
        label = (f"n {rows[0]['n']} x {rows[0]['prompts']} prompts, {rows[0]['max_new_tokens']} "
                 f"new tokens, {rows[0]['minibatches']} minibatches")
        part = {(r.get("part"), r.get("framework", r.get("ratio"))): r for r in rows[1:]}
        ours, trl = part.get(("single_turn", "seeker_jax")), part.get(("single_turn", "trl"))
        ratio = part.get(("single_turn", "seeker_jax / trl"))
        if ours and trl and ratio:
            vs.add(run, [label + ", single-turn", _ratio(ratio["episodes_per_s"]),
                         f"{ratio['policy_tokens_per_s']:.2f}x", _f(ours["episodes_per_s"], 3),
                         _f(trl["episodes_per_s"], 3), _f(ours["iteration_s_median"], 3),
                         _f(trl["iteration_s_median"], 3),
                         f"{ours['iterations_in_median']} iterations a side"], torch)
        a = part.get(("agentic", "seeker_jax"))
        if a:
            agentic.add(run, [label + ", agentic (up to "
                              f"{a['rollout']['max_turns']} turns, tools on host threads)",
                              "- (no reference: TRL cannot run our video tools)",
                              _f(a["episodes_per_s"], 3), _f(a["policy_tokens_per_s"], 1),
                              _f(a["iteration_s_median"], 3),
                              _f(a["tool_calls_per_episode"]), _f(a["turns_per_episode"]),
                              f"{a['iterations_in_median']} iterations"], torch)
        for name, r in (("ours, agentic", a), ("ours, single-turn", ours),
                        ("TRL, single-turn", trl)):
            if r:
                fr = {("optimizer" if k == "update" else k): v for k, v in r["fractions"].items()}
                split.add(run, [name, *(f"{100 * fr[k]:.0f}%" if k in fr else "-"
                                        for k, _ in SPLIT_COLUMNS)], torch)
    return ["One GRPO iteration (rollout, reward, update, weight refresh) from a tiny random "
            "checkpoint over the real Qwen vocabulary, first iteration (compilation / warm-up) "
            "left out of the medians. Single-turn: our GRPO pieces against TRL's "
            "`GRPOTrainer` on the same weights, prompts, reward and settings, iterations "
            "interleaved; speed-up = our episodes/s / TRL's.", "", *vs.lines, "",
            "The agentic iteration (every episode's first turn forced to a crop_video call):",
            "", *agentic.lines, "",
            "Where an iteration goes (share of the iteration's wall time):", "", *split.lines]


RENDERERS: dict[str, tuple[str, Callable[[dict, list], list[str]]]] = {
    "generate": ("Decode: `bench/generate.py`", render_generate),
    "forward": ("Forward pass: `bench/forward.py`", render_forward),
    "train_step": ("SFT step: `bench/train_step.py`", render_train_step),
    "grpo": ("GRPO iteration: `bench/grpo.py`", render_grpo),
}


def render(report: dict[str, Any]) -> str:
    """docs/benchmarks.md from a report: machine, threads, libraries, commit and the runs."""
    m, t, g = report["machine"], report["threads"], report["git"]
    changed = g["changed_files"]
    lines = ["# Benchmarks", "",
             f"Written by `{report['command']}` on {report['date']}; do not edit by hand. "
             "Each `bench/` script ran in its own process, one after another, and timed ours "
             "and its reference (transformers, TRL) interleaved in that process. Each table "
             "gives the speed-up against the reference first: compare those ratios across "
             "days and machines, never the absolute times after them. Only figures from this "
             "run are here; rerun the command rather than editing a row.", ""]
    if report["busy"]:
        lines += [f"**BUSY MACHINE: the 1-minute load average was {report['load']:.2f} at the "
                  f"start (above {BUSY_LOAD}); the run was forced with --allow-busy. These "
                  "figures are not to be quoted.**", ""]
    if report["quick"]:
        lines += ["**Quick smoke run (--quick): few repeats, smaller settings. These figures "
                  "only show that the benches run; they are not to be quoted.**", ""]
    skipped = [b for b in BENCHES if b not in report["only"]]
    if skipped:
        lines += [f"Not run this time (so not shown): {', '.join(skipped)}.", ""]
    env = ", ".join(f"{k}={v!r}" for k, v in t["env"].items() if v) or "none set"
    lines += [
        "## Machine and software", "",
        "| | |", "|---|---|",
        f"| CPU | {m['cpu_model']} ({', '.join(x for x in (m['vendor'], m['cpu_id']) if x)})"
        + (f", {m['hypervisor']} guest" if m["hypervisor"] else "") + " |",
        f"| flags | {', '.join(m['flags']) or 'none of note'}; "
        f"{'AVX-512 present' if m['avx512'] else 'no AVX-512'} |",
        f"| cores | {m['cores']} usable ({m['cpus']} CPUs: {m['topology']}) |",
        f"| memory | {m['memory_gib']} GiB |",
        f"| threads | torch {t['torch_intra_op']} intra-op / {t['torch_inter_op']} inter-op; "
        f"XLA:CPU one per usable core ({t['xla_cpu']}); environment: {env} |",
        f"| load at start | {report['load']:.2f} (1-minute average; busy above {BUSY_LOAD}) |",
        "| libraries | " + ", ".join(f"{k} {v}" for k, v in report["libraries"].items()) + " |",
        f"| commit | {g['commit']}"
        + (f" with {len(changed)} uncommitted changed files ({', '.join(changed[:8])}"
           + (", ..." if len(changed) > 8 else "") + ")" if changed else "") + " |",
        f"| date | {report['date']} |", ""]
    for bench in BENCHES:
        runs = [r for r in report["runs"] if r["bench"] == bench]
        if runs:
            title, fn = RENDERERS[bench]
            lines += [f"## {title}", "", *fn(report, runs), ""]
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------ command line

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
