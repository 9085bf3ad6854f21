"""Child process of the pipeline kill tests: python pipeline_child.py ROOT WORKDIR MODE.

MODE slow_verify: the truth server answers after 0.25 s (stage 2 is slow); slow_masks: stages
1-2 run, then stage 3 sleeps 0.25 s per sample; plain: everything at full speed (the resume).
"""
import os
import sys

from seeker_jax.data.testing import ChatServer
from seeker_jax.data.pipeline.testing import DelayedHandler, default_script
from seeker_jax.config import load_config
from seeker_jax.data.pipeline import runner
from seeker_jax.data.pipeline.readers import read_synth
from seeker_jax.data.pipeline.run import run_pipeline, stage_specs
from seeker_jax.data.pipeline.stage import StageSpec


def main(root: str, workdir: str, mode: str) -> None:
    samples = read_synth(root).samples
    delay = 0.25 if mode == "slow_verify" else 0.0
    with ChatServer(DelayedHandler(samples, default_script(samples), delay)) as server:
        cfg = load_config("configs/pipeline.py:synth",
                          [f"--config.api.model={server.url}#truth", "--config.workers=1"])
        if mode != "slow_masks":
            run_pipeline(cfg, root, workdir)
            return
        run_pipeline(cfg, root, workdir, stop_after="2_verify")
        verified = runner.read_stage_output(os.path.join(workdir, "2_verify"))
        spec = stage_specs(cfg, workdir)["3_masks"]
        slow = StageSpec("seeker_jax.data.pipeline.testing:Slow",
                         {"cls": spec.cls, "kwargs": spec.kwargs, "delay_s": 0.25})
        runner.run_stage("3_masks", slow, verified, os.path.join(workdir, "3_masks"))
        run_pipeline(cfg, root, workdir)


if __name__ == "__main__":
    main(*sys.argv[1:4])
