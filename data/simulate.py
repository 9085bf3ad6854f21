"""Samples a World from a seed: instances, their plans of actions, and per-frame tracks.

Why plans first: questions need clean, nameable events (moves, stops, color changes, entering
and leaving the frame). Each instance follows a sequence of constant-velocity moves and pauses;
color and size change only during pauses, so every frame-level change maps to exactly one
Action. Rules that keep the events separable from the tracks alone:
- consecutive moves differ in direction (also around enter/leave), and an instance that starts
  in the frame starts by moving;
- pauses and moves last at least `segment_seconds[0]`; color flips inside a pause;
- all timing is in whole frames, so every change happens exactly on a frame and a pair of
  consecutive frames never straddles two segments;
- enter/leave are axis-aligned moves from fully outside to fully inside (and back); between
  them the instance is parked far off-frame at (-3W, -3H).
"""
from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from seeker_jax.data.world import (COLOR_NAMES, DIRECTIONS, EXTENT, SHAPES, TEXTURES, Action,
                                   World)


class _Plan:
    """Keyframes (t, x, y, size) and color changes for one instance, built left to right."""

    def __init__(self, t: float, x: float, y: float, s: float, color: int):
        self.keys = [(t, x, y, s)]
        self.colors = [(t, color)]
        self.actions: list[Action] = []

    @property
    def last(self) -> tuple[float, float, float, float]:
        return self.keys[-1]

    def add(self, t: float, x: float, y: float, s: float) -> None:
        self.keys.append((t, x, y, s))


def _inside(x: float, y: float, s: float, w: int, h: int, margin: float = 2.0) -> bool:
    r = s * EXTENT + margin
    return r <= x <= w - r and r <= y <= h - r


def _plan_instance(cfg: ml_collections.ConfigDict, w: int, h: int, seconds: float,
                   rng: np.random.Generator) -> _Plan:
    wc = cfg.world
    fps = float(cfg.video.fps)
    lo, hi = (max(2, int(round(v * fps))) for v in wc.segment_seconds)  # in frames
    seconds = int(round(seconds * fps)) - 1  # the plan runs to the last frame's index
    size = float(rng.uniform(*wc.size_frac)) * h
    color = int(rng.integers(len(COLOR_NAMES)))
    outside = bool(rng.random() < wc.p_start_outside)
    if outside:
        plan = _Plan(0.0, -3 * w, -3 * h, size, color)  # parked far away
    else:
        r = size * EXTENT + 3
        plan = _Plan(0.0, float(rng.uniform(r, w - r)), float(rng.uniform(r, h - r)), size, color)
    last_dir = ""
    while True:
        t, x, y, s = plan.last
        t = float(np.ceil(t - 1e-6))  # back on the frame grid after parking at L + 1e-3
        left = seconds - t
        if left <= 1e-6:
            break
        speed = float(rng.uniform(*wc.speed_frac)) * w / fps  # pixels per frame
        if outside:  # wait, then enter through a random side, or stay out to the end
            wait = int(rng.integers(lo, hi + 1))
            direction = str(rng.choice(["left", "right", "up", "down"]))
            ux, uy = DIRECTIONS[direction]
            r = s * EXTENT + 1
            dest_x = float(rng.uniform(r + 2, w - r - 2)) if ux == 0 else (
                float(rng.uniform(r + 2, w * 0.4)) if ux > 0 else float(rng.uniform(w * 0.6, w - r - 2)))
            dest_y = float(rng.uniform(r + 2, h - r - 2)) if uy == 0 else (
                float(rng.uniform(r + 2, h * 0.4)) if uy > 0 else float(rng.uniform(h * 0.6, h - r - 2)))
            start_x = dest_x if ux == 0 else (-r if ux > 0 else w + r)
            start_y = dest_y if uy == 0 else (-r if uy > 0 else h + r)
            dist = abs(dest_x - start_x) + abs(dest_y - start_y)
            dur = max(int(np.ceil(dist / speed)), lo)
            if wait + dur + lo > left:
                plan.add(seconds, x, y, s)
                break
            plan.add(t + wait - 1e-3, x, y, s)  # teleport between two off-frame positions
            plan.add(t + wait, start_x, start_y, s)
            plan.add(t + wait + dur, dest_x, dest_y, s)
            plan.actions.append(Action("enter", t + wait, t + wait + dur, direction))
            outside, last_dir = False, direction
            continue
        first = not plan.actions
        can_pause = not first and plan.actions[-1].kind not in ("stop", "grow", "shrink", "turn")
        dur = int(rng.integers(lo, hi + 1))
        if left - dur < lo:  # the last segment runs to the end
            dur = left
        roll = rng.random()
        if roll < wc.p_leave and not first and left > 2 * hi:
            edges = {"left": x, "right": w - x, "up": y, "down": h - y}
            for direction in sorted(edges, key=edges.get):
                if direction == last_dir:
                    continue
                ux, uy = DIRECTIONS[direction]
                r = s * EXTENT + 1
                end_x = x if ux == 0 else (-r if ux < 0 else w + r)
                end_y = y if uy == 0 else (-r if uy < 0 else h + r)
                ldur = max(int(np.ceil((abs(end_x - x) + abs(end_y - y)) / speed)), lo)
                if ldur <= left - lo:
                    plan.add(t + ldur, end_x, end_y, s)
                    plan.add(t + ldur + 1e-3, -3 * w, -3 * h, s)  # parked far away
                    plan.actions.append(Action("leave", t, t + ldur, direction))
                    outside, last_dir = True, ""
                    break
            if outside:
                continue
        if can_pause and roll < wc.p_leave + wc.p_pause:
            _plan_pause(plan, cfg, w, h, dur, rng)
            last_dir = ""
            continue
        moved = False
        for direction in rng.permutation(list(DIRECTIONS)):
            if direction == last_dir:
                continue
            ux, uy = DIRECTIONS[direction]
            for d in (dur, min(lo, dur)) if left - lo >= lo else (dur,):
                nx, ny = x + ux * speed * d, y + uy * speed * d
                if _inside(nx, ny, s, w, h):
                    plan.add(t + d, nx, ny, s)
                    plan.actions.append(Action("move", t, t + d, str(direction)))
                    last_dir, moved = str(direction), True
                    break
            if moved:
                break
        if not moved:  # boxed in: pause, or make the pause it is in longer
            plan.add(t + dur, x, y, s)
            if can_pause:
                plan.keys.pop()
                _plan_pause(plan, cfg, w, h, dur, rng)
            elif first:
                plan.actions.append(Action("stop", t, t + dur))
            else:
                i = max(i for i, a in enumerate(plan.actions) if a.kind == "stop")
                plan.actions[i] = dataclasses.replace(plan.actions[i], t1=t + dur)
            last_dir = ""
    return plan


def _plan_pause(plan: _Plan, cfg: ml_collections.ConfigDict, w: int, h: int, dur: int,
                rng: np.random.Generator) -> None:
    """A stop, maybe with a color flip at 40% of it or a size change over 20%..80% of it."""
    wc = cfg.world
    t, x, y, s = plan.last
    plan.actions.append(Action("stop", t, t + dur))
    roll = rng.random()
    if roll < wc.p_recolor:
        old = plan.colors[-1][1]
        new = int(rng.choice([c for c in range(len(COLOR_NAMES)) if c != old]))
        tc = t + max(1, int(round(0.4 * dur)))
        plan.colors.append((tc, new))
        plan.actions.append(Action("turn", tc, tc, COLOR_NAMES[new]))
        plan.add(t + dur, x, y, s)
        return
    if roll < wc.p_recolor + wc.p_resize:
        grow = s * 1.4
        fits = _inside(x, y, grow, w, h) and grow <= max(wc.size_frac) * h * 1.5
        kind, ns = ("grow", grow) if fits and rng.random() < 0.6 else ("shrink", s * 0.7)
        g0, g1 = t + max(1, int(round(0.2 * dur))), t + min(dur - 1, int(round(0.8 * dur)))
        if ns >= min(wc.size_frac) * h * 0.5 and g1 > g0:
            plan.add(g0, x, y, s)
            plan.add(g1, x, y, ns)
            plan.add(t + dur, x, y, ns)
            plan.actions.append(Action(kind, g0, g1))
            return
    plan.add(t + dur, x, y, s)


def simulate(cfg: ml_collections.ConfigDict, rng: np.random.Generator) -> World:
    """Samples a World from `cfg` (configs/synth.py) with `rng`; deterministic given both.

    Every video has `min_kinds`+ shape kinds and each used kind has >= 2 instances, so a shape
    name never singles out the target (a one-instance world has one).
    """
    v, wc = cfg.video, cfg.world
    w, h, fps = int(v.width), int(v.height), int(v.fps)
    num_frames = int(round(v.seconds * fps))
    k = int(rng.integers(wc.min_instances, wc.max_instances + 1))
    n_kinds = max(1, min(wc.min_kinds, k // 2, len(SHAPES)))
    kinds = rng.choice(len(SHAPES), size=n_kinds, replace=False)
    per_kind = min(2, k // n_kinds)  # 2, except in a one-instance world
    shape = np.array(list(kinds) * per_kind
                     + list(rng.choice(kinds, size=k - per_kind * n_kinds)), np.int32)
    shape = rng.permutation(shape)
    texture = rng.integers(len(TEXTURES), size=k).astype(np.int32)
    z = rng.permutation(k).astype(np.int32)
    frames = np.arange(num_frames, dtype=np.float64)
    cx = np.zeros((k, num_frames), np.float32)
    cy, size = np.zeros_like(cx), np.zeros_like(cx)
    color = np.zeros((k, num_frames), np.int8)
    actions = []
    for i in range(k):
        plan = _plan_instance(cfg, w, h, v.seconds, rng)
        keys = np.array(plan.keys, np.float64)
        cx[i] = np.interp(frames, keys[:, 0], keys[:, 1])
        cy[i] = np.interp(frames, keys[:, 0], keys[:, 2])
        size[i] = np.interp(frames, keys[:, 0], keys[:, 3])
        for fc, c in plan.colors:
            color[i, int(round(fc)):] = c
        # Plans count in frames; actions are stored in seconds (frame / fps, exact grid).
        actions.append([dataclasses.replace(a, t0=a.t0 / fps, t1=a.t1 / fps)
                        for a in plan.actions if a.t0 < num_frames - 1])
    occluder = np.full(4, -1, np.int32)
    if wc.occluder:
        bw = max(4, int(0.07 * w))
        x0 = int(rng.integers(int(0.2 * w), int(0.8 * w) - bw))
        occluder = np.array([x0, 0, x0 + bw, h], np.int32)
    background = rng.integers(90, 200, size=(2, 3)).astype(np.uint8)
    return World(width=w, height=h, fps=fps, shape=shape, texture=texture, z=z, cx=cx, cy=cy,
                 size=size, color=color, occluder=occluder, background=background,
                 actions=actions)
