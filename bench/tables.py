"""The tables of docs/benchmarks.md, rendered from the figures bench/run_all.py collected:
one table per bench, the ratio against its reference first, then absolute figures, the machine
of each row and the command that reruns it. Pure functions of the collected report."""
from __future__ import annotations

from typing import Any, Callable, Sequence

BUSY_LOAD = 0.5  # 1-minute load average above which the machine counts as busy

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
            "Where an iteration goes (share of the iteration's wall time):", "", *split.lines, "",
            "Why the update outweighs the rollout here: the tiny model is 64 wide over Qwen's "
            "151,936-token vocabulary, so nearly all its weights and work are the tied "
            "embedding / LM head. The learner makes six vocabulary-sized matmuls per learned "
            "token (the reference's and the old log-probs' forwards, the loss's forward, its "
            "recompute in the backward, and the two gradient matmuls); the sampler makes one. "
            "The learner projects only the loss positions, K per episode in multiples of one "
            "turn (`rl.grpo_batch.turn_loss_len`); with K rounded up to 128, as before "
            "5e5924b, a 48-token turn cost 128 positions of each."]


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
    skipped = [b for b in RENDERERS if b not in report["only"]]
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
    for bench in RENDERERS:
        runs = [r for r in report["runs"] if r["bench"] == bench]
        if runs:
            title, fn = RENDERERS[bench]
            lines += [f"## {title}", "", *fn(report, runs), ""]
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------ command line
