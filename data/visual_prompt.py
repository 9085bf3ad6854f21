"""Draws the 8 VideoSeeker visual prompts on a frame from an instance mask, with their phrases.

Why one renderer: the synthetic world and the 4-stage pipeline (stage 4, on SAM masks of real
videos) must produce the same marks and the same `<target>` phrases, so this module knows
nothing about where a mask came from: a frame (H, W, 3) uint8, the target mask (H, W) bool,
the other instances' masks (only set_of_mark uses them) and an rng.

Every mark is placed so that it can be checked against the mask: the box, ellipse and triangle
enclose it, the contour hugs it from outside, the dot and set-of-mark label sit on its most
interior pixel, the scribble is clipped to it, and the arrow's head touches its boundary.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

PROMPT_TYPES = ("rectangle", "mask_contour", "ellipse", "triangle", "scribble", "point",
                "arrow", "set_of_mark")
MARK_COLORS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 64, 255),
               "yellow": (255, 255, 0)}
PLACEHOLDER = "<target>"
_PHRASES = {
    "rectangle": "the object inside the {color} box",
    "mask_contour": "the object outlined in {color}",
    "ellipse": "the object inside the {color} ellipse",
    "triangle": "the object inside the {color} triangle",
    "scribble": "the object with the {color} scribble on it",
    "point": "the object marked by the {color} dot",
    "arrow": "the object the {color} arrow points to",
    "set_of_mark": "object {label}",
}


@dataclasses.dataclass
class VisualPrompt:
    """A rendered prompt: `image` (H, W, 3) uint8, the phrase that replaces `<target>`, and
    the mark's geometry in pixels (x, y), JSON-serializable, for checks and records."""
    image: np.ndarray
    phrase: str
    prompt_type: str
    color: str
    geometry: dict[str, Any]


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Inclusive pixel box (x0, y0, x1, y1) of a non-empty (H, W) bool mask."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise ValueError("visual prompt: the target mask is empty; pick a frame where the "
                         "target is visible")
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the mask pixel farthest from the mask's boundary (first one on ties)."""
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)


def line_width(shape: tuple[int, ...]) -> int:
    """Stroke width in pixels: 2 at 240p, 1 on tiny frames, growing with the frame."""
    return max(1, round(min(shape[0], shape[1]) / 120))


def fill_placeholder(template: str, phrase: str) -> str:
    """Replaces `<target>` with `phrase`, capitalized where it starts a sentence."""
    def sub(m: re.Match) -> str:
        start = m.start() == 0 or re.search(r"[.?!]\s*$|\n\s*$", template[:m.start()])
        return phrase[0].upper() + phrase[1:] if start else phrase
    return re.sub(re.escape(PLACEHOLDER), sub, template)


def _rectangle(draw, mask, rgb, w, rng):
    x0, y0, x1, y1 = mask_bbox(mask)
    pad = w + 1
    box = [x0 - pad, y0 - pad, x1 + pad, y1 + pad]
    draw.rectangle(box, outline=rgb, width=w)
    return {"box": box}


def _ellipse(draw, mask, rgb, w, rng):
    x0, y0, x1, y1 = mask_bbox(mask)
    cx, cy = (x0 + x1 + 1) / 2, (y0 + y1 + 1) / 2
    # sqrt(2) * half-size passes through the box corners; the pad keeps the stroke off it.
    a = (x1 - x0 + 1) / 2 * 1.4143 + w + 1
    b = (y1 - y0 + 1) / 2 * 1.4143 + w + 1
    draw.ellipse([cx - a, cy - b, cx + a, cy + b], outline=rgb, width=w)
    return {"center": [cx, cy], "axes": [a, b]}


def _triangle(draw, mask, rgb, w, rng):
    """An upward triangle with 60-degree base angles whose sides clear the padded box."""
    x0, y0, x1, y1 = mask_bbox(mask)
    pad = w + 1
    bx0, by0, bx1, by1 = x0 - pad, y0 - pad, x1 + 1 + pad, y1 + 1 + pad
    t = np.sqrt(3.0)
    base_y = by1
    apex = ((bx0 + bx1) / 2, by0 - (bx1 - bx0) / 2 * t)
    left = (bx0 - (base_y - by0) / t, base_y)
    right = (bx1 + (base_y - by0) / t, base_y)
    pts = [apex, right, left]
    draw.polygon([(float(x), float(y)) for x, y in pts], outline=rgb, width=w)
    return {"vertices": [[float(x), float(y)] for x, y in pts]}


def _point(draw, mask, rgb, w, rng):
    x, y = interior_point(mask)
    r = w + 1
    draw.ellipse([x - r, y - r, x + r, y + r], fill=rgb)
    return {"point": [x, y], "radius": r}


def _arrow(draw, mask, rgb, w, rng):
    """Walks from the interior point along a direction to the first pixel off the mask: the
    head's apex sits there, touching the boundary; the shaft goes out towards the frame."""
    h, wd = mask.shape
    px, py = interior_point(mask)
    length = max(8.0, 0.18 * min(h, wd))
    best = None
    for angle in rng.permutation(8) * (np.pi / 4) + np.pi / 8:
        ux, uy = np.cos(angle), np.sin(angle)
        s = 0.0
        while True:
            x, y = int(round(px + ux * s)), int(round(py + uy * s))
            if not (0 <= x < wd and 0 <= y < h and mask[y, x]):
                break
            s += 0.5
        tip = (px + ux * s, py + uy * s)
        tail = (tip[0] + ux * length, tip[1] + uy * length)
        inside = 0 <= tail[0] < wd and 0 <= tail[1] < h
        if inside or best is None:
            best = (tip, tail, ux, uy)
        if inside:
            break
    tip, tail, ux, uy = best
    head = max(3.0, 2.5 * w + 2)
    base = (tip[0] + ux * head, tip[1] + uy * head)
    draw.line([tail, base], fill=rgb, width=w)
    nx, ny = -uy, ux
    draw.polygon([tip, (base[0] + nx * head * 0.6, base[1] + ny * head * 0.6),
                  (base[0] - nx * head * 0.6, base[1] - ny * head * 0.6)], fill=rgb)
    return {"tip": [float(tip[0]), float(tip[1])], "tail": [float(tail[0]), float(tail[1])]}


def _set_of_mark(image: Image.Image, target: np.ndarray, others: Sequence[np.ndarray],
                 rng: np.random.Generator) -> tuple[int, dict[str, Any]]:
    """Numbers every non-empty mask (target included) at its interior point, in random order."""
    masks = [target] + [m for m in others if m.any()]
    labels = rng.permutation(len(masks)) + 1
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    out = {}
    for mask, label in zip(masks, labels):
        x, y = interior_point(mask)
        text = str(int(label))
        l, t, r, b = draw.textbbox((0, 0), text, font=font)
        tw, th = r - l, b - t
        box = [x - tw // 2 - 1, y - th // 2 - 1, x - tw // 2 + tw + 1, y - th // 2 + th + 1]
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((box[0] + 1 - l, box[1] + 1 - t), text, fill=(255, 255, 255), font=font)
        out[text] = {"point": [x, y], "box": box}
    return int(labels[0]), {"labels": out}


def render_visual_prompt(frame: np.ndarray, target_mask: np.ndarray,
                         other_masks: Sequence[np.ndarray] = (),
                         rng: np.random.Generator | None = None,
                         prompt_type: str | None = None,
                         color: str | None = None) -> VisualPrompt:
    """Draws one visual prompt for `target_mask` (H, W) bool on `frame` (H, W, 3) uint8.

    prompt_type: one of PROMPT_TYPES (random if None); color: a MARK_COLORS name (if None,
    one of the two that contrast most with the target's mean colour, so the mark stays
    visible). `other_masks` are the other instances on this frame; set_of_mark labels them too.
    Returns the marked copy of the frame, the phrase for `<target>`, and the mark's geometry.
    """
    rng = np.random.default_rng() if rng is None else rng
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"visual prompt: frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    if target_mask.shape != frame.shape[:2]:
        raise ValueError(f"visual prompt: mask {target_mask.shape} does not match frame {frame.shape[:2]}")
    target_mask = target_mask.astype(bool)
    mask_bbox(target_mask)  # raises on an empty mask
    prompt_type = prompt_type or str(rng.choice(PROMPT_TYPES))
    if prompt_type not in PROMPT_TYPES:
        raise ValueError(f"visual prompt: unknown type {prompt_type!r}; one of {PROMPT_TYPES}")
    if color is None:  # a random one of the two mark colours farthest from the target's
        mean = frame[target_mask].reshape(-1, 3).astype(np.float32).mean(axis=0)
        far = sorted(MARK_COLORS, key=lambda c: -float(np.abs(np.subtract(MARK_COLORS[c], mean)).sum()))
        color = str(rng.choice(far[:2]))
    rgb = MARK_COLORS[color]
    w = line_width(frame.shape)
    image = Image.fromarray(frame)
    if prompt_type == "set_of_mark":
        label, geometry = _set_of_mark(image, target_mask, other_masks, rng)
        return VisualPrompt(np.asarray(image).copy(), _PHRASES[prompt_type].format(label=label),
                            prompt_type, color, {"label": label, **geometry})
    out = np.asarray(image).copy()
    if prompt_type == "mask_contour":
        ring = ndimage.binary_dilation(target_mask, iterations=w) & ~target_mask
        out[ring] = rgb
        geometry = {"width": w}
    elif prompt_type == "scribble":
        inner = ndimage.binary_erosion(target_mask, iterations=w)
        pool = np.argwhere(inner if inner.sum() >= 4 else target_mask)
        pts = pool[rng.choice(len(pool), size=min(len(pool), int(rng.integers(4, 7))), replace=False)]
        order = np.argsort(pts[:, 1] + 0.3 * pts[:, 0])  # sweep left to right
        layer = Image.new("L", image.size, 0)
        ImageDraw.Draw(layer).line([(float(x), float(y)) for y, x in pts[order]], fill=255,
                                   width=w + 1, joint="curve")
        stroke = (np.asarray(layer) > 0) & target_mask
        out[stroke] = rgb
        geometry = {"points": [[int(x), int(y)] for y, x in pts[order]]}
    else:
        draw = ImageDraw.Draw(image)
        fn = {"rectangle": _rectangle, "ellipse": _ellipse, "triangle": _triangle,
              "point": _point, "arrow": _arrow}[prompt_type]
        geometry = fn(draw, target_mask, rgb, w, rng)
        out = np.asarray(image).copy()
    return VisualPrompt(out, _PHRASES[prompt_type].format(color=color), prompt_type, color, geometry)
