"""bench/run_all.py's table writer, machine-info collector and busy-machine refusal, on
synthetic figures shaped as each bench's `--json` writes them. No benchmark runs here and
nothing is timed: the figures below are made up, and only how they are laid out is checked.
"""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_all():
    spec = importlib.util.spec_from_file_location("bench_run_all", ROOT / "bench" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


LSCPU = """Architecture:                            x86_64
CPU(s):                                  4
Vendor ID:                               GenuineIntel
Model name:                              Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
CPU family:                              6
Model:                                   143
Thread(s) per core:                      2
Core(s) per socket:                      2
Socket(s):                               1
Stepping:                                8
Flags:                                   fpu sse avx avx2 fma avx512f avx512bw amx_tile
Hypervisor vendor:                       KVM
"""
MEMINFO = "MemTotal:       24683784 kB\nMemFree:         1000 kB\n"
DATE = "2031-02-03 04:05 UTC"


def fractions(*keys):
    share = round(1.0 / (len(keys) + 1), 4)
    return {**{k: share for k in keys}, "other": share}


def synthetic_runs():
    """One run per bench, shaped as each script's --json file (figures invented)."""
    generate = {"bench": "generate", "args": {"hidden": 256, "layers": 4},
                "decode": {"ours_tok_s": 2000.0, "transformers_tok_s": 1000.0, "ratio": 2.0,
                           "same_sequences": 8, "batch": 8, "mode": "greedy", "vocab": 1000,
                           "repeats": 7, "ours_s": 0.512, "transformers_s": 1.024,
                           "prompt": 64, "new_tokens": 128, "torch_threads": 2}}
    forward = {"bench": "forward", "args": {"image": 448, "text": 256, "repeats": 10},
               "tokens": 452, "ours_s": 0.2, "transformers_s": 0.25, "max_abs_logits_diff": 3e-6,
               "torch_threads": 2}
    train_step = {"bench": "train_step", "rows": [
        {"size": "small", "batch": 2, "length": 512, "framework": name, "threads": 2,
         "first_loss": 12.0, "last_loss": 11.5, "step_s_median": s, "step_s_all": [s] * 7,
         "tokens_per_s": 1024 / s} for name, s in (("jax", 6.0), ("torch", 9.0))]}
    single = {"part": "single_turn", "iterations_in_median": 6, "iteration_s_median": 2.0,
              "episodes_per_s": 4.0, "policy_tokens_per_s": 100.0}
    grpo = {"bench": "grpo", "rows": [
        {"config": "configs/grpo.py:tiny_synth", "n": 4, "prompts": 2, "max_new_tokens": 48,
         "minibatches": 2, "threads": {"torch_intra_op": 2}},
        {"part": "agentic", "framework": "seeker_jax", "iterations_in_median": 6,
         "iteration_s_median": 8.0, "episodes_per_s": 1.0, "policy_tokens_per_s": 40.0,
         "tool_calls_per_episode": 1.0, "turns_per_episode": 2.0, "rollout": {"max_turns": 3},
         "fractions": fractions("prefill", "decode", "tool_wait", "reward", "logprobs",
                                "optimizer", "refresh")},
        {**single, "framework": "seeker_jax",
         "fractions": fractions("prefill", "decode", "reward", "logprobs", "optimizer",
                                "refresh")},
        {**single, "framework": "trl", "episodes_per_s": 2.0, "iteration_s_median": 4.0,
         "fractions": fractions("generate", "reward", "logprobs", "update")},
        {"part": "single_turn", "ratio": "seeker_jax / trl", "episodes_per_s": 2.0,
         "policy_tokens_per_s": 1.9}]}
    results = {"generate": generate, "forward": forward, "train_step": train_step, "grpo": grpo}
    return [{"bench": b, "label": b, "command": f"python bench/{b}.py", "date": DATE,
             "wall_s": 1.0, "status": 0, "result": r} for b, r in results.items()]


def report(run_all, *, load=0.1, busy=False, runs=None):
    return {"command": "python bench/run_all.py", "date": DATE, "load": load, "busy": busy,
            "quick": False, "only": list(run_all.BENCHES),
            "machine": run_all.machine_info(LSCPU, MEMINFO, usable_cores=4),
            "threads": {"torch_intra_op": 2, "torch_inter_op": 1, "xla_cpu": 4,
                        "env": {"XLA_FLAGS": "", "OMP_NUM_THREADS": "2"}},
            "libraries": {"python": "3.12.0", "jax": "9.9.1", "flax": "9.9.2",
                          "torch": "9.9.3", "transformers": "9.9.4", "trl": "9.9.5"},
            "git": {"commit": "0123abcd", "changed_files": []},
            "runs": synthetic_runs() if runs is None else runs}


def table_rows(text):
    """The data rows of every table under a bench's section (headers and rules dropped)."""
    lines = text.split("## Decode", 1)[1].splitlines()
    return [line for line, nxt in zip(lines, lines[1:] + [""])
            if line.startswith("| ") and not nxt.startswith("|---")]


def test_machine_info_reads_lscpu_and_meminfo(run_all):
    m = run_all.machine_info(LSCPU, MEMINFO, usable_cores=4)
    assert m["cpu_model"] == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert m["avx512"] and m["flags"] == ["avx", "avx2", "fma", "avx512f", "avx512bw",
                                          "amx_tile"]
    assert m["cores"] == 4 and m["cpus"] == "4"
    assert m["topology"] == "1 socket(s) x 2 core(s) per socket x 2 thread(s) per core"
    assert m["cpu_id"] == "cpu family 6 model 143 stepping 8" and m["hypervisor"] == "KVM"
    assert m["memory_gib"] == round(24683784 / 2**20, 1)

    amd = LSCPU.replace("avx512f avx512bw amx_tile", "").replace(
        "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", "AMD EPYC")
    m = run_all.machine_info(amd, MEMINFO, usable_cores=2)
    assert not m["avx512"] and m["cpu_model"] == "AMD EPYC" and m["cores"] == 2


def test_machine_info_on_this_machine(run_all):
    m = run_all.machine_info()
    assert m["cpu_model"] and m["cores"] >= 1 and m["memory_gib"] > 0


def test_every_row_names_cpu_cores_threads_versions_and_date(run_all):
    text = run_all.render(report(run_all))
    rows = table_rows(text)
    # generate 1, forward 1, train_step 1, grpo: vs TRL 1 + agentic 1 + split 3
    assert len(rows) == 8
    for row in rows:
        assert "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz (AVX-512)" in row, row
        assert "4 cores" in row and "threads: torch 2, XLA:CPU 4" in row, row
        assert "jax 9.9.1" in row and "torch 9.9.3" in row, row
        assert DATE in row and "`python bench/" in row, row
        assert "BUSY" not in row
    assert "trl 9.9.5" in rows[-1]
    # the ratio comes first, computed as reference time / ours
    assert rows[0].split(" | ")[1] == "**2.00x**"      # generate: 1.024 / 0.512
    assert rows[1].split(" | ")[1] == "**1.25x**"      # forward: 0.25 / 0.2
    assert rows[2].split(" | ")[1] == "**1.50x**"      # train step: 9.0 / 6.0
    assert rows[3].split(" | ")[1] == "**2.00x**"      # grpo: episodes/s ratio
    assert "n 4 x 2 prompts, 48 new tokens" in rows[3]
    # the header: machine, flags, threads, libraries, commit, date
    for needle in ("| CPU | Intel(R) Xeon(R) Platinum 8481C", "AVX-512 present",
                   "| cores | 4 usable", "torch 2 intra-op / 1 inter-op",
                   "OMP_NUM_THREADS='2'", "trl 9.9.5", "| commit | 0123abcd |", DATE):
        assert needle in text, needle
    assert "BUSY" not in text and "Not run this time" not in text


def test_busy_machine_is_marked_on_every_row(run_all):
    text = run_all.render(report(run_all, load=3.2, busy=True))
    assert "BUSY MACHINE" in text and "3.20" in text
    rows = table_rows(text)
    assert rows and all(row.startswith("| ") and "**BUSY (load 3.20)**" in row for row in rows)


def test_busy_machine_is_refused_before_anything_runs(run_all, tmp_path, monkeypatch, capsys):
    out = tmp_path / "benchmarks.md"
    monkeypatch.setattr(run_all.os, "getloadavg", lambda: (0.51, 0.0, 0.0))
    monkeypatch.setattr(run_all, "run_row", lambda *a: pytest.fail("a bench ran"))
    assert run_all.main(["--out", str(out)]) == 2
    assert not out.exists()
    assert "load average is 0.51" in capsys.readouterr().err
    assert run_all.busy_refusal(0.5, False) is None
    assert run_all.busy_refusal(0.9, True) is None


def test_failed_run_and_partial_runs_are_stated(run_all):
    runs = synthetic_runs()[:1]
    runs[0] = {**runs[0], "status": 1, "result": None}
    rep = {**report(run_all, runs=runs), "only": ["generate"]}
    text = run_all.render(rep)
    rows = table_rows(text)
    assert len(rows) == 1 and "failed: exit status 1" in rows[0] and DATE in rows[0]
    assert "Not run this time (so not shown): forward, train_step, grpo." in text
    assert "## Forward" not in text


def test_render_rewrites_the_table_from_saved_figures(run_all, tmp_path, monkeypatch):
    rep = report(run_all)
    raw, out = tmp_path / "raw.json", tmp_path / "benchmarks.md"
    raw.write_text(json.dumps(rep))
    monkeypatch.setattr(run_all.os, "getloadavg", lambda: (9.0, 9.0, 9.0))  # not consulted
    assert run_all.main(["--render", str(raw), "--out", str(out)]) == 0
    assert out.read_text() == run_all.render(rep)


def test_quick_options_replace_the_full_runs_values(run_all):
    row = run_all.Row("generate", "x", ("--batch", "8", "--repeats", "7", "--skip-prefill"),
                      ("--repeats", "2", "--new", "16", "--quick"))
    assert row.argv(False) == ("--batch", "8", "--repeats", "7", "--skip-prefill")
    assert row.command(True) == ("python bench/generate.py --batch 8 --repeats 2 "
                                 "--skip-prefill --new 16 --quick")
    # every bench row of the real list runs a script that exists
    for r in run_all.ROWS:
        assert (ROOT / "bench" / f"{r.bench}.py").is_file()
