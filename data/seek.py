"""The seek world (configs/synth.py:seek_*): a world where the crop decides the answer.

Each video shows one large shape on a gray background. It keeps one color, the base color,
for the whole video except one flash: from k - 0.1 to k + 1.1 s (k a whole second) it shows
another color. k is drawn among the seconds whose flash no overview frame falls in: the
overview (the video in the user turn, sampled as the environment samples it, `seek.
overview_frames` frames over the whole video) shows the base color only. A crop of [k, k + 1]
(the environment's crop: at least 4 frames) shows the flash color on every frame; a crop of the
whole video, capped at the same frame count, shows what the overview shows.

Two kinds of records (`seek.kind`):

- "task": "What color is <target> at k.5 s?"; the answer is the flash color (open, scored by
  rule), the evidence window [k, k + 1]. The scripted teacher is imperfect: on a
  `seek.teacher_right` share of records it crops [k, k + 1] and answers the flash color; on a
  `seek.teacher_wide` share it crops the whole video (too wide); on the rest it crops a 1 s
  window that misses the flash (wrong). After a wide or wrong crop it answers the color its
  crop showed, the base color: wrong. So the SFT model crops, but not well. With
  `seek.restate_time` (configs/synth.py:seek_restate) the crop turn's think first restates the
  time asked about ("About k.5 s."), on every record, whatever window follows, so that the
  copy of k from the question is supervised on all records and the window's start can follow
  a token just written, not one across the prompt (a pilot before protocol 2; the tiny model
  did not learn the copy, docs/results.md). With `seek.fixed_second` (configs/synth.py:seek_fixed, protocol 2)
  every video flashes around that second: the right window is a property of the world, not of
  the question, and the policy need not copy a number from the prompt into its call.
- "perceive": the perception stage's dense supervision, on videos of the same world: "What
  color is <target> from a to a + 1 s?" (the teacher crops exactly that window and names the
  shape and color it shows, flash or base) and "What color is <target>?" (no tool: the overview
  shows the base color). Records state every color they ask about, so the model learns to
  read the color of what it was last shown.

Videos are drawn from `np.random.default_rng([seed, index])`, as data/synth.py's are, so a
world is reproducible from its seed. Frames are rendered without a codec in the loop; the
mp4 is written by data/synth.py:write_mp4.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from PIL import Image

from seeker_jax.data.trajectories import tool_call
from seeker_jax.data.visual_prompt import fill_placeholder, render_visual_prompt
from seeker_jax.data.world import COLORS, COLOR_NAMES, SHAPES, shape_mask
from seeker_jax.env.video import VideoInfo, sample_frame_indices

SOURCE = "seeker-seek"
BACKGROUND = 128
FLASH_MARGIN = 0.1      # the flash starts this much before k and ends this much after k + 1


def overview_times(num_frames: int, fps: int, overview_frames: int) -> np.ndarray:
    """Times (s) of the overview's frames: the environment's whole-video sampling at
    `overview_frames` frames (env/video.py:sample_frame_indices)."""
    info = VideoInfo(num_frames, float(fps), 0, 0)
    idx = sample_frame_indices(info, 0.0, info.duration, 1.0, overview_frames, overview_frames)
    return idx / float(fps)


def flash_seconds(seconds: float, times: np.ndarray) -> list[int]:
    """Whole seconds k whose flash [k - 0.1, k + 1.1] holds no overview frame and ends inside
    the video."""
    out = []
    for k in range(int(seconds)):
        lo, hi = k - FLASH_MARGIN, k + 1 + FLASH_MARGIN
        if lo >= 0 and hi <= seconds and not np.any((times >= lo) & (times <= hi)):
            out.append(k)
    return out


def missing_windows(seconds: float, k: int) -> list[int]:
    """Starts j of 1 s windows [j, j + 1] that miss the flash around k entirely."""
    return [j for j in range(int(seconds)) if j + 1 <= k - FLASH_MARGIN or j >= k + 1 + FLASH_MARGIN]


def render(width: int, height: int, shape: str, cx: float, cy: float, size: float,
           rgb: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One frame (H, W, 3) uint8 and the shape's mask (H, W) bool."""
    ys = np.arange(height, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(width, dtype=np.float32)[None, :] + 0.5
    mask = shape_mask(shape, np.float32(cx), np.float32(cy), np.float32(size), xs, ys)
    frame = np.full((height, width, 3), BACKGROUND, np.uint8)
    frame[mask] = rgb
    return frame, mask


def crop_turn(start: float, end: float, about: str = "") -> str:
    """The teacher's crop turn: a short think naming the window, then the call. `about` (the
    time the question asks about, e.g. "4.5") is restated first when given."""
    restate = f"About {about} s. " if about else ""
    return (f"<think>{restate}I watch {start:.1f} to {end:.1f} s.</think>\n"
            + tool_call("crop_video", video_path="video", start_time=start, end_time=end))


def answer_turn(text: str) -> str:
    """The teacher's last turn."""
    return f"<think>I answer.</think>\n<answer>{text}</answer>"


def make_video_records(cfg: ml_collections.ConfigDict, seed: int, index: int,
                       out: str | Path) -> list[dict[str, Any]]:
    """Draws video `index` of the world, writes its mp4 and marked frame under `out`, and
    returns its records (paths relative to `out`)."""
    from seeker_jax.data.synth import split_of, write_mp4

    out = Path(out)
    rng = np.random.default_rng([seed, index])
    v, s = cfg.video, cfg.seek
    w, h, fps, seconds = int(v.width), int(v.height), int(v.fps), float(v.seconds)
    num_frames = int(round(seconds * fps))
    ks = flash_seconds(seconds, overview_times(num_frames, fps, int(s.overview_frames)))
    if not ks:
        raise ValueError("configs/synth.py seek: no second's flash misses every overview "
                         "frame; lengthen video.seconds or lower seek.overview_frames")
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    base, flash = (COLOR_NAMES[int(i)] for i in rng.choice(len(COLOR_NAMES), 2, replace=False))
    size = float(rng.uniform(*s.size_frac)) * h
    cx = float(rng.uniform(size, w - size))
    cy = float(rng.uniform(size, h - size))
    k = int(rng.choice(ks))
    if s.get("fixed_second") is not None:        # configs/synth.py:seek_fixed (protocol 2)
        if int(s.fixed_second) not in ks:
            raise ValueError(f"configs/synth.py seek.fixed_second: {s.fixed_second}; the "
                             f"overview shows the flash there; use one of {ks}")
        k = int(s.fixed_second)                  # drawn above all the same: one rng stream
    base_frame, mask = render(w, h, shape, cx, cy, size, COLORS[base])
    flash_frame, _ = render(w, h, shape, cx, cy, size, COLORS[flash])
    t = np.arange(num_frames) / fps
    in_flash = (t >= k - FLASH_MARGIN) & (t <= k + 1 + FLASH_MARGIN)
    video_id = f"seek{seed}_{index:06d}"
    video_rel = f"videos/{video_id}.mp4"
    write_mp4(out / video_rel, (flash_frame if f else base_frame for f in in_flash), fps,
              cfg.video.crf, cfg.video.preset)
    vp = render_visual_prompt(base_frame, mask, (), rng, "rectangle")
    frame_rel = f"frames/{video_id}.png"
    Image.fromarray(vp.image).save(out / frame_rel, optimize=False)
    common = {"video_id": video_id, "video_path": video_rel, "duration": round(seconds, 3),
              "source": SOURCE, "frame_path": frame_rel, "dimension": "OA",
              "category": "synthetic", "target_track_id": 0, "prompt_type": "rectangle",
              "prompt_frame_index": 0, "prompt_time": 0.0, "question_form": "open",
              "options": {}, "target_phrase": vp.phrase, "shape": shape, "base_color": base,
              "flash_color": flash, "flash_window": [k - FLASH_MARGIN, k + 1 + FLASH_MARGIN],
              "split": split_of(index, cfg)}
    phrase = vp.phrase
    if s.kind == "task":
        draw = rng.random()
        if draw < s.teacher_right:
            kind, window, seen = "right", (float(k), float(k + 1)), flash
        elif draw < s.teacher_right + s.teacher_wide:
            kind, window, seen = "wide", (0.0, seconds), base
        else:
            j = int(rng.choice(missing_windows(seconds, k)))
            kind, window, seen = "wrong", (float(j), float(j + 1)), base
        question = fill_placeholder(f"What color is <target> at {k}.5 s?", phrase)
        about = f"{k}.5" if s.get("restate_time", False) else ""
        return [{**common, "id": f"{video_id}_q0", "question": question, "answer": flash,
                 "answer_text": flash, "evidence_window": [float(k), float(k + 1)],
                 "teacher_kind": kind, "teacher_window": list(window),
                 "teacher_turns": [crop_turn(*window, about=about), answer_turn(seen)]}]
    if s.kind != "perceive":
        raise ValueError(f"configs/synth.py seek.kind: {s.kind!r}; use task or perceive")
    records = []
    for n in range(int(cfg.questions.per_video)):
        if rng.random() < s.perceive_overview:
            question = fill_placeholder("What color is <target>?", phrase)
            color, window, turns = base, [0.0, seconds], [answer_turn(f"{base} {shape}")]
        else:
            j = k if rng.random() < 0.5 else int(rng.choice(missing_windows(seconds, k)))
            color = flash if j == k else base
            window = [float(j), float(j + 1)]
            question = fill_placeholder(f"What color is <target> from {j} to {j + 1} s?",
                                        phrase)
            turns = [crop_turn(*window), answer_turn(f"{color} {shape}")]
        records.append({**common, "id": f"{video_id}_q{n}", "question": question,
                        "answer": color, "answer_text": color, "evidence_window": window,
                        "teacher_turns": turns})
    return records


__all__ = ["answer_turn", "crop_turn", "flash_seconds", "make_video_records",
           "missing_windows", "overview_times", "render"]
