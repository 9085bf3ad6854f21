"""bench/grpo.py --quick runs end to end and prints the fields its readers rely on.

A smoke test of a benchmark: it never asserts on times (only that they are positive numbers,
fractions in [0, 1] summing to at most 1, and counts that follow from the settings). Slow:
~80 s on an idle 2-core CPU (two compiles of our GRPO pieces, TRL's trainer), more under load.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_bench_grpo_quick(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "grpo.py"), "--quick",
                           "--workdir", str(tmp_path)], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    lines = proc.stdout.splitlines()
    rows = [json.loads(line) for line in lines if line.startswith("{\"")]
    assert any("only meaningful on an idle machine" in line for line in lines)

    header = rows[0]
    assert header["quick"] and header["config"] == "configs/grpo.py:tiny_synth"
    assert header["threads"]["torch_intra_op"] >= 1
    n, prompts, new = header["n"], header["prompts"], header["max_new_tokens"]

    agentic = next(r for r in rows if r.get("part") == "agentic")
    assert agentic["episodes_per_iteration"] == n * prompts
    assert agentic["tool_calls_per_episode"] == 1.0  # the scripted crop_video turn ran
    assert agentic["turns_per_episode"] == 2.0       # and a sampled turn followed it
    assert set(agentic["fractions"]) >= {"prefill", "decode", "tool_wait", "reward",
                                         "logprobs", "optimizer", "refresh", "other"}

    ours, trl = (next(r for r in rows if r.get("part") == "single_turn"
                      and r.get("framework") == f) for f in ("seeker_jax", "trl"))
    assert set(trl["fractions"]) == {"generate", "reward", "logprobs", "update", "other"}
    for row in (agentic, ours, trl):
        assert row["iterations_in_median"] == header["iters"]
        assert row["iteration_s_median"] > 0 and row["episodes_per_s"] > 0
        assert row["policy_tokens_per_s"] > 0
        assert all(0 <= v <= 1 for v in row["fractions"].values()), row["fractions"]
        assert sum(row["fractions"].values()) <= 1 + 1e-3, row["fractions"]
    for row in (ours, trl):  # single turn: at most max_new_tokens policy tokens per episode
        assert 0 < row["policy_tokens_per_iteration"] <= n * prompts * new
    assert ours["n"] == trl["n"] == n and ours["max_completion_length"] == new
    ratio = next(r for r in rows if r.get("ratio") == "seeker_jax / trl")
    assert ratio["episodes_per_s"] == pytest.approx(
        ours["episodes_per_s"] / trl["episodes_per_s"], rel=1e-2)
    assert ratio["policy_tokens_per_s"] == pytest.approx(
        ours["policy_tokens_per_s"] / trl["policy_tokens_per_s"], rel=1e-2)
