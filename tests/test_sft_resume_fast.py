"""Exact resume of `seeker_jax.training.sft.train` on a tiny setup, in the default suite.

The same property as the slow test_sft_resume.py, smaller: 2N steps straight == N steps, the
process exits, a new process resumes from the orbax checkpoint (params, optimizer state, the
Grain iterator's state, RNG, step) and runs N more: identical losses and parameters. N = 2,
tiny model, 8 synthetic records, batch 1, one CPU device.

The training runs in child processes (`python tests/test_sft_resume_fast.py PHASE ...`):
that makes the kill real (nothing survives in memory) and lets them use one device and a
shared persistent compilation cache, so only the first `train` call compiles the step.

Also: a damaged latest checkpoint stops the trainer with an error that names the step and
says how to fall back (delete it to resume from the previous one); it never loads garbage.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from seeker_jax.checkpointing import checkpoint as ckpt

N = 2
ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(root: str, steps: int = 2 * N):
    from seeker_jax.config import load_config

    return load_config(os.path.join(ROOT_DIR, "configs", "sft.py") + ":tiny_synth", [
        f"--config.data.root={root}", f"--config.steps={steps}",
        f"--config.checkpoint_every={N}", "--config.data.val_batches=0",
        "--config.data.batch_size=1", "--config.data.buckets=(1024,)",
        "--config.data.prefetch=1"])


def _losses(rows) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _child(phase: str, tmp: str, root: str) -> None:
    """Runs in a child process: `first` (straight run, first half) or `second`."""
    import jax

    jax.config.update("jax_compilation_cache_dir", os.path.join(tmp, "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from seeker_jax.training.sft import train

    out = {}
    if phase == "first":
        out["straight"] = _losses(train(_config(root), os.path.join(tmp, "a"), progress=False))
        out["first"] = _losses(train(_config(root), os.path.join(tmp, "b"), stop_after=N,
                                     progress=False))
    else:
        out["second"] = _losses(train(_config(root), os.path.join(tmp, "b"), progress=False))
    with open(os.path.join(tmp, f"{phase}.json"), "w") as f:
        json.dump(out, f)


def _run_child(phase: str, tmp: str, world: str) -> dict:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), phase, tmp, world], env=env,
                          cwd=ROOT_DIR, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{phase} failed:\n{proc.stderr[-4000:]}"
    with open(os.path.join(tmp, f"{phase}.json")) as f:
        return {k: {int(s): v for s, v in d.items()} for k, d in json.load(f).items()}


@pytest.fixture(scope="module")
def runs(synth_world, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("resume_fast"))
    return tmp, {**_run_child("first", tmp, synth_world), **_run_child("second", tmp, synth_world)}


def test_resume_is_exact_fast(runs):
    tmp, out = runs
    assert sorted(out["straight"]) == [1, 2, 3, 4]
    assert sorted(out["first"]) == [1, 2] and sorted(out["second"]) == [3, 4]
    # bit-identical, not merely close: same batches, same RNG, same optimizer state
    assert {**out["first"], **out["second"]} == out["straight"]
    # losses move, so equality above is not the trivial one of a constant curve
    assert len(set(out["straight"].values())) == 4
    a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
    assert ckpt.find_params(a).step == ckpt.find_params(b).step == 2 * N
    pa, pb = ckpt.restore_params(a), ckpt.restore_params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_array_equal(np.asarray(pa[k]), np.asarray(pb[k]), err_msg=k)
    with open(os.path.join(b, "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2, 3, 4]


def test_sft_checkpoint_holds_its_env_config(runs):
    """The checkpoint SFT wrote carries env_config.json beside model_config.json, and reading
    it back (from the workdir, as the demo and evaluation do) gives the run's EnvConfig."""
    from seeker_jax.env.config import EnvConfig

    tmp, _ = runs
    b = os.path.join(tmp, "b")
    root = os.path.join(b, "checkpoints")
    assert sorted(f for f in os.listdir(root) if f.endswith(".json")) == [
        "env_config.json", "model_config.json"]
    expected = EnvConfig.from_config(_config(os.path.join(tmp, "world")).env)
    assert ckpt.read_env_config(b) == ckpt.read_env_config(root) == expected
    assert expected.video.max_frame_pixels == 64 * 64  # the tiny preset's, not the paper's
    text = "<think>x</think><|im_end|>"
    from seeker_jax.models.tokenizer import offline_qwen_tokenizer
    assert ckpt.read_tokenizer(b).encode(text) == offline_qwen_tokenizer().encode(text)


def _largest_file(directory: str) -> str:
    files = [os.path.join(d, f) for d, _, fs in os.walk(directory) for f in fs]
    return max(files, key=os.path.getsize)


def test_damaged_latest_checkpoint_is_a_clear_error(runs, synth_world, tmp_path):
    from seeker_jax.training.sft import train

    tmp, _ = runs
    work = str(tmp_path / "a")
    shutil.copytree(os.path.join(tmp, "a"), work)
    damaged = _largest_file(os.path.join(work, "checkpoints", str(2 * N), "params"))
    with open(damaged, "r+b") as f:
        f.truncate(os.path.getsize(damaged) // 2)
    with pytest.raises(RuntimeError, match=rf"(?s)checkpoint step {2 * N} .* delete .*{2 * N}.* "
                                           rf"step {N}"):
        train(_config(synth_world, steps=3 * N), work, progress=False)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3])
