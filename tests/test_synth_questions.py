"""Every record's answer, recomputed from stored tracks by tests/synth_truth.py's parser, is the
record's answer; no other instance would give it (the visual prompt is needed)."""
from __future__ import annotations

import collections

import numpy as np
import pytest
from PIL import Image

from seeker_jax.config import load_config
from seeker_jax.data.questions import Context, answer_of
from seeker_jax.data.records import read_records
from seeker_jax.data.synth import synthesize
from seeker_jax.data.world import Action, World
from synth_truth import Truth, truth_readings

MIN_PX = 12  # configs/synth.py:tiny questions.min_visible_px


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_q")
    cfg = load_config("configs/synth.py:tiny")
    synthesize(root, 70, seed=11, cfg=cfg, progress=False)
    records = [r for s in ("train", "val", "test") for r in read_records(root, s)]
    return root, records


def test_answers_match_independent_ground_truth(dataset):
    root, records = dataset
    truths: dict[str, Truth] = {}
    for r in records:
        if r["video_id"] not in truths:
            truths[r["video_id"]] = Truth(World.load(r["tracks_path"]), MIN_PX)
        tr, k = truths[r["video_id"]], r["target_track_id"]
        assert truth_readings(tr, r["spec"], k) == {r["answer_text"]}, r["id"]
        for j in range(tr.world.num_instances):
            if j != k:  # another instance would give another answer
                assert r["answer_text"] not in truth_readings(tr, r["spec"], j), (r["id"], j)


def test_record_format(dataset):
    root, records = dataset
    assert len(records) == 70
    assert set(collections.Counter(r["dimension"] for r in records)) == {
        "OA", "OD", "FT", "RT", "AS", "SR", "GC"}
    assert len({r["prompt_type"] for r in records}) == 8
    assert {r["question_form"] for r in records} == {"mc", "open"}
    for r in records:
        assert "<target>" not in r["question"] and r["target_phrase"].lower() in r["question"].lower()
        assert 0 <= r["evidence_window"][0] < r["evidence_window"][1] <= r["duration"]
        assert r["prompt_time"] == pytest.approx(r["prompt_frame_index"] / 8)
        if r["question_form"] == "mc":
            assert sorted(r["options"]) == list("ABCD") and len(set(r["options"].values())) == 4
            assert r["options"][r["answer"]].lower() == r["answer_text"].lower()
            for letter, text in r["options"].items():
                assert f"\n{letter}. {text}" in r["question"]
        else:
            assert r["answer"] == r["answer_text"] and r["options"] == {}
        world = World.load(r["tracks_path"])
        vis = world.visible_masks(r["prompt_frame_index"])[r["target_track_id"]]
        assert vis.sum() >= MIN_PX  # the target is visible on the prompt frame
        assert Image.open(r["frame_path"]).size == (world.width, world.height)


def _hand_world() -> World:
    """Two squares on a 40x20 frame at 2 fps, 8 frames. A: right 0-2, stop 2-5 (turns red
    at 3), left 5-7. B: still the whole time, blue."""
    t = 8
    ax = np.array([5, 10, 15, 15, 15, 15, 10, 5], np.float32)
    cx = np.stack([ax, np.full(t, 32, np.float32)])
    cy = np.full((2, t), 10, np.float32)
    color = np.array([[2, 2, 2, 0, 0, 0, 0, 0], [2] * t], np.int8)
    actions = [[Action("move", 0.0, 1.0, "right"), Action("stop", 1.0, 2.5),
                Action("turn", 1.5, 1.5, "red"), Action("move", 2.5, 3.5, "left")],
               [Action("move", 0.0, 0.5, "up"), Action("stop", 0.5, 3.5)]]
    return World(width=40, height=20, fps=2, shape=np.array([1, 1]), texture=np.array([0, 0]),
                 z=np.array([0, 1]), cx=cx, cy=cy, size=np.full((2, t), 3, np.float32),
                 color=color, occluder=np.full(4, -1, np.int32),
                 background=np.zeros((2, 3), np.uint8), actions=actions)


@pytest.mark.parametrize("spec,answer", [
    ({"kind": "count", "event": "stop"}, "1"),
    ({"kind": "count", "event": "turn"}, "1"),
    ({"kind": "turn_color"}, "red"),
    ({"kind": "color_at", "t": 1.0}, "blue"),
    ({"kind": "color_at", "t": 2.0}, "red"),
    ({"kind": "direction", "t0": 0.0, "t1": 1.0}, "right"),
    ({"kind": "direction", "t0": 1.0, "t1": 2.5}, "it does not move"),
    ({"kind": "neighbor", "event": "stops", "ordinal": 0, "step": 1}, "turns red"),
    ({"kind": "neighbor", "event": "moves left", "ordinal": 0, "step": -1}, "turns red"),
    ({"kind": "sequence", "t0": 1.0, "t1": 3.5}, "stops, then turns red, then moves left"),
    ({"kind": "relation", "t": 1.0, "ref": 1}, "to the left of it"),
])
def test_hand_worked_answers(spec, answer):
    ctx = Context.build(_hand_world(), min_visible_px=4)
    assert answer_of(ctx, spec, 0) == answer


def test_color_stable_window_hand_worked():
    """Instance 0 is blue in frames 0-2 and red in 3-7 (2 fps). With color_stable_s 0.5 its
    color must hold for 1 frame either side plus 1 for rounding, inside the video (the crop is
    clipped there too): frames 0, 5, 6 and 7. Asked with the prompt on frame 0 (blue), "color
    at T" names frames 5-7 only, the stable ones whose color differs from the marked frame's."""
    from seeker_jax.data.questions import _gen_color_at

    world = _hand_world()
    ctx = Context.build(world, min_visible_px=4, color_stable_s=0.5)
    assert [f for f in range(8) if ctx.color_holds(0, f)] == [0, 5, 6, 7]
    asked = {_gen_color_at(ctx, 0, np.random.default_rng(s), 0)[2]["t"] for s in range(20)}
    assert asked == {2.5, 3.0, 3.5}
    loose = Context.build(world, min_visible_px=4)   # the default: every visible frame
    assert len({_gen_color_at(loose, 0, np.random.default_rng(s), 0)[2]["t"]
                for s in range(40)}) > 1
