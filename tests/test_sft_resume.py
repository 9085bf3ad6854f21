"""SFT end to end on a tiny synthetic world: exact resume and export of the checkpoint to HF.

Slow (each `train` call compiles the step, ~1 min on 2 CPU cores): `pytest -m slow`.
tests/test_sft_resume_fast.py checks the same resume property in the default suite (one
device, child processes, a shared compilation cache); this one keeps the sharded mesh
(fsdp 4 x tensor 2), validation and the export.
"""
import json
import os

import numpy as np
import pytest

from seeker_jax.checkpointing import checkpoint as ckpt
from seeker_jax.config import load_config

pytestmark = pytest.mark.slow

STEPS = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from seeker_jax.data.synth import synthesize

    root = str(tmp_path_factory.mktemp("world"))
    synthesize(root, 24, 0, load_config("configs/synth.py:tiny"))
    return root


def _config(root):
    return load_config("configs/sft.py:tiny_synth", [
        f"--config.data.root={root}", f"--config.steps={STEPS}", "--config.checkpoint_every=2",
        f"--config.eval_every={STEPS}", "--config.data.val_batches=1",
        "--config.data.batch_size=1", "--config.data.buckets=(1024,)",
        "--config.mesh.fsdp=4", "--config.mesh.tensor=2"])


@pytest.fixture(scope="module")
def straight(world, tmp_path_factory):
    from seeker_jax.training.sft import train

    workdir = str(tmp_path_factory.mktemp("straight"))
    return workdir, train(_config(world), workdir, progress=False)


def _losses(rows):
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_resume_is_exact(world, straight, tmp_path):
    from seeker_jax.training.sft import train

    workdir_a, rows_a = straight
    workdir_b = str(tmp_path / "resumed")
    first = train(_config(world), workdir_b, stop_after=STEPS // 2, progress=False)
    second = train(_config(world), workdir_b, progress=False)
    assert sorted(_losses(first)) == [1, 2] and sorted(_losses(second)) == [3, 4]
    assert {**_losses(first), **_losses(second)} == _losses(rows_a)
    pa, pb = ckpt.restore_params(workdir_a), ckpt.restore_params(workdir_b)
    assert ckpt.find_params(workdir_b).step == STEPS
    for k in pa:
        np.testing.assert_array_equal(np.asarray(pa[k]), np.asarray(pb[k]), err_msg=k)
    # metrics.jsonl holds both halves, in order
    with open(os.path.join(workdir_b, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f if "loss" in json.loads(line)]
    assert steps == [1, 2, 3, 4]


def test_sft_checkpoint_exports_to_transformers(straight, tmp_path):
    import torch
    import transformers

    from seeker_jax.cli.main import main
    from seeker_jax.models.qwen3_vl.modeling import forward

    workdir, rows = straight
    assert rows[-1]["step"] == STEPS and "val_loss" in rows[-1]
    out = str(tmp_path / "hf")
    assert main(["export", "--ckpt", workdir, "--out", out]) == 0
    hf = transformers.Qwen3VLForConditionalGeneration.from_pretrained(out).eval()
    ids = np.array([[151644, 872, 198, 9707, 11, 1879, 0, 151645]])
    with torch.no_grad():
        ref = hf(input_ids=torch.tensor(ids)).logits.numpy()
    ours = np.asarray(forward(ckpt.load_model(workdir), ids).logits)
    np.testing.assert_allclose(ours, ref, atol=2e-4)
