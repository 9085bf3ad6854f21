"""Ground truth recomputed from stored tracks alone, independent of the generator's code path
(a test helper, not a test module).

`parse_actions` reads per-frame centres, sizes, colors and in-frame flags and rebuilds each
instance's action list; `truth_readings` answers every question spec from that parse.
test_synth_truth and test_synth_questions check the generator against both.
"""
from __future__ import annotations

import math

import numpy as np

from seeker_jax.data.world import World

NAMES8 = ["right", "down-right", "down", "down-left", "left", "up-left", "up", "up-right"]
WORDS = {"left": "left", "right": "right", "up": "up", "down": "down",
         "up-left": "up and to the left", "up-right": "up and to the right",
         "down-left": "down and to the left", "down-right": "down and to the right"}
COLORS = ["red", "green", "blue", "yellow", "purple", "orange"]
FROM_SIDE = {"right": "left", "left": "right", "down": "top", "up": "bottom"}
THROUGH = {"left": "left", "right": "right", "up": "top", "down": "bottom"}


def _direction(dx: float, dy: float) -> str:
    return NAMES8[int(round(math.atan2(dy, dx) / (math.pi / 4))) % 8]


def parse_actions(world: World, j: int, in_frame: np.ndarray) -> list[dict]:
    """Actions of instance j as dicts {kind, phrase, f0, f1} (frames), sorted by start."""
    cx, cy, size, color = world.cx[j], world.cy[j], world.size[j], world.color[j]
    out = []
    labels = []
    for f in range(world.num_frames - 1):
        dx, dy = float(cx[f + 1] - cx[f]), float(cy[f + 1] - cy[f])
        still = abs(dx) + abs(dy) < 1e-4
        parked = any(abs(cx[i]) > 2 * world.width for i in (f, f + 1))
        if parked or (still and not (in_frame[f] or in_frame[f + 1])):
            labels.append(None)  # parked far off-frame, or resting just outside
        elif still:
            labels.append("still")
        else:
            labels.append(_direction(dx, dy))
    f = 0
    while f < len(labels):  # runs of equal motion labels
        g = f
        while g + 1 < len(labels) and labels[g + 1] == labels[f]:
            g += 1
        lab = labels[f]
        if lab == "still":
            out.append({"kind": "stop", "phrase": "stops", "f0": f, "f1": g + 1})
        elif lab is not None:
            if not in_frame[f]:
                out.append({"kind": "enter", "f0": f, "f1": g + 1,
                            "phrase": f"enters the frame from the {FROM_SIDE[lab]}"})
            elif not in_frame[g + 1]:
                out.append({"kind": "leave", "f0": f, "f1": g + 1,
                            "phrase": f"leaves the frame through the {THROUGH[lab]} edge"})
            else:
                out.append({"kind": "move", "f0": f, "f1": g + 1, "phrase": f"moves {WORDS[lab]}"})
        f = g + 1
    for f in range(1, world.num_frames):
        if color[f] != color[f - 1]:
            out.append({"kind": "turn", "f0": f, "f1": f, "phrase": f"turns {COLORS[color[f]]}"})
    ds = np.sign(np.round(np.diff(size.astype(np.float64)), 4))
    f = 0
    while f < len(ds):
        if ds[f] == 0:
            f += 1
            continue
        g = f
        while g + 1 < len(ds) and ds[g + 1] == ds[f]:
            g += 1
        kind = "grow" if ds[f] > 0 else "shrink"
        out.append({"kind": kind, "f0": f, "f1": g + 1,
                    "phrase": "grows bigger" if kind == "grow" else "shrinks"})
        f = g + 1
    return sorted(out, key=lambda a: a["f0"])


class Truth:
    """Per-world cache of what the tests derive from tracks and masks."""

    def __init__(self, world: World, min_visible_px: int):
        self.world = world
        self.min_px = min_visible_px
        full = [world.full_masks(f) for f in range(world.num_frames)]
        self.in_frame = np.stack([m.any(axis=(1, 2)) for m in full], axis=1)  # (K, T)
        self.vis_px = np.stack([world.visible_masks(f, m).sum(axis=(1, 2))
                                for f, m in enumerate(full)], axis=1)
        self.actions = [parse_actions(world, j, self.in_frame[j])
                        for j in range(world.num_instances)]

    def frame(self, t: float) -> int:
        return min(int(math.floor(t * self.world.fps + 1e-6)), self.world.num_frames - 1)

    def describe(self, i: int, f: int) -> str:
        texture = ["solid", "striped", "dotted"][self.world.texture[i]]
        shape = ["circle", "square", "triangle", "diamond"][self.world.shape[i]]
        return f"{COLORS[self.world.color[i, f]]} {'' if texture == 'solid' else texture + ' '}{shape}"


def truth_readings(tr: Truth, spec: dict, j: int) -> set[str]:
    """The answers a viewer could give if j were the target (the rules in the question text)."""
    w, acts, kind = tr.world, tr.actions[j], spec["kind"]
    fps = w.fps
    if kind == "color_at":
        f = tr.frame(spec["t"])
        return {COLORS[w.color[j, f]]} if tr.vis_px[j, f] > 0 else set()
    if kind == "turn_color":
        return {a["phrase"].split()[-1] for a in acts if a["kind"] == "turn"}
    if kind == "enter_side":
        return {a["phrase"].split()[-1] for a in acts if a["kind"] == "enter"}
    if kind == "count":
        return {str(sum(a["kind"] == spec["event"] for a in acts))}
    if kind in ("direction", "sequence"):
        f0 = math.ceil(spec["t0"] * fps - 1e-6)
        f1 = math.floor(spec["t1"] * fps + 1e-6)
        inside = [a for a in acts if (f0 <= a["f0"] <= f1 if a["kind"] == "turn"
                                      else a["f1"] > f0 and a["f0"] < f1)]
        if kind == "direction":
            if not tr.in_frame[j, f0:f1 + 1].all():
                return set()
            return {"it does not move" if a["kind"] == "stop" else
                    " ".join(a["phrase"].split()[1:]) if a["kind"] == "move" else
                    WORDS[{v: k for k, v in FROM_SIDE.items()}[a["phrase"].split()[-1]]]
                    if a["kind"] == "enter" else
                    WORDS[{v: k for k, v in THROUGH.items()}[a["phrase"].split()[-2]]]
                    for a in inside if a["kind"] in ("stop", "move", "enter", "leave")}
        if not inside:
            return set()
        kept = [a for a in inside if a["kind"] == "turn"
                or (min(a["f1"], f1) - max(a["f0"], f0)) / fps >= 0.25]
        return {", then ".join(a["phrase"] for a in inside),
                ", then ".join(a["phrase"] for a in kept)} - {""}
    if kind == "neighbor":
        occ = [i for i, a in enumerate(acts) if a["phrase"] == spec["event"]]
        if spec["ordinal"]:
            occ = occ[spec["ordinal"] - 1:spec["ordinal"]]
        return {acts[i + spec["step"]]["phrase"] for i in occ if 0 <= i + spec["step"] < len(acts)}
    f = tr.frame(spec["t"])
    visible = [i for i in range(w.num_instances) if tr.vis_px[i, f] >= tr.min_px]
    if j not in visible:
        return set()
    if kind == "relation":
        ref = spec["ref"]
        if j == ref:
            return set()
        dx, dy = float(w.cx[j, f] - w.cx[ref, f]), float(w.cy[j, f] - w.cy[ref, f])
        out = set()
        if abs(dx) * 1.5 >= abs(dy):
            out.add("to the left of it" if dx < 0 else "to the right of it")
        if abs(dy) * 1.5 >= abs(dx):
            out.add("above it" if dy < 0 else "below it")
        return out
    if kind == "nearest":
        d = {i: math.dist((w.cx[i, f], w.cy[i, f]), (w.cx[j, f], w.cy[j, f]))
             for i in visible if i != j}
        return {tr.describe(i, f) for i in d if d[i] <= 1.25 * min(d.values())} if d else set()
    raise AssertionError(f"unknown spec kind {kind}")
