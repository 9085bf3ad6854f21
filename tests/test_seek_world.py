"""The seek world (data/seek.py): the overview never shows the flash, a crop of the evidence
window shows only the flash, a crop of the whole video shows what the overview shows; the
imperfect teacher's trajectories run through the real environment and tools."""
import collections

import numpy as np
import pytest

from seeker_jax.config import load_config
from seeker_jax.configs.env import env_group
from seeker_jax.data.records import read_records
from seeker_jax.data.seek import flash_seconds, missing_windows, overview_times
from seeker_jax.data.synth import synthesize
from seeker_jax.data.trajectories import build_trajectory
from seeker_jax.data.world import COLORS
from seeker_jax.env.config import EnvConfig
from seeker_jax.env.video import VideoFile
from seeker_jax.models.tokenizer import tokenizer_from_config


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    out = {}
    for preset, num in (("seek", 60), ("seek_perceive", 24)):
        root = tmp_path_factory.mktemp(preset)
        synthesize(root, num, 7, load_config(f"configs/synth.py:{preset}"), progress=False)
        out[preset] = root
    return out


def _colors(clip) -> list[str]:
    """The nearest palette color of each frame's shape (its most saturated pixels)."""
    names, palette = list(COLORS), np.array(list(COLORS.values()), np.float32)
    out = []
    for frame in clip.frames.astype(np.float32):
        sat = frame.max(-1) - frame.min(-1)
        mean = frame[sat > 0.5 * sat.max()].mean(0)
        out.append(names[int(np.argmin(((palette - mean) ** 2).sum(-1)))])
    return out


def test_flash_windows_miss_the_overview():
    times = overview_times(64, 8, 4)
    assert times.tolist() == [0.0, 2.625, 5.25, 7.875]
    assert flash_seconds(8.0, times) == [1, 3, 4, 6]
    assert missing_windows(8.0, 3) == [0, 1, 5, 6, 7]


def test_only_the_evidence_crop_shows_the_answer(worlds):
    env = EnvConfig.from_config(env_group("seek"))
    records = [r for s in ("train", "val", "test")
               for r in read_records(worlds["seek"], s, resolve=True)]
    assert len(records) == 60
    for r in records[:12]:
        video = VideoFile(r["video_path"])
        k0, k1 = r["evidence_window"]
        overview = video.clip(0.0, r["duration"], env.video)
        oracle = video.clip(k0, k1, env.crop)
        whole = video.clip(0.0, r["duration"], env.crop)
        assert len(overview.frames) == len(oracle.frames) == len(whole.frames) == 4
        assert set(_colors(overview)) == {r["base_color"]}, r["id"]
        assert set(_colors(whole)) == {r["base_color"]}, r["id"]
        assert set(_colors(oracle)) == {r["answer"]} == {r["flash_color"]}, r["id"]
        assert r["answer"] != r["base_color"]


def test_the_imperfect_teacher_runs_through_the_environment(worlds):
    root = worlds["seek"]
    records = read_records(root, "train", resolve=False)
    kinds = collections.Counter(r["teacher_kind"] for r in records)
    assert kinds["right"] and kinds["wide"] and set(kinds) <= {"right", "wide", "wrong"}
    env = EnvConfig.from_config(env_group("seek"))
    formatter = env.formatter(tokenizer_from_config("offline_qwen", None))
    for r in records[:6]:
        seg = build_trajectory(r, formatter, root, env.episode_config())
        text = formatter.tokenizer.decode(np.asarray(seg.input_ids))
        seen = r["answer"] if r["teacher_kind"] == "right" else r["base_color"]
        assert text.count("<tool_call>") >= 1 and f"<answer>{seen}</answer>" in text
        window = r["teacher_window"]
        if r["teacher_kind"] == "right":
            assert window == r["evidence_window"]
        elif r["teacher_kind"] == "wide":
            assert window == [0.0, r["duration"]]
        else:
            assert window[1] <= r["flash_window"][0] or window[0] >= r["flash_window"][1]


def test_perception_records_name_what_was_shown(worlds):
    root = worlds["seek_perceive"]
    records = read_records(root, "train", resolve=True)
    env = EnvConfig.from_config(env_group("seek"))
    for r in records:
        video = VideoFile(r["video_path"])
        clip = video.clip(*r["evidence_window"], env.crop if len(r["teacher_turns"]) > 1
                          else env.video)
        assert set(_colors(clip)) == {r["answer"]}, r["id"]
        assert r["teacher_turns"][-1].endswith(f"<answer>{r['answer']} {r['shape']}</answer>")


def test_a_seek_world_is_reproducible(tmp_path):
    cfg = load_config("configs/synth.py:seek")
    for name in ("a", "b"):
        synthesize(tmp_path / name, 6, 3, cfg, progress=False)
    for path in sorted((tmp_path / "a" / "videos").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / "videos" / path.name).read_bytes()
    assert (read_records(tmp_path / "a", "train", resolve=False)
            == read_records(tmp_path / "b", "train", resolve=False))


def test_the_restating_teacher_changes_only_its_think(tmp_path):
    """configs/synth.py:seek_restate (protocol 2): the same videos, windows and answers as seek
    from one seed; every crop turn first restates the time the question asks about."""
    plain = load_config("configs/synth.py:seek")
    restate = load_config("configs/synth.py:seek_restate")
    assert not plain.seek.restate_time and restate.seek.restate_time
    synthesize(tmp_path / "plain", 8, 3, plain, progress=False)
    synthesize(tmp_path / "restate", 8, 3, restate, progress=False)
    for split in ("train", "val", "test"):
        a = read_records(tmp_path / "plain", split, resolve=False)
        b = read_records(tmp_path / "restate", split, resolve=False)
        assert len(a) == len(b)
        for ra, rb in zip(a, b):
            k = int(ra["evidence_window"][0])
            assert f"at {k}.5 s?" in rb["question"]
            crop_a, answer_a = ra["teacher_turns"]
            crop_b, answer_b = rb["teacher_turns"]
            assert crop_b == crop_a.replace("<think>", f"<think>About {k}.5 s. ", 1)
            assert answer_a == answer_b
            strip = ("teacher_turns",)
            assert ({x: v for x, v in ra.items() if x not in strip}
                    == {x: v for x, v in rb.items() if x not in strip})
    for path in sorted((tmp_path / "plain" / "videos").iterdir()):
        assert path.read_bytes() == (tmp_path / "restate" / "videos" / path.name).read_bytes()


def test_the_fixed_world_flashes_at_one_second(tmp_path):
    """configs/synth.py:seek_fixed (protocol 2): every video flashes around k = 3 and only a
    crop of [3, 4] shows it; shapes and colors are seek's from the same seed; a second the
    overview sees is refused."""
    cfg = load_config("configs/synth.py:seek_fixed")
    synthesize(tmp_path / "fixed", 10, 3, cfg, progress=False)
    synthesize(tmp_path / "plain", 10, 3, load_config("configs/synth.py:seek"), progress=False)
    env = EnvConfig.from_config(env_group("seek"))
    fixed = [r for s in ("train", "val", "test")
             for r in read_records(tmp_path / "fixed", s, resolve=True)]
    plain = [r for s in ("train", "val", "test")
             for r in read_records(tmp_path / "plain", s, resolve=True)]
    assert len(fixed) == 10
    for r, q in zip(fixed, plain):
        assert r["evidence_window"] == [3.0, 4.0] and "at 3.5 s?" in r["question"]
        assert (r["shape"], r["base_color"], r["flash_color"], r["teacher_kind"]) == (
            q["shape"], q["base_color"], q["flash_color"], q["teacher_kind"])
        video = VideoFile(r["video_path"])
        assert set(_colors(video.clip(3.0, 4.0, env.crop))) == {r["answer"]}
        assert set(_colors(video.clip(0.0, r["duration"], env.video))) == {r["base_color"]}
    cfg.seek.fixed_second = 2
    with pytest.raises(ValueError, match="fixed_second"):
        synthesize(tmp_path / "bad", 1, 3, cfg, progress=False)


def test_the_overview_frames_match_the_environment():
    """The seek world draws k where none of `seek.overview_frames` frames falls: that must be
    the frame count configs/env.py:seek samples the whole video at, or the overview could show
    the flash."""
    env = env_group("seek")
    for preset in ("seek", "seek_restate", "seek_fixed", "seek_perceive"):
        frames = load_config(f"configs/synth.py:{preset}").seek.overview_frames
        assert frames == env.video.max_frames == env.video.min_frames, preset
