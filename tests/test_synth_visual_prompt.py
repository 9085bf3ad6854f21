"""Every visual-prompt type, checked pixel by pixel against the ground-truth mask."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from seeker_jax.config import load_config
from seeker_jax.data.simulate import simulate
from seeker_jax.data.visual_prompt import (MARK_COLORS, PROMPT_TYPES, fill_placeholder,
                                           render_visual_prompt)


def _disk(h, w, cx, cy, r):
    yy, xx = np.mgrid[:h, :w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def _cases():
    """(frame, target, others): hand-made masks and masks from a simulated world."""
    h, w = 120, 160
    frame = np.full((h, w, 3), 128, np.uint8)
    blob = _disk(h, w, 60, 60, 14) | _disk(h, w, 75, 66, 9)  # two overlapping disks
    yield frame, blob, [_disk(h, w, 130, 30, 8)]
    yield frame, _disk(h, w, 20, 100, 4), [blob]  # small, near the corner
    world = simulate(load_config("configs/synth.py:default"), np.random.default_rng(3))
    f = world.num_frames // 2
    masks = world.visible_masks(f)
    img = world.render_frame(f)
    for k in range(world.num_instances):
        if masks[k].sum() >= 40:
            yield img, masks[k], [masks[j] for j in range(len(masks)) if j != k and masks[j].any()]


CASES = list(_cases())


def _marks(out, frame, color):
    changed = np.any(out != frame, axis=-1)
    return changed & np.all(out == MARK_COLORS[color], axis=-1)


@pytest.mark.parametrize("prompt_type", PROMPT_TYPES)
def test_mark_lies_on_target(prompt_type):
    for i, (frame, target, others) in enumerate(CASES):
        rng = np.random.default_rng(i)
        vp = render_visual_prompt(frame, target, others, rng, prompt_type)
        assert vp.image.shape == frame.shape and vp.prompt_type == prompt_type
        mark = _marks(vp.image, frame, vp.color)
        ys, xs = np.nonzero(target)
        if prompt_type == "set_of_mark":
            label = vp.geometry["labels"][str(vp.geometry["label"])]
            x, y = label["point"]
            assert target[y, x]  # the target's label sits on the target
            x0, y0, x1, y1 = label["box"]
            assert np.any(vp.image[y, x] != frame[y, x]) and x0 <= x <= x1 and y0 <= y <= y1
            assert len(vp.geometry["labels"]) == 1 + sum(m.any() for m in others)
            assert vp.phrase == f"object {vp.geometry['label']}"
            continue
        assert mark.any(), prompt_type
        if prompt_type == "rectangle":  # the box encloses the mask without touching it
            my, mx = np.nonzero(mark)
            assert mx.min() < xs.min() and mx.max() > xs.max()
            assert my.min() < ys.min() and my.max() > ys.max()
            assert not (mark & target).any()
        elif prompt_type in ("ellipse", "triangle"):  # a ring around the mask
            assert not (mark & target).any()
            px, py = xs + 0.5, ys + 0.5
            if prompt_type == "ellipse":
                (cx, cy), (a, b) = vp.geometry["center"], vp.geometry["axes"]
                assert np.all(((px - cx) / a) ** 2 + ((py - cy) / b) ** 2 < 1)
                pts = np.array([[cx + a * np.cos(t), cy + b * np.sin(t)]
                                for t in np.linspace(0, 2 * np.pi, 720)])
            else:
                v = np.array(vp.geometry["vertices"])
                for i in range(3):  # every mask pixel on the inner side of every edge
                    p0, p1, opp = v[i], v[(i + 1) % 3], v[(i + 2) % 3]
                    side = lambda x, y: (p1[0] - p0[0]) * (y - p0[1]) - (p1[1] - p0[1]) * (x - p0[0])
                    assert np.all(np.sign(side(px, py)) == np.sign(side(*opp)))
                pts = np.concatenate([np.linspace(v[i], v[(i + 1) % 3], 400) for i in range(3)])
            my, mx = np.nonzero(mark)  # drawn pixels follow the outline
            d = np.hypot(mx[:, None] + 0.5 - pts[None, :, 0], my[:, None] + 0.5 - pts[None, :, 1])
            assert d.min(axis=1).max() <= 3
            h, w = target.shape
            inside = (pts[:, 0].min() > 1 and pts[:, 1].min() > 1
                      and pts[:, 0].max() < w - 1 and pts[:, 1].max() < h - 1)
            if inside:
                assert ndimage.binary_fill_holes(mark)[target].all(), prompt_type
        elif prompt_type == "mask_contour":  # hugs the boundary from outside
            assert not (mark & target).any()
            near = ndimage.binary_dilation(target, iterations=2)
            assert near[mark].all()
            boundary = target & ~ndimage.binary_erosion(target, border_value=1)
            assert (ndimage.binary_dilation(mark) & boundary).sum() == boundary.sum()
        elif prompt_type == "scribble":
            assert target[mark].all() and mark.sum() >= 3
        elif prompt_type == "point":
            my, mx = np.nonzero(mark)
            cy, cx = int(round(my.mean())), int(round(mx.mean()))
            assert target[cy, cx]
        elif prompt_type == "arrow":  # the head touches the target; the shaft points away
            dist = ndimage.distance_transform_edt(~target)
            assert dist[mark].min() <= 1.5
            tip = np.array(vp.geometry["tip"])
            my, mx = np.nonzero(mark)
            closest = np.argmin(dist[mark])
            assert np.hypot(mx[closest] - tip[0], my[closest] - tip[1]) <= 4
            assert dist[mark].max() >= 6
            assert (mark & target).sum() <= 0.1 * mark.sum()


def test_phrases_and_placeholder():
    frame = np.zeros((40, 40, 3), np.uint8)
    target = _disk(40, 40, 20, 20, 6)
    vp = render_visual_prompt(frame, target, [], np.random.default_rng(0), "rectangle", "red")
    assert vp.phrase == "the object inside the red box"
    assert (fill_placeholder("<target> moves. Where does <target> go?", vp.phrase)
            == "The object inside the red box moves. Where does the object inside the red box go?")
    red = frame.copy()
    red[target] = (255, 0, 0)
    picked = {render_visual_prompt(red, target, [], np.random.default_rng(i), "point").color
              for i in range(20)}
    assert "red" not in picked  # the mark contrasts with the target
    with pytest.raises(ValueError, match="empty"):
        render_visual_prompt(frame, np.zeros((40, 40), bool), [], np.random.default_rng(0))
