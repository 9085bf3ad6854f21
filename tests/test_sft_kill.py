"""A run killed (SIGKILL) between checkpoints resumes with the losses of an uninterrupted run,
and metrics.jsonl ends with every step exactly once, in order.

Child 1 trains 5 steps on conftest's synthetic world with checkpoints every 2; after step 3
(logged, not checkpointed) it waits for checkpoint 2 to be finalized on disk, then kills itself
with SIGKILL: nothing is flushed or closed. Child 2 resumes that workdir from step 2 (step 3 is
replayed: its row must be dropped and written again) and runs the same 5 steps straight in
another workdir. Both children share a persistent compilation cache (one compile).
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

N, STEPS = 2, 5
ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(root: str):
    from seeker_jax.config import load_config

    return load_config(os.path.join(ROOT_DIR, "configs", "sft.py") + ":tiny_synth", [
        f"--config.data.root={root}", f"--config.steps={STEPS}",
        f"--config.checkpoint_every={N}", "--config.data.val_batches=0",
        "--config.data.batch_size=1", "--config.data.buckets=(1024,)",
        "--config.data.prefetch=1"])


def _kill_after_step(workdir: str, step: int):
    """on_step hook: after `step`, wait until checkpoint N is finalized, then SIGKILL self."""
    final = os.path.join(workdir, "checkpoints", str(N))

    def hook(s: int) -> None:
        if s != step:
            return
        deadline = time.time() + 120
        while not os.path.isdir(final) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # orbax's finalize writes its metadata right after the rename
        os.kill(os.getpid(), signal.SIGKILL)
    return hook


def _child(phase: str, tmp: str, root: str) -> None:
    import jax

    jax.config.update("jax_compilation_cache_dir", os.path.join(tmp, "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from seeker_jax.training.sft import train

    if phase == "killed":
        work = os.path.join(tmp, "killed")
        train(_config(root), work, progress=False, on_step=_kill_after_step(work, N + 1))
        raise AssertionError("the kill hook did not fire")
    resumed = train(_config(root), os.path.join(tmp, "killed"), progress=False)
    straight = train(_config(root), os.path.join(tmp, "straight"), progress=False)
    with open(os.path.join(tmp, "resumed.json"), "w") as f:
        json.dump({"resumed": resumed, "straight": straight}, f)


def _run(phase: str, tmp: str, world: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, os.path.abspath(__file__), phase, tmp, world], env=env,
                          cwd=ROOT_DIR, capture_output=True, text=True, timeout=600)


def _rows(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]


# Slow (~55 s): test_sft_resume_fast checks exact resume in the default suite.
@pytest.mark.slow
def test_killed_between_checkpoints_resumes_exactly(synth_world, tmp_path):
    tmp = str(tmp_path)
    killed = _run("killed", tmp, synth_world)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-4000:]
    metrics = os.path.join(tmp, "killed", "metrics.jsonl")
    # the killed run logged step 3, which no checkpoint holds
    assert [r["step"] for r in _rows(metrics)] == [1, 2, 3]
    assert sorted(int(d) for d in os.listdir(os.path.join(tmp, "killed", "checkpoints"))
                  if d.isdigit()) == [N]
    second = _run("resume", tmp, synth_world)
    assert second.returncode == 0, second.stderr[-4000:]
    with open(os.path.join(tmp, "resumed.json")) as f:
        out = json.load(f)
    assert [r["step"] for r in out["resumed"]] == [3, 4, 5]  # resumed from checkpoint 2
    rows = _rows(metrics)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]  # each step once, in order
    straight = {r["step"]: r["loss"] for r in out["straight"]}
    assert {r["step"]: r["loss"] for r in rows} == straight  # bit-identical losses
    assert len(set(straight.values())) == STEPS


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3])
