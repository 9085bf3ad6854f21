"""SFT with scanned, stacked layers (`model.scan_layers=True`, as the 4B / 8B presets run it),
end to end on the tiny setup: the run trains and resumes from its stacked checkpoint, the
checkpoint loads into either layout with equal weights, an unrolled run starts from it
(`init_from`), and `export` hands transformers a folder whose logits match ours (fp32,
<= 1e-4 on every position).

The runs happen in a child process (`python tests/test_sft_scanned.py WORK WORLD`, WORLD being
conftest's synthetic world) with one CPU device, as tests/test_sft_resume_fast.py's do.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from seeker_jax.checkpointing import checkpoint as ckpt

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-4


def _config(root: str, steps: int, scan: bool, init_from: str = ""):
    from seeker_jax.config import load_config

    return load_config(os.path.join(ROOT_DIR, "configs", "sft.py") + ":tiny_synth", [
        f"--config.data.root={root}", f"--config.steps={steps}", "--config.checkpoint_every=2",
        "--config.data.val_batches=0", "--config.data.batch_size=1",
        "--config.data.buckets=(1024,)", "--config.data.prefetch=1",
        f"--config.model.scan_layers={scan}", f"--config.model.init_from={init_from}"])


def _child(work: str, root: str) -> None:
    from seeker_jax.training.sft import train

    scanned = os.path.join(work, "scanned")
    out = {"first": [r["step"] for r in train(_config(root, 2, True), scanned, progress=False)
                     if "loss" in r]}
    out["resumed"] = [r["step"] for r in train(_config(root, 3, True), scanned, progress=False)
                      if "loss" in r]
    out["unrolled"] = [r["loss"] for r in train(_config(root, 2, False, scanned),
                                                os.path.join(work, "unrolled"), progress=False)
                       if "loss" in r]
    with open(os.path.join(work, "out.json"), "w") as f:
        json.dump(out, f)


@pytest.fixture(scope="module")
def runs(synth_world, tmp_path_factory):
    work = str(tmp_path_factory.mktemp("sft_scanned"))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), work, synth_world],
                          env=env, cwd=ROOT_DIR, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(os.path.join(work, "out.json")) as f:
        return work, json.load(f)


# Slow (~70 s, a child process training twice): test_scan checks the scanned model's
# gradients, cache writes and checkpoints across layouts in the default suite.
@pytest.mark.slow
def test_scanned_sft_trains_resumes_and_feeds_an_unrolled_run(runs):
    work, out = runs
    assert out["first"] == [1, 2] and out["resumed"] == [3]
    assert len(out["unrolled"]) == 2 and all(np.isfinite(out["unrolled"]))
    scanned = ckpt.find_params(os.path.join(work, "scanned"))
    assert scanned.step == 3  # the final step is saved as well
    assert ckpt.stored_stacked(ckpt.stored_metadata(scanned.params_dir))
    unrolled = ckpt.find_params(os.path.join(work, "unrolled"))
    assert not ckpt.stored_stacked(ckpt.stored_metadata(unrolled.params_dir))


@pytest.mark.slow
def test_stacked_checkpoint_loads_either_way_and_exports_to_transformers(runs, tmp_path):
    import transformers
    from flax import nnx

    from hf_reference import hf_logits
    from seeker_jax.checkpointing.convert import export
    from seeker_jax.models.qwen3_vl import forward
    from seeker_jax.checkpointing.parity import make_inputs
    from seeker_jax.models.qwen3_vl.stacking import unstack_flat

    work, _ = runs
    run = os.path.join(work, "scanned")
    flat = lambda m: {p: np.asarray(v.get_value())  # noqa: E731
                      for p, v in nnx.to_flat_state(nnx.state(m, nnx.Param))}
    unrolled = ckpt.load_model(run)
    scanned = ckpt.load_model(run, scan_layers=True)
    a, b = flat(unrolled), unstack_flat(flat(scanned))
    assert sorted(a) == sorted(b)
    for p in a:
        np.testing.assert_array_equal(a[p], np.asarray(b[p]), err_msg=str(p))

    out = str(tmp_path / "hf")
    export(run, out, progress=False)
    hf, info = transformers.Qwen3VLForConditionalGeneration.from_pretrained(
        out, output_loading_info=True)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"])
    inputs = make_inputs([[("text", 3), ("image", (4, 4)), ("text", 4), ("video", (2, 4, 4)),
                           ("text", 5)]], unrolled.config, seed=6)
    ref = hf_logits(hf.eval(), inputs)
    for model in (unrolled, scanned):
        err = float(np.abs(np.asarray(forward(model, **inputs.arrays()).logits) - ref).max())
        print(f"\nscanned SFT checkpoint vs transformers on its export: {err:.2e}")
        assert err <= TOL


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
