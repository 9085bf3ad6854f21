"""The simulator's own action lists are what the pixels say (read back by tests/synth_truth.py's
parser, independent of the generator's code path), stored tracks reload bit-exactly, and pixels
match the masks.
"""
from __future__ import annotations

import numpy as np
import pytest

from seeker_jax.config import load_config
from seeker_jax.data.simulate import simulate
from seeker_jax.data.world import World
from synth_truth import Truth


@pytest.mark.parametrize("preset,seeds", [("tiny", range(12)), ("default", range(2))])
def test_simulated_actions_are_what_the_tracks_show(preset, seeds):
    cfg = load_config(f"configs/synth.py:{preset}")
    kinds = set()
    for seed in seeds:
        world = simulate(cfg, np.random.default_rng([seed, 0]))
        tr = Truth(world, 1)
        for j in range(world.num_instances):
            parsed = [(a["phrase"], a["f0"]) for a in tr.actions[j]]
            truth = [(a.phrase, round(a.t0 * world.fps)) for a in world.actions[j]]
            assert parsed == truth, (seed, j)
            kinds |= {a.kind for a in world.actions[j]}
        # distractors of the same kind: every shape present appears at least twice
        assert min(np.bincount(world.shape)[np.unique(world.shape)]) >= 2
    if preset == "tiny":
        assert kinds == {"move", "stop", "turn", "grow", "shrink", "enter", "leave"}


def test_tracks_reload_exactly_and_pixels_follow_masks(tmp_path):
    cfg = load_config("configs/synth.py:tiny")
    world = simulate(cfg, np.random.default_rng(5))
    world.save(tmp_path / "t.npz")
    back = World.load(tmp_path / "t.npz")
    assert back.actions == world.actions
    saw_occlusion = False
    for f in range(0, world.num_frames, 3):
        full, vis = world.full_masks(f), world.visible_masks(f)
        np.testing.assert_array_equal(back.visible_masks(f), vis)
        frame = world.render_frame(f)
        bg = world.render_background()
        occ = world.occluder_mask()
        anything = vis.any(0) | occ
        np.testing.assert_array_equal(frame[~anything], bg[~anything])  # background untouched
        for j in range(world.num_instances):
            base = np.array([[220, 40, 40], [40, 170, 60], [50, 90, 230], [235, 205, 40],
                             [150, 60, 200], [245, 135, 25]])[world.color[j, f]]
            px = frame[vis[j]].astype(int)
            # every visible pixel is the instance's colour or its darker texture shade
            ratio = px / np.maximum(base, 1)
            assert np.all((ratio <= 1.0001) & (ratio >= 0.4)), (f, j)
            saw_occlusion |= bool((full[j] & ~vis[j]).any())
    assert saw_occlusion
