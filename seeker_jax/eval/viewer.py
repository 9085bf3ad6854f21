"""The episode viewer: finished episodes -> one self-contained `episodes.html` (viewer_page.py
lays it out) and, for TensorBoard, plain text (`episode_text`).

Why frames are re-read here and not stored: results.jsonl keeps each tool call as (round,
name, arguments, error), which is all the environment needs to reproduce what it showed. The
viewer replays each successful call through the sample's own ToolRunner (the same sandbox,
sampling and layout as the episode, so the same frames at the same times) and keeps small
JPEG thumbnails only, within a byte budget (`ImageBudget`); past it, the page says how many
images it left out, and no more video is decoded. Results stay small and a viewer of the
first episodes of a 1,000-question run costs seconds, not a second run.

Who calls it: `seeker_jax.eval.runner.run_eval` (every sample of an eval, `from_result_row`)
and GRPO (a few sampled episodes every `viewer_every` iterations, `from_rollout`).
"""
from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from seeker_jax.env.episode import Episode, EpisodeConfig
from seeker_jax.env.parser import ToolCall
from seeker_jax.env.records import SampleRecord

VIEWER = "episodes.html"
MAX_IMAGE_BYTES = 8 << 20   # eval's default budget for every embedded image together
THUMB_SIDE = 160            # px, the longer side of a returned frame's thumbnail
MARKED_SIDE = 320           # px, the longer side of the visual-prompt frame
FRAMES_PER_CALL = 8         # frames of one call shown (evenly spaced; the page says "k of n")
VERDICTS = ("correct", "partial", "wrong", "unparsed", "error")
GROUP_FIELDS = ("dimension", "prompt_type", "category", "task_type")  # a rollout's filters


@dataclass
class EpisodeView:
    """One episode as the viewer shows it.

    verdict: one of VERDICTS; calls: dicts with round (the 1-based turn that made the call),
    name, arguments, error (results.jsonl's fields; an env CallRecord has them too); groups:
    the figures the sample counts in ({"dimension": "OA", ...}), the page's filters; reward:
    the reward and its parts (GRPO; empty for eval). record, root, frames: where the video and
    the visual-prompt frame(s) are (paths relative to root), None when unreadable.
    """

    id: str
    question: str
    truth: str
    prediction: str | None
    verdict: str
    turns: list[str]
    calls: list[dict]
    end_reason: str = ""
    groups: dict[str, str] = field(default_factory=dict)
    reward: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    record: SampleRecord | None = None
    root: Path | None = None
    frames: tuple[str, ...] = ()


def _call_dict(call: Any) -> dict:
    get = (lambda k: call.get(k)) if isinstance(call, Mapping) else (
        lambda k: getattr(call, k, None))
    return {"round": get("round"), "name": get("name"), "arguments": get("arguments") or {},
            "error": get("error")}


def from_result_row(row: Mapping[str, Any], sample: Any) -> EpisodeView:
    """An eval episode: its results.jsonl line and its `EvalSample` (for the record's root)."""
    record = sample.record
    verdict = ("error" if row.get("error") else "correct" if row.get("correct") else
               "wrong" if row.get("parsed") else "unparsed")
    question = record.question if record else str((row.get("record") or {}).get("question", ""))
    return EpisodeView(str(row["id"]), question, str(row.get("answer") or ""),
                       row.get("prediction"), verdict, list(row.get("turns") or []),
                       [_call_dict(c) for c in row.get("calls") or []],
                       str(row.get("end_reason") or ""), dict(row.get("groups") or {}),
                       error=row.get("error"), record=record, root=Path(sample.root),
                       frames=tuple(sample.frames))


def from_rollout(result: Any, record: Mapping[str, Any], root: str | os.PathLike,
                 score: Mapping[str, float] | None = None, name: str = "") -> EpisodeView:
    """A rollout episode (`seeker_jax.agents.rollout.EpisodeResult`), its record (a dict, paths
    relative to `root`) and its reward parts (`score`: "reward" and each component; accuracy
    1 is correct, between 0 and 1 partial)."""
    from seeker_jax.eval.models import clean_turn

    score = dict(score or {})
    acc = score.get("accuracy")
    verdict = ("error" if getattr(result, "skipped", None) else
               "unparsed" if result.answer is None else
               "wrong" if acc is None or acc <= 0 else "correct" if acc >= 1 else "partial")
    rec = SampleRecord.from_dict(dict(record))
    frame = record.get("frame_path") or ()
    return EpisodeView(name or str(record.get("id", rec.video_id)), rec.question, rec.answer,
                       result.answer, verdict, [clean_turn(t) for t in result.turns],
                       [_call_dict(c) for c in result.calls], result.end_reason,
                       {k: str(record[k]) for k in GROUP_FIELDS if record.get(k) not in
                        (None, "")}, score, getattr(result, "skipped", None), rec, Path(root),
                       tuple(map(str, frame)) if isinstance(frame, (list, tuple)) else
                       (str(frame),))


class ImageBudget:
    """Encodes images as data URLs until one would pass `max_bytes` in all; from then on it
    refuses (None), so the images shown are those of the first episodes, without holes.
    omitted: images refused; calls_left_out: tool calls whose frames were not re-read."""

    def __init__(self, max_bytes: int = MAX_IMAGE_BYTES):
        self.max_bytes, self.used, self.omitted, self.calls_left_out = int(max_bytes), 0, 0, 0

    @property
    def full(self) -> bool:
        return self.used >= self.max_bytes

    def _take(self, url: str) -> str | None:
        if self.used + len(url) > self.max_bytes:
            self.used = max(self.used, self.max_bytes)  # stop here: later images stay out too
            self.omitted += 1
            return None
        self.used += len(url)
        return url

    def image(self, rgb: np.ndarray, side: int) -> str | None:
        """An (H, W, 3) uint8 frame, shrunk to `side` px on its longer side, as a JPEG URL."""
        if self.full:
            self.omitted += 1
            return None
        im = Image.fromarray(np.asarray(rgb, np.uint8)).convert("RGB")
        im.thumbnail((side, side))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=75)
        return self._take("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode())

    def png(self, path: str | os.PathLike) -> str | None:
        """A PNG file (a summary plot) as it is."""
        return self._take("data:image/png;base64," +
                          base64.b64encode(Path(path).read_bytes()).decode())


@dataclass
class Frame:
    url: str | None      # None: left out (budget)
    time: float | None   # seconds on the video's clock; None for a still image


@dataclass
class Shown:
    """The images of one episode: its visual-prompt frame(s), and per call (in order) the
    frames shown, how many it returned, and why none could be re-read (note)."""

    marked: list[Frame] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)  # {"frames", "total", "note"}


def _spaced(n: int, k: int) -> list[int]:
    """k indices of n, evenly spaced, first and last included (all when n <= k)."""
    return list(range(n)) if n <= k else sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def gather(view: EpisodeView, config: EpisodeConfig, budget: ImageBudget,
           per_call: int = FRAMES_PER_CALL) -> Shown:
    """Re-reads the episode's images: the visual-prompt frame(s), and each call that ran
    without error replayed through the sample's ToolRunner (module doc). Never raises on a
    missing or broken file: the call's note says what failed."""
    shown = Shown()
    for frame in view.frames:
        try:
            with Image.open(Path(view.root or ".") / frame) as im:
                rgb = np.asarray(im.convert("RGB"))
            shown.marked.append(Frame(budget.image(rgb, MARKED_SIDE), None))
        except Exception:  # noqa: BLE001 - a broken file is shown as missing, not raised
            pass
    tools = None
    if view.record is not None and view.root is not None:
        tools = Episode(view.record, None, view.root, config).tools
    for call in view.calls:
        entry: dict = {"frames": [], "total": 0, "note": None}
        shown.calls.append(entry)
        if call["error"] or tools is None or call["name"] not in ("crop_video",
                                                                   "view_visual_prompt"):
            continue
        if budget.full:
            entry["note"] = "frames left out: the page's image budget is spent"
            budget.calls_left_out += 1
            continue
        obs = tools.run(ToolCall(call["name"], dict(call["arguments"])))
        if obs.error:
            entry["note"] = f"could not re-read its frames: {obs.error}"
            continue
        entry["total"] = len(obs.frames)
        for i in _spaced(len(obs.frames), per_call):
            entry["frames"].append(Frame(budget.image(obs.frames[i], THUMB_SIDE),
                                         obs.frame_times[i]))
    return shown


def write_viewer(views: Sequence[EpisodeView], config: EpisodeConfig,
                 path: str | os.PathLike, *, title: str, meta: Mapping[str, str] | None = None,
                 plots: Sequence[str | os.PathLike] = (), max_bytes: int = MAX_IMAGE_BYTES,
                 progress: bool = False) -> list[Shown]:
    """Writes the page: the plots that exist (embedded first), then every episode with the
    images the budget allows. Returns what it showed of each episode (for episode_text)."""
    from tqdm import tqdm

    from seeker_jax.eval.viewer_page import render_page

    budget = ImageBudget(max_bytes)
    embedded = [(Path(p).name, budget.png(p)) for p in plots if Path(p).is_file()]
    shown = [gather(v, config, budget) for v in tqdm(views, desc="episodes.html", unit="ep",
                                                     disable=not progress)]
    page = render_page(title, dict(meta or {}), embedded, list(zip(views, shown)), budget)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return shown


def _args(arguments: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in arguments.items())


def episode_text(view: EpisodeView, shown: Shown | None = None) -> str:
    """The episode as plain text (TensorBoard): question, each turn and its calls (with the
    times of the frames they returned when `shown` is given), answer vs truth, reward parts."""
    lines = [f"episode {view.id} [{view.verdict}] end: {view.end_reason}",
             f"question: {view.question}", ""]
    for t, turn in enumerate(view.turns):
        lines += [f"--- turn {t + 1} ---", turn]
        for k, call in enumerate(view.calls):
            if call["round"] != t + 1:
                continue
            lines.append(f">>> {call['name']}({_args(call['arguments'])})")
            if call["error"]:
                lines.append(f"    error: {call['error']}")
            elif shown is not None and k < len(shown.calls):
                entry = shown.calls[k]
                times = [f"{f.time:.1f}s" for f in entry["frames"] if f.time is not None]
                more = (f" ({len(entry['frames'])} of {entry['total']} shown)"
                        if entry["total"] > len(entry["frames"]) else "")
                lines.append(f"    {entry['note']}" if entry["note"] else
                             f"    frames at {', '.join(times)}{more}" if times else
                             "    a still image")
    lines += ["", f"answer: {view.prediction!r}  truth: {view.truth!r}"]
    if view.reward:
        lines.append("reward: " + ", ".join(f"{k}={v:.3f}" for k, v in view.reward.items()))
    if view.error:
        lines.append(f"error: {view.error}")
    return "\n".join(lines)


__all__ = ["EpisodeView", "Frame", "ImageBudget", "MAX_IMAGE_BYTES", "Shown", "VERDICTS",
           "VIEWER", "episode_text", "from_result_row", "from_rollout", "gather", "write_viewer"]
