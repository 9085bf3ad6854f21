"""The GRPO learner (`seeker_jax.rl.grpo.train`) on the tiny synthetic setup, and its exact resume.

A random tiny model writes garbage, so half of each group follows a script (its first turn is
forced to a well-formed answer, "A"): rewards then differ inside every group, advantages are
not all zero, and the policy loss moves the params. Forced tokens are still policy tokens,
with the sampler's log-probs.

Runs in child processes (`python tests/test_grpo.py PHASE TMP`), as test_sft_resume_fast does,
on a copy of conftest's synthetic world in TMP/world (pass@k writes its split there): `first`
runs 4 iterations straight (checking after each that the sampler holds exactly the learner's
new weights), then runs 3 iterations of a second workdir and stops (checkpoints every 2
iterations: iteration 3 is logged but not checkpointed, i.e. a kill between checkpoints);
`second` resumes that workdir from iteration 2 to 4. Same rewards, losses and params as the
straight run, bit for bit; metrics.jsonl lists each step once.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from grpo_tiny import ROOT_DIR, grpo_config as _config, script

# In the default suite (CI runs it): ~2 min of child processes on an idle 2-core CPU.


def _row(rows, key):
    return {r["step"]: r[key] for r in rows if key in r}


def _child(phase: str, tmp: str) -> None:
    import jax

    jax.config.update("jax_compilation_cache_dir", os.path.join(tmp, "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from flax import nnx

    from seeker_jax.rl.grpo import train

    root = os.path.join(tmp, "world")
    out: dict = {}
    if phase == "first":
        checks = []

        def on_step(it):
            learner = nnx.to_flat_state(nnx.state(it.state.model(), nnx.Param))
            sampler = dict(nnx.to_flat_state(nnx.state(it.sampler.model, nnx.Param)))
            checks.append(all(np.array_equal(np.asarray(v[...]), np.asarray(sampler[p][...]))
                              for p, v in learner))

        rows = train(_config(root), os.path.join(tmp, "a"), progress=False, on_step=on_step,
                     script=script)
        out["straight"], out["sampler_matches"] = rows, checks
        out["first"] = train(_config(root), os.path.join(tmp, "b"), stop_after=3,
                             progress=False, script=script)
    else:
        out["second"] = train(_config(root), os.path.join(tmp, "b"), progress=False,
                              script=script)
    with open(os.path.join(tmp, f"{phase}.json"), "w") as f:
        json.dump(out, f)


def _run_child(phase: str, tmp: str) -> dict:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), phase, tmp], env=env,
                          cwd=ROOT_DIR, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{phase} failed:\n{proc.stderr[-6000:]}"
    with open(os.path.join(tmp, f"{phase}.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def runs(synth_world, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("grpo"))
    shutil.copytree(synth_world, os.path.join(tmp, "world"))
    return tmp, {**_run_child("first", tmp), **_run_child("second", tmp)}


def test_learner_iterations(runs):
    """Metrics present per step, params change, sampler refreshed with the learner's weights."""
    from seeker_jax.checkpointing import checkpoint as ckpt
    from seeker_jax.config import load_config
    from seeker_jax.training.trainer import build_model

    tmp, out = runs
    rows = out["straight"]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for key in ("reward", "reward/accuracy", "reward/format", "reward/parsimony", "accuracy",
                "tool_call_rate", "tool_calls_per_episode", "turns", "response_length", "kl",
                "clip_frac", "entropy", "sampler_learner_gap", "loss", "grad_norm",
                "dropped_groups", "rollout_s", "prefill_s", "decode_s", "tool_wait_s",
                "reward_s", "update_s", "logprobs_s", "optimizer_s", "refresh_s", "iteration_s"):
        assert all(key in r for r in rows), key
    for r in rows:  # the time split: parts of the update, and the update part of the iteration
        assert r["logprobs_s"] + r["optimizer_s"] <= r["update_s"] + 1e-6
        assert r["rollout_s"] + r["reward_s"] + r["update_s"] + r["refresh_s"] <= r["iteration_s"] + 1e-6
    for r in rows:
        ends = sum(v for k, v in r.items() if k.startswith("end_reason/"))
        assert ends == pytest.approx(1.0)
        assert r["end_reason/answer"] >= 0.5  # the scripted half answers
        assert r["optimizer_step"] == 2 * r["step"]  # 2 minibatches per iteration
        # One graph (fp32) for sampler and learner: the gap before the first update is ~0;
        # old log-probs recomputed at the same weights make later minibatches' gap ~0 too.
        assert r["sampler_learner_gap"] < 1e-4
        assert r["kl"] >= 0.0 and 0.0 <= r["clip_frac"] <= 1.0
    assert out["sampler_matches"] == [True] * 4
    # params moved away from the (seeded random) init
    from seeker_jax.sharding import rules_from_config

    grpo_config = load_config(os.path.join(ROOT_DIR, "configs", "grpo.py") + ":tiny_synth")
    init, _ = build_model(grpo_config.model, rules_from_config(grpo_config.mesh.rules))
    from flax import nnx
    start = {ckpt.param_key(p): np.asarray(v[...])
             for p, v in nnx.to_flat_state(nnx.state(init, nnx.Param))}
    trained = ckpt.restore_params(os.path.join(tmp, "a"))
    moved = [k for k in start if not np.array_equal(start[k], np.asarray(trained[k]))]
    assert len(moved) > len(start) // 2
    # the last iteration's sampled episodes (rl/grpo_episodes.py; tested in
    # test_episodes_html): 4 of the 4 episodes rolled out
    with open(os.path.join(tmp, "a", "episodes", "iteration_000004.html")) as f:
        assert f.read().count('<article class="ep"') == 4
    for name in ("reward.png", "tools.png"):
        path = os.path.join(tmp, "a", name)
        assert os.path.getsize(path) > 1000
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_resume_is_exact(runs):
    from seeker_jax.checkpointing import checkpoint as ckpt

    tmp, out = runs
    straight, first, second = out["straight"], out["first"], out["second"]
    assert [r["step"] for r in first] == [1, 2, 3] and [r["step"] for r in second] == [3, 4]
    for key in ("reward", "loss", "kl", "response_length", "grad_norm"):
        want = _row(straight, key)
        assert {**_row(first, key), **_row(second, key)} == want, key
    assert len(set(_row(straight, "loss").values())) > 1  # not a constant curve
    pa, pb = ckpt.restore_params(os.path.join(tmp, "a")), ckpt.restore_params(os.path.join(tmp, "b"))
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_array_equal(np.asarray(pa[k]), np.asarray(pb[k]), err_msg=k)
    with open(os.path.join(tmp, "b", "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2, 3, 4]


def test_passk_tiny_run(runs):
    """The pass@k command's library path with the GRPO checkpoint on the synthetic world: k
    episodes per question, the funnel adds up, the kept records are written as split "rl"."""
    from seeker_jax.data.records import read_records
    from seeker_jax.eval.passk import build_rl_split

    tmp, _ = runs
    world = os.path.join(tmp, "world")
    funnel = build_rl_split(os.path.join(tmp, "a"), world, 2, limit=2, max_new_tokens=8,
                            max_len=1024)
    assert funnel["questions"] == 2
    assert funnel["never_solved"] + funnel["always_solved"] + funnel["kept"] == 2
    assert len(read_records(world, "rl")) == funnel["kept"]
    with open(os.path.join(world, "passk_rl.json")) as f:
        assert all(n == 2 for _, n in json.load(f)["successes"].values())


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])


MESH_CHILD = r'''
import json, os, sys
import jax
import numpy as np
from flax import nnx
sys.path.insert(0, os.path.join(sys.argv[1], "tests"))
from grpo_tiny import grpo_config as _config, script
from seeker_jax.models.qwen3_vl.stacking import match_layout, split_index
from seeker_jax.rl.grpo import train

tmp, scan, root = sys.argv[2], sys.argv[3] == "True", sys.argv[4]
out = {}
def spec(path, x):  # a stacked array's spec without its (unsharded) layer axis
    spec = tuple(x.sharding.spec)
    stacked = split_index(path)[1] is None and path[:3] in (
        ("model", "language_model", "layers"), ("model", "visual", "blocks"))
    if stacked:
        assert spec[:1] in ((), (None,)), (path, spec)
    return str(spec[1:] if stacked else spec)
def on_step(it):
    p = {q: v[...] for q, v in nnx.to_flat_state(nnx.state(it.state.model(), nnx.Param))}
    s = {q: v[...] for q, v in nnx.to_flat_state(nnx.state(it.sampler.model, nnx.Param))}
    same = match_layout(p, s)  # a stacked learner's weights in the sampler's layout
    out["same_weights"] = sorted(same) == sorted(s) and all(
        np.array_equal(np.asarray(same[q]), np.asarray(s[q])) for q in s)
    out["sampler_shardings"] = sorted({spec(q, x) for q, x in s.items()})
    out["learner_shardings"] = sorted({spec(q, x) for q, x in p.items()})
    out["learner_stacked"] = any(len(x.shape) == 3 for q, x in p.items() if "layers" in q)
    out["cache_spec"] = str(it.sampler.cache[0].key.sharding.spec)
cfg = _config(root, steps=1)
cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor = 2, 2, 2
cfg.model.scan_layers = scan
out["rows"] = train(cfg, os.path.join(tmp, "run"), progress=False, script=script, on_step=on_step)
out["devices"] = len(jax.devices())
print(json.dumps(out))
'''


# Slow (~1 min unrolled, ~2 min scanned): the default suite keeps the sharded train step
# (test_sft.py::test_sharded_step_equals_unsharded) and the sharded sampler (test_sharding.py).
@pytest.mark.slow
@pytest.mark.parametrize("scan", [False, True])
def test_grpo_on_a_data_fsdp_tensor_mesh(synth_world, tmp_path, scan):
    """One iteration on an 8-device (2, 2, 2) mesh: the sampler's weights are placed like the
    learner's (same values after the refresh), its KV cache rows split over the batch axes.
    With scan_layers the learner's layers are stacked and the sampler's decoder unrolled."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", MESH_CHILD, ROOT_DIR, str(tmp_path), str(scan),
                           synth_world], env=env,
                          cwd=ROOT_DIR, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8 and out["same_weights"] and out["learner_stacked"] == scan
    assert out["sampler_shardings"] == out["learner_shardings"]
    assert any("fsdp" in s or "tensor" in s for s in out["sampler_shardings"])
    assert "data" in out["cache_spec"]
    row = out["rows"][0]
    assert row["step"] == 1 and np.isfinite(row["loss"]) and row["sampler_learner_gap"] < 1e-4
