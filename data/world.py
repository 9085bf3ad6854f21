"""A procedural 2-D world of moving instances whose ground truth is exact.

Why: nothing real can be downloaded here, yet every stage (decoding, tools, the pipeline's mask
and prompt steps, rewards) needs videos with known masks, tracks and events. A World is a few
arrays of per-frame parameters; pixels and masks are recomputed from them with the same float32
arithmetic, so a mask loaded from disk is bit-identical to the one the video was drawn from.

Conventions: K instances, T frames; frame f shows time f / fps; pixel (y, x) has its centre at
(x + 0.5, y + 0.5). Instances are drawn in increasing `z`; the static occluder bar is on top.
"""
from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond")
TEXTURES = ("solid", "striped", "dotted")
COLORS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 90, 230),
    "yellow": (235, 205, 40), "purple": (150, 60, 200), "orange": (245, 135, 25),
}
COLOR_NAMES = tuple(COLORS)
_PALETTE = np.array(list(COLORS.values()), np.float32)
# Unit vectors in image coordinates (y grows downwards).
DIRECTIONS = {
    "left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0),
    "up-left": (-0.7071, -0.7071), "up-right": (0.7071, -0.7071),
    "down-left": (-0.7071, 0.7071), "down-right": (0.7071, 0.7071),
}
DIRECTION_WORDS = {
    "left": "left", "right": "right", "up": "up", "down": "down",
    "up-left": "up and to the left", "up-right": "up and to the right",
    "down-left": "down and to the left", "down-right": "down and to the right",
}
# Moving in this direction enters through / leaves through this side.
ENTER_SIDE = {"right": "left", "left": "right", "down": "top", "up": "bottom"}
LEAVE_SIDE = {"left": "left", "right": "right", "up": "top", "down": "bottom"}
EXTENT = 1.25  # every shape lies within EXTENT * size of its centre (max-norm)


@dataclasses.dataclass(frozen=True)
class Action:
    """One thing an instance does: kind in move/stop/turn/grow/shrink/enter/leave.

    `value` is the direction (move, enter, leave) or the new color (turn); t0 == t1 for turn.
    """
    kind: str
    t0: float
    t1: float
    value: str = ""

    @property
    def phrase(self) -> str:
        """Third-person verb phrase: 'moves left', 'turns red', 'enters the frame from the top'."""
        if self.kind == "move":
            return f"moves {DIRECTION_WORDS[self.value]}"
        if self.kind == "stop":
            return "stops"
        if self.kind == "turn":
            return f"turns {self.value}"
        if self.kind == "grow":
            return "grows bigger"
        if self.kind == "shrink":
            return "shrinks"
        if self.kind == "enter":
            return f"enters the frame from the {ENTER_SIDE[self.value]}"
        if self.kind == "leave":
            return f"leaves the frame through the {LEAVE_SIDE[self.value]} edge"
        raise ValueError(f"unknown action kind {self.kind!r}")


def shape_mask(shape: str, cx: np.float32, cy: np.float32, size: np.float32,
               xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Inside-test of one shape on pixel centres xs (1, W') and ys (H', 1): bool (H', W')."""
    dx = xs - cx
    dy = ys - cy
    if shape == "circle":
        return dx * dx + dy * dy <= size * size
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= np.float32(0.9) * size
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= np.float32(1.25) * size
    if shape == "triangle":  # apex up at -size, base at +0.8 size
        return (dy <= np.float32(0.8) * size) & (np.abs(dx) * np.float32(1.7320508) <= dy + size)
    raise ValueError(f"unknown shape {shape!r}")


@dataclasses.dataclass
class World:
    """Per-instance parameters (K,) and per-frame tracks (K, T); see the module docstring."""
    width: int
    height: int
    fps: int
    shape: np.ndarray      # (K,) int, index into SHAPES
    texture: np.ndarray    # (K,) int, index into TEXTURES
    z: np.ndarray          # (K,) int, drawing order
    cx: np.ndarray         # (K, T) float32 centre x in pixels
    cy: np.ndarray         # (K, T) float32
    size: np.ndarray       # (K, T) float32 half-size in pixels
    color: np.ndarray      # (K, T) int8, index into COLOR_NAMES
    occluder: np.ndarray   # (4,) int32 x0, y0, x1, y1 (exclusive ends); all -1 when absent
    background: np.ndarray  # (2, 3) uint8 top and bottom colours of the gradient
    actions: list[list[Action]]

    @property
    def num_instances(self) -> int:
        return int(self.cx.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.cx.shape[1])

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def time(self, f: int) -> float:
        return f / self.fps

    def frame_at(self, t: float) -> int:
        """The last frame shown at or before time t (clamped to the video)."""
        return int(min(max(np.floor(t * self.fps + 1e-6), 0), self.num_frames - 1))

    def _bbox(self, k: int, f: int) -> tuple[int, int, int, int] | None:
        r = float(self.size[k, f]) * EXTENT + 1
        x0 = max(int(np.floor(self.cx[k, f] - r)), 0)
        x1 = min(int(np.ceil(self.cx[k, f] + r)) + 1, self.width)
        y0 = max(int(np.floor(self.cy[k, f] - r)), 0)
        y1 = min(int(np.ceil(self.cy[k, f] + r)) + 1, self.height)
        return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None

    def _paint(self, k: int, f: int, out: np.ndarray, rgb: np.ndarray | None) -> None:
        box = self._bbox(k, f)
        if box is None:
            return
        x0, y0, x1, y1 = box
        xs = (np.arange(x0, x1, dtype=np.float32) + np.float32(0.5))[None, :]
        ys = (np.arange(y0, y1, dtype=np.float32) + np.float32(0.5))[:, None]
        cx, cy, s = self.cx[k, f], self.cy[k, f], self.size[k, f]
        m = shape_mask(SHAPES[self.shape[k]], cx, cy, s, xs, ys)
        if rgb is None:
            out[k, y0:y1, x0:x1] = m
            return
        base = _PALETTE[self.color[k, f]]
        texture = TEXTURES[self.texture[k]]
        pix = np.broadcast_to(base, m.shape + (3,)).copy()
        period = max(np.float32(3.0), s * np.float32(0.5))
        if texture == "striped":
            dark = (np.floor((xs - cx - (ys - cy)) / period) % 2) == 1
            pix[dark] *= np.float32(0.55)
        elif texture == "dotted":
            u = (xs - cx) % period - period / 2
            v = (ys - cy) % period - period / 2
            pix[u * u + v * v <= (period * np.float32(0.28)) ** 2] *= np.float32(0.45)
        region = rgb[y0:y1, x0:x1]
        region[m] = pix[m].astype(np.uint8)

    def full_masks(self, f: int) -> np.ndarray:
        """(K, H, W) bool: each instance's shape clipped to the frame, ignoring occlusion."""
        out = np.zeros((self.num_instances, self.height, self.width), bool)
        for k in range(self.num_instances):
            self._paint(k, f, out, None)
        return out

    def visible_masks(self, f: int, full: np.ndarray | None = None) -> np.ndarray:
        """(K, H, W) bool: the pixels where each instance is what the frame shows."""
        full = self.full_masks(f) if full is None else full
        vis = full.copy()
        covered = self.occluder_mask()
        for k in np.argsort(-self.z, kind="stable"):  # top first
            vis[k] &= ~covered
            covered = covered | full[k]
        return vis

    def occluder_mask(self) -> np.ndarray:
        """(H, W) bool: the static foreground bar."""
        m = np.zeros((self.height, self.width), bool)
        x0, y0, x1, y1 = (int(v) for v in self.occluder)
        if x0 >= 0:
            m[y0:y1, x0:x1] = True
        return m

    def render_background(self) -> np.ndarray:
        """(H, W, 3) uint8: a vertical gradient, the same on every frame."""
        w = np.linspace(0.0, 1.0, self.height, dtype=np.float32)[:, None, None]
        top, bottom = self.background.astype(np.float32)
        grad = (1 - w) * top + w * bottom
        return np.broadcast_to(grad, (self.height, self.width, 3)).astype(np.uint8)

    def render_frame(self, f: int, background: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8: the frame f exactly as encoded into the video."""
        rgb = (self.render_background() if background is None else background).copy()
        for k in np.argsort(self.z, kind="stable"):
            self._paint(int(k), f, None, rgb)
        x0, y0, x1, y1 = (int(v) for v in self.occluder)
        if x0 >= 0:
            rgb[y0:y1, x0:x1] = (90, 90, 96)
            rgb[y0:y1, x0:x0 + 1] = rgb[y0:y1, x1 - 1:x1] = (40, 40, 44)
        return rgb

    def in_frame(self) -> np.ndarray:
        """(K, T) bool: whether any pixel of the shape lies in the frame (occlusion ignored)."""
        out = np.zeros((self.num_instances, self.num_frames), bool)
        for f in range(self.num_frames):
            out[:, f] = self.full_masks(f).any(axis=(1, 2))
        return out

    def describe(self, k: int, f: int) -> str:
        """A text description of instance k at frame f: 'red striped circle'."""
        texture = TEXTURES[self.texture[k]]
        pattern = "" if texture == "solid" else f"{texture} "
        return f"{COLOR_NAMES[self.color[k, f]]} {pattern}{SHAPES[self.shape[k]]}"

    # ---- storage: a compressed .npz of the parameters; masks are recomputed exactly ----

    def to_bytes(self) -> bytes:
        """An .npz (np.load reads it) with fixed zip timestamps, so equal worlds give equal
        bytes (np.savez_compressed stamps the current time)."""
        arrays = dict(
            width=self.width, height=self.height, fps=self.fps, shape=self.shape,
            texture=self.texture, z=self.z, cx=self.cx, cy=self.cy, size=self.size,
            color=self.color, occluder=self.occluder, background=self.background,
            actions=np.array(json.dumps([[dataclasses.astuple(a) for a in acts]
                                         for acts in self.actions])))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, value in arrays.items():
                npy = io.BytesIO()
                np.lib.format.write_array(npy, np.asarray(value), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                zf.writestr(info, npy.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
        return buf.getvalue()

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> "World":
        """Reads a tracks file written by `save` (np.load of the compressed params)."""
        with np.load(path) as d:
            kw: dict[str, Any] = {k: d[k] for k in d.files}
        actions = [[Action(*a) for a in acts] for acts in json.loads(str(kw.pop("actions")))]
        for k in ("width", "height", "fps"):
            kw[k] = int(kw[k])
        return cls(actions=actions, **kw)
