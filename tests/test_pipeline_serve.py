"""Stages 1-2 served by `seeker-jax serve` (seeker_jax/serve) with a tiny RANDOM model: its
replies are garbage, and every sample must be rejected cleanly with a reason (invalid_reply
after the repair turns, or api_error where the server refuses a request) - nothing crashes,
the funnel is written. Run twice: strict json_schema requests, and plain text."""
import json

import pytest

from seeker_jax.config import load_config
from seeker_jax.data.synth import synthesize
from seeker_jax.data.pipeline import runner
from seeker_jax.data.pipeline.readers import read_synth
from seeker_jax.data.pipeline.run import run_pipeline, stage_specs

serve = pytest.importorskip("seeker_jax.serve.testing")
REASONS = {"invalid_reply", "api_error"}


@pytest.fixture(scope="module")
def ckpt_dir(tiny_qwen):
    return tiny_qwen.ckpt


def test_garbage_replies_are_rejected_with_reasons(ckpt_dir, tmp_path):
    from seeker_jax.serve.loading import ServeConfig

    root = tmp_path / "synth"
    synthesize(root, 2, seed=10, cfg=load_config("configs/synth.py:tiny", []), progress=False)
    cfg = ServeConfig(model_name="tiny", batch_size=4, max_len=4096, decode_steps=4)
    with serve.serve_in_thread(f"ckpt:{ckpt_dir}", config=cfg) as server:
        for mode in ("json_schema", ""):
            pipe = load_config("configs/pipeline.py:synth", [
                f"--config.api.model={server.url}#tiny", f"--config.api.json_mode={mode}",
                "--config.api.max_tokens=8", "--config.api.attempts=2",
                "--config.api.max_retries=0", "--config.workers=2"])
            funnel = run_pipeline(pipe, root, tmp_path / f"work_{mode or 'plain'}")
            stages = {s["name"]: s for s in funnel["stages"]}
            text = stages["1_text_filter"]
            assert text["num_out"] + sum(text["rejected"].values()) == text["num_in"] == 2
            for s in funnel["stages"][1:]:
                assert set(s["rejected"]) <= REASONS, s["rejected"]
                for examples in s["examples"].values():
                    assert all(e["detail"] for e in examples)
            assert funnel["counts"][-1] == 0  # a random model never produces a valid sample
            assert (tmp_path / f"work_{mode or 'plain'}" / "funnel.md").is_file()
            print(mode or "plain", json.dumps({s["name"]: s["examples"] for s in funnel["stages"]})[:600])
            # stage 1 rejects everything, so stage 2 (frames as image_url data URLs) is run on
            # the read samples directly: the same clean rejections
            specs = stage_specs(pipe, tmp_path / "direct")
            kept, report = runner.run_stage("2_verify", specs["2_verify"],
                                            read_synth(root).samples,
                                            tmp_path / f"direct_{mode or 'plain'}")
            assert kept == [] and sum(report.rejected.values()) == 2
            assert set(report.rejected) <= REASONS, report.rejected
            print("verify", mode or "plain", json.dumps(report.examples)[:600])
