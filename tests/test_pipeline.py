"""The four-stage pipeline end to end on the synthetic world, stages 1-2 served by a
deterministic test server with VALID replies from the world's truth (seeker_jax/data/pipeline/testing.py,
a stand-in for a perfect LLM / VLM, stated as such), stage 3 by the oracle backend (the
world's true masks), stage 4 by the world's own renderer; kill and resume in child processes."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seeker_jax.data.testing import ChatServer
from seeker_jax.data.pipeline.testing import TruthHandler, default_script, truth_window
from seeker_jax.config import load_config
from seeker_jax.data.pipeline import runner
from seeker_jax.data.pipeline.masks import window_indices
from seeker_jax.data.pipeline.readers import options_text, read_synth
from seeker_jax.data.pipeline.render import draw
from seeker_jax.data.pipeline.run import STAGES, run_pipeline
from seeker_jax.data.records import RecordSource, read_records
from seeker_jax.data.synth import synthesize
from seeker_jax.data.visual_prompt import PROMPT_TYPES, fill_placeholder
from seeker_jax.data.world import World
from seeker_jax.env.video import VideoFile, VideoInfo

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe_synth")
    synthesize(root, 12, seed=3, cfg=load_config("configs/synth.py:tiny", []), progress=False)
    return root


def _config(url: str, *overrides: str):
    return load_config("configs/pipeline.py:synth", [f"--config.api.model={url}#truth", *overrides])


@pytest.fixture(scope="module")
def run(synth_root, tmp_path_factory):
    """One uninterrupted run; returns (workdir, samples, script, server requests)."""
    work = tmp_path_factory.mktemp("pipe_work")
    samples = read_synth(synth_root).samples
    script = default_script(samples)
    with ChatServer(TruthHandler(samples, script)) as server:
        funnel = run_pipeline(_config(server.url, "--config.workers=3"), synth_root, work)
        requests = list(server.requests)
    return work, samples, script, requests, funnel


def _files(work: Path) -> dict[str, str]:
    """Digests of the final outputs: every stage's out/rejected files and the dataset."""
    paths = [work / s / n for s in STAGES for n in (runner.OUT, runner.REJECTED)]
    paths += sorted((work / "dataset").rglob("*"))
    return {str(p.relative_to(work)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in paths if p.is_file()}


def test_funnel_counts_and_reasons(run):
    work, samples, script, requests, funnel = run
    by_reason = {m: i for i, m in script.items()}
    stages = {s["name"]: s for s in funnel["stages"]}
    n = len(samples)
    assert funnel["counts"] == [n, n, n - 2, n - 3, n - 3, n - 3]
    assert stages["1_text_filter"]["rejected"] == {"invalid_reply": 1, "no_visual_entity": 1}
    assert stages["1_text_filter"]["examples"]["invalid_reply"][0]["id"] == by_reason["bad_always"]
    assert "not JSON" in stages["1_text_filter"]["examples"]["invalid_reply"][0]["detail"]
    assert stages["2_verify"]["rejected"] == {"not_unique": 1}
    # bad_once: garbage, then valid after the repair turn (in both stages) -> kept;
    # bad_always: 3 attempts, then rejected
    assert len(requests) == (n + 1 + 2) + (n - 2 + 1)
    repairs = [r for r in requests if len(r["messages"]) > 2]
    assert len(repairs) == 2 + 2 and all("Your reply was rejected: not JSON" in
                                         r["messages"][-1]["content"] for r in repairs)
    assert stages["1_text_filter"]["tokens"] > 0 and stages["2_verify"]["tokens"] > 0
    for name in ("funnel.json", "funnel.md", "funnel.png"):
        assert (work / name).stat().st_size > 0
    assert Image.open(work / "funnel.png").size[0] > 100
    md = (work / "funnel.md").read_text()
    assert f"| 2_verify | {n - 2} | {n - 3} |" in md and "not_unique: 1" in md


def test_verify_requests_carry_timestamped_frames(run):
    _, samples, _, requests, _ = run
    verify_reqs = [r for r in requests if isinstance(r["messages"][1]["content"], list)]
    content = verify_reqs[0]["messages"][1]["content"]
    stamps = [p["text"] for p in content if p["type"] == "text" and p["text"].endswith("seconds>")]
    images = [p for p in content if p["type"] == "image_url"]
    # tiny world: 4 s at 8 fps, 1 fps -> 4 frames spread over frames 0..31 (the env's sampler)
    expected = [f"<{i / 8:.1f} seconds>" for i in np.linspace(0, 31, 4).round()]
    assert stamps == expected and len(images) == 4
    assert images[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert verify_reqs[0]["response_format"]["type"] == "json_schema"


def test_oracle_masks_are_the_true_masks(run):
    work, samples, _, _, _ = run
    from seeker_jax.data.pipeline.masks import decode_rle

    masked = runner.read_stage_output(work / "3_masks")
    assert masked and all(r["mask_backend"] == "oracle" for r in masked)
    for rec in masked:
        t = rec["truth"]
        world = World.load(t["tracks_path"])
        info = VideoInfo(world.num_frames, float(world.fps), world.width, world.height)
        assert rec["window"] == list(truth_window(rec))
        idx = window_indices(info, rec["window"])
        assert rec["masks"]["frame_indices"] == idx.tolist()
        assert len(idx) == max(1, int(rec["window"][1] - rec["window"][0]))  # 1 fps
        for f, counts in zip(idx, rec["masks"]["rle"]):
            truth = world.visible_masks(int(f))[t["target_track_id"]]
            np.testing.assert_array_equal(decode_rle(counts, rec["masks"]["size"]), truth)


def test_rendered_prompts_match_the_world_renderer(run):
    """For every output record, the world's own renderer on the world's clean frame and the
    true masks at the chosen frame, with the same per-sample rng, gives the same type, colour,
    geometry and phrase; the mark's pixels are the same in the saved frame (drawn over the
    decoded video frame instead of the clean one); the question is the template filled."""
    work, samples, _, _, _ = run
    records = read_records(work / "dataset", "train")
    assert records == [RecordSource(work / "dataset")[i] for i in range(len(records))]
    seen_types = set()
    for rec in records:
        t = rec["truth"]
        world = World.load(t["tracks_path"])
        f, k = rec["prompt_frame_index"], t["target_track_id"]
        masks = world.visible_masks(f)
        others = [masks[j] for j in range(len(masks)) if j != k and masks[j].sum() >= 20]
        clean = world.render_frame(f)
        vp = draw(clean, masks[k], others, 0, rec["id"])
        assert (vp.prompt_type, vp.color, vp.phrase) == (rec["prompt_type"], rec["prompt_color"],
                                                          rec["target_phrase"])
        assert json.loads(json.dumps(vp.geometry)) == rec["prompt_geometry"]
        mark = np.any(vp.image != clean, axis=-1)
        saved = np.asarray(Image.open(rec["frame_path"]))
        decoded = VideoFile(rec["video_path"]).read(np.array([f]))[0]
        assert mark.sum() > 0
        np.testing.assert_array_equal(saved[mark], vp.image[mark])
        np.testing.assert_array_equal(saved[~mark], decoded[~mark])
        assert rec["question"] == fill_placeholder(t["question_template"], vp.phrase) + \
            options_text(rec["options"])
        if (vp.prompt_type, vp.color) == (t["prompt_type"], t["prompt_color"]) and \
                f == t["prompt_frame_index"] and vp.prompt_type in PROMPT_TYPES[:4]:
            assert rec["question"] == t["question"]  # the synthetic record's own text
        seen_types.add(vp.prompt_type)
    assert len(seen_types) >= 4


def test_rerun_skips_everything(run, synth_root):
    work, samples, script, _, _ = run
    before = _files(work)
    with ChatServer(TruthHandler(samples, script)) as server:
        run_pipeline(_config(server.url), synth_root, work)
        assert server.requests == []  # every sample was logged: nothing is asked again
    assert _files(work) == before


def _kill_and_resume(synth_root: Path, work: Path, mode: str, stage: str, after: int) -> None:
    env = dict(os.environ, PYTHONPATH=str(HERE))
    child = subprocess.Popen([sys.executable, str(HERE / "pipeline_child.py"), str(synth_root),
                              str(work), mode], env=env, cwd=HERE.parent)
    log = work / stage / runner.LOG
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if log.is_file() and log.read_text().count("\n") >= after:
            break
        time.sleep(0.02)
    assert child.poll() is None, "the child finished before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert not (work / stage / runner.OUT).exists()
    done = len(runner.read_log(log))
    assert after <= done < 9
    subprocess.run([sys.executable, str(HERE / "pipeline_child.py"), str(synth_root), str(work),
                    "plain"], env=env, cwd=HERE.parent, check=True, timeout=300)
    entries = [json.loads(x) for x in log.read_text().splitlines() if x.strip().startswith("{")]
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids))  # none duplicated


# The masks stage's kill runs in the slow suite; the verify stage's keeps the property in the default.
@pytest.mark.parametrize("mode,stage", [("slow_verify", "2_verify"),
                                        pytest.param("slow_masks", "3_masks", marks=pytest.mark.slow)])
def test_kill_and_resume_gives_the_same_bytes(run, synth_root, tmp_path, mode, stage):
    work = tmp_path / "killed"
    _kill_and_resume(synth_root, work, mode, stage, after=3)
    assert _files(work) == _files(run[0])
