"""Questions about ONE instance of a World, answered from its ground truth.

Why "readings": a question is only worth asking if the visual prompt is needed to answer it.
For every kind of question, `readings(ctx, spec, j)` gives the set of answers a careful viewer
could give if instance j were the target (empty: the question makes no sense for j). A
candidate is kept only if the target has exactly one reading and no other instance has the
target's answer among its readings, so the text alone never singles the answer out.

Dimensions (V2P-Bench): OA object attribute (color at a time, color it turns into), OD object
direction (direction in a window, side it enters through), FT / RT forward / reverse temporal
(what it does right after / before an event), AS action sequence (its actions in a window, in
order), SR spatial relationship (relative to a described object, nearest object), GC general
counting (stops, color changes, entries, exits).

Times in questions have one decimal; "between t0 and t1" means the frames whose time lies in
[t0, t1], so the question text fully defines the answer.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable

import numpy as np

from seeker_jax.data.world import COLOR_NAMES, DIRECTION_WORDS, ENTER_SIDE, Action, World

STILL = "it does not move"
RELATIONS = ("to the left of it", "to the right of it", "above it", "below it")
COUNT_EVENTS = {"stop": "stop", "turn": "change color", "enter": "enter the frame",
                "leave": "leave the frame"}
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth")


@dataclasses.dataclass
class Context:
    """What question generators read: the world plus per-frame visibility (K, T)."""
    world: World
    visible_px: np.ndarray   # (K, T) int: visible (occlusion-aware) pixels per frame
    full_px: np.ndarray      # (K, T) int: in-frame pixels ignoring occlusion
    min_visible_px: int
    color_stable_s: float = 0.0  # > 0: "color at T" only where the color holds for T +- this

    @classmethod
    def build(cls, world: World, min_visible_px: int, color_stable_s: float = 0.0) -> "Context":
        k, t = world.num_instances, world.num_frames
        vis, full = np.zeros((k, t), np.int32), np.zeros((k, t), np.int32)
        for f in range(t):
            fm = world.full_masks(f)
            full[:, f] = fm.sum(axis=(1, 2))
            vis[:, f] = world.visible_masks(f, fm).sum(axis=(1, 2))
        return cls(world, vis, full, min_visible_px, float(color_stable_s))

    def visible(self, j: int, f: int) -> bool:
        return bool(self.visible_px[j, f] >= self.min_visible_px)

    def color_holds(self, j: int, f: int) -> bool:
        """Instance j has frame f's color in every frame within color_stable_s of it (and one
        frame more: the question's time is f's, rounded to 0.1 s)."""
        r = int(np.ceil(self.color_stable_s * self.world.fps)) + 1
        colors = self.world.color[j, max(0, f - r):f + r + 1]
        return bool((colors == self.world.color[j, f]).all())


@dataclasses.dataclass
class Question:
    """A question with `<target>` in `template`; `spec` defines it for every instance."""
    dimension: str
    template: str
    answer: str
    spec: dict[str, Any]
    evidence: tuple[float, float]
    distractors: list[str]   # other instances' readings first, then plausible fillers


def window_frames(world: World, t0: float, t1: float) -> tuple[int, int]:
    """First and last frame whose time lies in [t0, t1]."""
    return int(np.ceil(t0 * world.fps - 1e-6)), int(np.floor(t1 * world.fps + 1e-6))


def _in_window(a: Action, t0: float, t1: float) -> bool:
    if a.kind == "turn":
        return t0 <= a.t0 <= t1
    return a.t1 > t0 + 1e-9 and a.t0 < t1 - 1e-9


def _occurrences(actions: list[Action], phrase: str) -> list[int]:
    return [i for i, a in enumerate(actions) if a.phrase == phrase]


# ---- readings: the answer(s) for instance j; one function per spec kind ----

def _r_color_at(ctx: Context, spec: dict, j: int) -> set[str]:
    f = ctx.world.frame_at(spec["t"])
    return {COLOR_NAMES[ctx.world.color[j, f]]} if ctx.visible_px[j, f] > 0 else set()


def _r_turn_color(ctx: Context, spec: dict, j: int) -> set[str]:
    turns = [a.value for a in ctx.world.actions[j] if a.kind == "turn"]
    return {turns[0]} if len(turns) == 1 else set(turns)


def _r_direction(ctx: Context, spec: dict, j: int) -> set[str]:
    w = ctx.world
    f0, f1 = window_frames(w, spec["t0"], spec["t1"])
    if ctx.full_px[j, f0:f1 + 1].min() == 0:
        return set()
    acts = [a for a in w.actions[j] if a.kind in ("move", "enter", "leave", "stop")
            and _in_window(a, f0 / w.fps, f1 / w.fps)]
    # Several segments in the window: each of them is a fair reading.
    return {STILL if a.kind == "stop" else DIRECTION_WORDS[a.value] for a in acts}


def _r_enter_side(ctx: Context, spec: dict, j: int) -> set[str]:
    return {ENTER_SIDE[a.value] for a in ctx.world.actions[j] if a.kind == "enter"}


def _r_neighbor(ctx: Context, spec: dict, j: int) -> set[str]:
    """ordinal 0: the question names no ordinal, so every occurrence is a fair reading."""
    acts = ctx.world.actions[j]
    occ = _occurrences(acts, spec["event"])
    step, n = spec["step"], spec["ordinal"]
    if n > 0:
        occ = occ[n - 1:n]
    return {acts[i + step].phrase for i in occ if 0 <= i + step < len(acts)}


def _r_sequence(ctx: Context, spec: dict, j: int) -> set[str]:
    w = ctx.world
    f0, f1 = window_frames(w, spec["t0"], spec["t1"])
    t0, t1 = f0 / w.fps, f1 / w.fps
    acts = [a for a in w.actions[j] if _in_window(a, t0, t1)]
    if not acts:
        return set()
    strict = ", then ".join(a.phrase for a in acts)
    # Slivers (< 0.25 s inside the window) are easy to miss: reading without them is also fair.
    kept = [a for a in acts if a.kind == "turn" or min(a.t1, t1) - max(a.t0, t0) >= 0.25]
    return {strict, ", then ".join(a.phrase for a in kept)} - {""}


def _r_relation(ctx: Context, spec: dict, j: int) -> set[str]:
    w, ref = ctx.world, spec["ref"]
    f = w.frame_at(spec["t"])
    if j == ref or not ctx.visible(j, f):
        return set()
    dx = float(w.cx[j, f] - w.cx[ref, f])
    dy = float(w.cy[j, f] - w.cy[ref, f])
    out = set()
    if abs(dx) >= abs(dy) / 1.5:
        out.add(RELATIONS[0] if dx < 0 else RELATIONS[1])
    if abs(dy) >= abs(dx) / 1.5:
        out.add(RELATIONS[2] if dy < 0 else RELATIONS[3])
    return out


def _r_nearest(ctx: Context, spec: dict, j: int) -> set[str]:
    w = ctx.world
    f = w.frame_at(spec["t"])
    others = [i for i in range(w.num_instances) if i != j and ctx.visible(i, f)]
    if not ctx.visible(j, f) or not others:
        return set()
    d = {i: float(np.hypot(w.cx[i, f] - w.cx[j, f], w.cy[i, f] - w.cy[j, f])) for i in others}
    best = min(d.values())
    return {w.describe(i, f) for i in others if d[i] <= 1.25 * best}


def _r_count(ctx: Context, spec: dict, j: int) -> set[str]:
    n = sum(a.kind == spec["event"] for a in ctx.world.actions[j])
    return {str(n)}


READINGS: dict[str, Callable[[Context, dict, int], set[str]]] = {
    "color_at": _r_color_at, "turn_color": _r_turn_color, "direction": _r_direction,
    "enter_side": _r_enter_side, "neighbor": _r_neighbor, "sequence": _r_sequence,
    "relation": _r_relation, "nearest": _r_nearest, "count": _r_count,
}


def answer_of(ctx: Context, spec: dict, j: int) -> str | None:
    """The answer if instance j were the target, or None when not exactly one reading."""
    r = READINGS[spec["kind"]](ctx, spec, j)
    return next(iter(r)) if len(r) == 1 else None


# ---- generators: propose a spec for target k; `ask` checks it and builds the Question ----

def _t(x: float) -> float:
    return round(float(x), 1)


def _gen_color_at(ctx, k, rng, prompt_f):
    w = ctx.world
    frames = [f for f in range(w.num_frames) if ctx.visible(k, f)
              and (not ctx.color_stable_s or ctx.color_holds(k, f))]
    if not frames:
        return None
    differ = [f for f in frames if w.color[k, f] != w.color[k, prompt_f]]
    f = int(rng.choice(differ or frames))
    t = _t(w.time(f))
    if w.frame_at(t) != f and not ctx.visible(k, w.frame_at(t)):
        return None
    return ("OA", f"What color is <target> at {t:.1f} s?", {"kind": "color_at", "t": t},
            (max(0.0, t - 0.5), t + 0.5), list(COLOR_NAMES))


def _gen_turn_color(ctx, k, rng, prompt_f):
    turns = [a for a in ctx.world.actions[k] if a.kind == "turn"]
    if len(turns) != 1:
        return None
    return ("OA", "What color does <target> turn into when it changes color?",
            {"kind": "turn_color"}, (turns[0].t0 - 1.0, turns[0].t0 + 1.0), list(COLOR_NAMES))


def _gen_direction(ctx, k, rng, prompt_f):
    moves = [a for a in ctx.world.actions[k] if a.kind == "move" and a.t1 - a.t0 >= 0.6]
    if not moves:
        return None
    a = moves[int(rng.integers(len(moves)))]
    t0, t1 = np.ceil(a.t0 * 10 + 0.5) / 10, np.floor(a.t1 * 10 - 0.5) / 10
    if t1 - t0 < 0.4:
        return None
    return ("OD", f"In which direction does <target> move between {t0:.1f} s and {t1:.1f} s?",
            {"kind": "direction", "t0": _t(t0), "t1": _t(t1)}, (t0, t1),
            list(DIRECTION_WORDS.values()) + [STILL])


def _gen_enter_side(ctx, k, rng, prompt_f):
    enters = [a for a in ctx.world.actions[k] if a.kind == "enter"]
    if len(enters) != 1:
        return None
    return ("OD", "From which side does <target> enter the frame?", {"kind": "enter_side"},
            (enters[0].t0, enters[0].t1), ["left", "right", "top", "bottom"])


def _neighbor(ctx, k, rng, step):
    acts = ctx.world.actions[k]
    idx = [i for i in range(len(acts)) if 0 <= i + step < len(acts)]
    if not idx:
        return None
    i = int(rng.choice(idx))
    event = acts[i].phrase
    ordinal = _occurrences(acts, event).index(i) + 1
    if len(_occurrences(acts, event)) == 1:
        ordinal, when = 0, event
    else:
        when = f"{event} for the {ORDINALS[ordinal - 1]} time"
    word = "after" if step > 0 else "before"
    a, b = sorted([acts[i], acts[i + step]], key=lambda x: x.t0)
    pool = sorted({x.phrase for acts_j in ctx.world.actions for x in acts_j} - {event})
    return ("FT" if step > 0 else "RT", f"What does <target> do right {word} it {when}?",
            {"kind": "neighbor", "event": event, "ordinal": ordinal, "step": step},
            (a.t0, b.t1), pool)


def _gen_next(ctx, k, rng, prompt_f):
    return _neighbor(ctx, k, rng, +1)


def _gen_prev(ctx, k, rng, prompt_f):
    return _neighbor(ctx, k, rng, -1)


def _gen_sequence(ctx, k, rng, prompt_f):
    acts = ctx.world.actions[k]
    n = int(rng.integers(2, 4))
    starts = [i for i in range(len(acts) - n + 1) if acts[i].kind != "turn"]
    if not starts:
        return None
    i = int(rng.choice(starts))
    chunk = acts[i:i + n]
    t0, t1 = chunk[0].t0, max(a.t1 for a in chunk)
    if i + n < len(acts) and acts[i + n].kind == "turn" and acts[i + n].t0 <= t1:
        return None
    # An instance entering from outside has actions from before 0 s: the window starts at 0.
    t0q = max(0.0, float(np.ceil(t0 * 10 - 1e-6) / 10))
    t1q = float(np.floor(t1 * 10 + 1e-6) / 10)
    phrases = [a.phrase for a in chunk]
    perms = [", then ".join(p) for p in itertools.permutations(phrases)]
    return ("AS", f"What does <target> do between {t0q:.1f} s and {t1q:.1f} s? List its "
                  "actions in order.", {"kind": "sequence", "t0": _t(t0q), "t1": _t(t1q)},
            (t0q, t1q), perms[1:])


def _gen_relation(ctx, k, rng, prompt_f):
    w = ctx.world
    f = int(rng.choice([f for f in range(w.num_frames) if ctx.visible(k, f)]))
    t = _t(w.time(f))
    f = w.frame_at(t)
    refs = [i for i in range(w.num_instances) if i != k and ctx.visible(i, f)]
    descs = [w.describe(i, f) for i in range(w.num_instances) if ctx.full_px[i, f] > 0]
    refs = [i for i in refs if descs.count(w.describe(i, f)) == 1]
    if not refs or not ctx.visible(k, f):
        return None
    ref = int(rng.choice(refs))
    return ("SR", f"At {t:.1f} s, where is <target> relative to the {w.describe(ref, f)}?",
            {"kind": "relation", "t": t, "ref": ref}, (max(0.0, t - 0.5), t + 0.5),
            list(RELATIONS))


def _gen_nearest(ctx, k, rng, prompt_f):
    w = ctx.world
    f = int(rng.choice([f for f in range(w.num_frames) if ctx.visible(k, f)]))
    t = _t(w.time(f))
    f = w.frame_at(t)
    descs = [w.describe(i, f) for i in range(w.num_instances) if ctx.full_px[i, f] > 0]
    if len(set(descs)) != len(descs) or len(descs) < 3:
        return None
    return ("SR", f"At {t:.1f} s, which object is closest to <target>?",
            {"kind": "nearest", "t": t}, (max(0.0, t - 0.5), t + 0.5), descs)


def _gen_count(ctx, k, rng, prompt_f):
    event = str(rng.choice(list(COUNT_EVENTS)))
    return ("GC", f"How many times does <target> {COUNT_EVENTS[event]}?",
            {"kind": "count", "event": event}, (0.0, ctx.world.duration),
            [str(i) for i in range(6)])


GENERATORS: dict[str, list[Callable]] = {
    "OA": [_gen_color_at, _gen_turn_color], "OD": [_gen_direction, _gen_enter_side],
    "FT": [_gen_next], "RT": [_gen_prev], "AS": [_gen_sequence],
    "SR": [_gen_relation, _gen_nearest], "GC": [_gen_count],
}


def ask(ctx: Context, k: int, dimension: str, rng: np.random.Generator,
        prompt_frame: int) -> Question | None:
    """One checked question of `dimension` about instance k, or None if this try failed.

    The answer needs the visual prompt: the target has one reading, and no other instance's
    readings contain it.
    """
    gens = GENERATORS[dimension]
    proposal = gens[int(rng.integers(len(gens)))](ctx, k, rng, prompt_frame)
    if proposal is None:
        return None
    dim, template, spec, (e0, e1), pool = proposal
    answer = answer_of(ctx, spec, k)
    if answer is None:
        return None
    others: list[str] = []
    for j in range(ctx.world.num_instances):
        if j == k:
            continue
        r = READINGS[spec["kind"]](ctx, spec, j)
        if answer in r:
            return None
        others += sorted(r)
    distractors = list(dict.fromkeys(o for o in others + list(pool) if o != answer))
    duration = ctx.world.duration
    evidence = (round(max(0.0, e0), 2), round(min(duration, max(e1, e0 + 0.5)), 2))
    return Question(dim, template, answer, spec, evidence, distractors)
