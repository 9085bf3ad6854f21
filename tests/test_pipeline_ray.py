"""The pipeline on a local Ray (`ray.init(num_cpus=2)`) gives the same bytes as the
single-process run: API stages as Ray tasks, the oracle and render stages too, and a SAM stage
in ActorPool actors that keep the model loaded."""
import hashlib

import pytest

from seeker_jax.data.testing import ChatServer
from seeker_jax.data.pipeline.testing import TruthHandler, default_script
from seeker_jax.data.pipeline.testing import save_tiny_sam2
from seeker_jax.config import load_config
from seeker_jax.data.pipeline import runner
from seeker_jax.data.pipeline.readers import read_synth
from seeker_jax.data.pipeline.run import STAGES, run_pipeline
from seeker_jax.data.pipeline.stage import StageSpec
from seeker_jax.data.synth import synthesize

ray = pytest.importorskip("ray")


def _digests(work):
    paths = [work / s / n for s in STAGES for n in (runner.OUT, runner.REJECTED)]
    paths += sorted((work / "dataset").rglob("*"))
    return {str(p.relative_to(work)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in paths if p.is_file()}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_run_equals_single_process(local_ray, synth_world, tmp_path):
    root = synth_world
    samples = read_synth(root).samples
    with ChatServer(TruthHandler(samples, default_script(samples))) as server:
        cfg = load_config("configs/pipeline.py:synth",
                          [f"--config.api.model={server.url}#truth", "--config.workers=2"])
        one = run_pipeline(cfg, root, tmp_path / "one")
        many = run_pipeline(cfg, root, tmp_path / "ray", use_ray=True)
    assert _digests(tmp_path / "one") == _digests(tmp_path / "ray")
    assert one["counts"] == many["counts"] and one["counts"][-1] > 0


def test_ray_sam_actors_equal_in_process(local_ray, tmp_path):
    """A model stage in Ray actors (2 actors, each loads the model once) equals in-process."""
    root = tmp_path / "synth"
    synthesize(root, 3, seed=7, cfg=load_config("configs/synth.py:tiny", []), progress=False)
    samples = read_synth(root).samples
    with ChatServer(TruthHandler(samples)) as server:
        cfg = load_config("configs/pipeline.py:synth", [f"--config.api.model={server.url}#t"])
        run_pipeline(cfg, root, tmp_path / "one", stop_after="2_verify")
    folder = save_tiny_sam2(tmp_path / "sam2")
    verified = runner.read_stage_output(tmp_path / "one" / "2_verify")
    spec = StageSpec("seeker_jax.data.pipeline.masks_sam:Sam2Masks",
                     {"model_dir": str(folder), "min_neighbour_iou": 0.0, "num_threads": 1})
    a, _ = runner.run_stage("3_masks", spec, verified, tmp_path / "sam_one")
    b, _ = runner.run_stage("3_masks", spec, verified, tmp_path / "sam_ray", workers=2,
                            use_ray=True)
    assert runner.output_bytes(a) == runner.output_bytes(b)
    assert (tmp_path / "sam_one" / runner.OUT).read_bytes() == \
        (tmp_path / "sam_ray" / runner.OUT).read_bytes()
