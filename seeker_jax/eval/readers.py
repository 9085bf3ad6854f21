"""Benchmark files -> `EvalSample`s: V2P-Bench records, Video-MME's JSON, our synthetic records.

Why a reader per format, and why an unreadable record is a sample and not an exception: a
benchmark's accuracy is over ALL its questions. A record that lacks a field or names a missing
file becomes an `EvalSample` with `error` set (the message names the record); the runner
scores it wrong and counts it, so a broken file can never raise the accuracy by shrinking the
denominator.

Videos and frames live under separate roots (V2P-Bench ships `videos/` and `frames/`). The
episode's sandbox has one root, so each sample's paths are rewritten relative to the common
folder of the two roots (`root`); with both roots the data file's folder (the default) the
paths stay as written.

V2P-Bench (data/*.jsonl of gaotiexinqu/V2P-Bench): video_id, video_path, duration (s),
question (options inside), answer (a letter), source, frame_path (a string or a list),
dimension and category (integer codes; dimension names in DIMENSIONS).
Video-MME (its released JSON): a list of videos, each with video_id, videoID (the file stem),
duration ("short" / "medium" / "long"), domain, sub_category, and questions: [{question_id,
task_type, question, options ["A. ...", ...], answer}].
Synthetic (our data/synth.py records as .json / .jsonl, or a dataset split's ArrayRecord
file ROOT/records/SPLIT.array_record, paths relative to ROOT): V2P fields plus prompt_type.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from seeker_jax.data.schema import DIMENSIONS, RecordError, normalize_dimension, validate_record
from seeker_jax.env.records import SampleRecord

# V2P-Bench's duration buckets (eval.py: durations = [0, 240, 1800, 7200], `<` comparisons).
SHORT_S, MEDIUM_S = 240.0, 1800.0


def duration_bucket(seconds: float | None) -> str:
    """"short" (< 240 s), "medium" (< 1800 s), "long", as V2P-Bench's eval.py splits them."""
    if seconds is None:
        return "unknown"
    return "short" if seconds < SHORT_S else "medium" if seconds < MEDIUM_S else "long"


@dataclass(frozen=True)
class Roots:
    """video: where video paths start; frame: where frame paths start."""

    video: Path
    frame: Path

    @property
    def common(self) -> Path:
        return Path(os.path.commonpath([self.video.resolve(), self.frame.resolve()]))


@dataclass(frozen=True)
class EvalSample:
    """One question. record: what episodes are built from (paths relative to `root`), None
    when the record could not be read; frames: its visual-prompt frame(s), relative to root;
    groups: the figures it counts in ({"dimension": "OA", "duration": "short", ...});
    options: option texts in letter order (for the robust extractor); error: why it cannot run.
    """

    id: str
    record: SampleRecord | None
    root: Path
    frames: tuple[str, ...] = ()
    groups: dict[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    error: str | None = None

    @property
    def answer(self) -> str:
        return self.record.answer if self.record else ""


class ReadError(ValueError):
    """A whole data file that cannot be read (not JSON, not the expected layout)."""


def _load(path: Path) -> list[Any]:
    if path.suffix == ".array_record":
        return _load_array_record(path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        loaded = json.loads(text)
    except (OSError, ValueError) as e:
        raise ReadError(f"--data {path}: cannot read it as JSON / JSON lines ({e})") from e
    return loaded if isinstance(loaded, list) else [loaded]


def _load_array_record(path: Path) -> list[Any]:
    """The JSON records of one ArrayRecord file (a dataset split: data/records.py)."""
    from seeker_jax.data.records import read_record_file

    try:
        return read_record_file(path)
    except ValueError as e:  # a stored entry that is not JSON
        raise ReadError(f"--data {path}: an entry is not a JSON record ({e})") from e
    except Exception as e:  # the C++ reader raises RuntimeError / OSError on a corrupt file
        raise ReadError(f"--data {path}: cannot read it as an ArrayRecord file ({e})") from e


def dataset_base(path: Path) -> Path:
    """Where a data file's relative paths start: its folder, or for a dataset split
    (ROOT/records/SPLIT.array_record) the dataset root."""
    path = path.resolve()
    if path.suffix == ".array_record" and path.parent.name == "records":
        return path.parent.parent
    return path.parent


def _relative(roots: Roots, base: Path, path: str) -> str:
    """A record path under `base` as a path relative to the common root."""
    return os.path.relpath((base / path).resolve(), roots.common)


def _sample(sid: str, d: dict[str, Any], roots: Roots, required: Iterable[str],
            groups: Callable[[dict], dict[str, str]], options: tuple[str, ...] = ()) -> EvalSample:
    """Checks the record (data/schema.py's EvalRecord and the format's `required` fields) and
    its files, rewrites paths to the common root; errors name the record, the field and the fix."""
    label = f"record {sid}"
    try:
        d = {**d, **validate_record(d, "eval", label, tuple(required))}
    except RecordError as e:
        return EvalSample(sid, None, roots.common, groups=groups(d), error=str(e))
    frames = d.get("frame_path") or []
    frames = [frames] if isinstance(frames, str) else list(frames)
    absent = [str(roots.video / d["video_path"])] if not (roots.video / d["video_path"]).is_file() \
        else []
    absent += [str(roots.frame / f) for f in frames if not (roots.frame / f).is_file()]
    if absent:
        return EvalSample(sid, None, roots.common, groups=groups(d),
                          error=f"{label}: missing file(s) {absent} (check --video-root / "
                                "--frame-root; relative paths start at the data file's folder)")
    rel_frames = tuple(_relative(roots, roots.frame, f) for f in frames)
    fields = {**d, "video_id": str(d.get("video_id", sid)),
              "video_path": _relative(roots, roots.video, d["video_path"]),
              "frame_path": rel_frames[0] if rel_frames else None,
              "answer": str(d.get("answer", "")).strip(),
              "dimension": str(d.get("dimension", "")), "category": str(d.get("category", ""))}
    if len(rel_frames) > 1:
        fields["frame_paths"] = list(rel_frames)
    try:
        record = SampleRecord.from_dict(fields)
    except (ValueError, TypeError) as e:
        return EvalSample(sid, None, roots.common, groups=groups(d), error=f"{label}: {e}")
    return EvalSample(sid, record, roots.common, rel_frames, groups(d), options)


def _v2p_groups(d: dict) -> dict[str, str]:
    try:
        name = normalize_dimension(d.get("dimension")) or "unknown"
    except ValueError:
        name = "unknown"  # the sample is an error (its message lists the allowed values)
    duration = d.get("duration")
    return {"dimension": name, "duration": duration_bucket(
        float(duration) if isinstance(duration, (int, float)) else None)}


def read_v2p(path: Path, roots: Roots) -> list[EvalSample]:
    """V2P-Bench's .jsonl (or a .json list) as released; ids are `{line}:{video_id}`."""
    out = []
    for i, d in enumerate(_load(path)):
        if not isinstance(d, dict):
            out.append(EvalSample(f"{i}", None, roots.common, error=f"record {i}: not an object"))
            continue
        sid = f"{i}:{d.get('video_id', '?')}"
        out.append(_sample(sid, d, roots, ("video_id", "video_path", "duration", "question",
                                           "answer", "frame_path", "dimension"), _v2p_groups))
    return out


def read_videomme(path: Path, roots: Roots) -> list[EvalSample]:
    """Video-MME's JSON: one EvalSample per question; the options go into the question text as
    "A. ..." lines (as released) and the video is `{videoID}.mp4` under the video root."""
    out = []
    for v, video in enumerate(_load(path)):
        stem = video.get("videoID") or video.get("video_id") if isinstance(video, dict) else None
        questions = video.get("questions") if isinstance(video, dict) else None
        if not stem or not isinstance(questions, list):
            out.append(EvalSample(f"video{v}", None, roots.common,
                                  error=f"video {v}: lacks videoID / video_id or questions"))
            continue
        for q, item in enumerate(questions):
            sid = str(item.get("question_id") or f"{stem}-{q}")
            options = tuple(str(o) for o in item.get("options") or ())
            d = {"video_id": stem, "video_path": f"{stem}.mp4", "answer": item.get("answer"),
                 "question": "\n".join([str(item.get("question", "")), *options])
                 if item.get("question") else "", "task_type": item.get("task_type"),
                 "duration_label": video.get("duration")}
            out.append(_sample(sid, d, roots, ("question", "answer", "task_type"),
                               lambda d: {"duration": str(d.get("duration_label") or "unknown"),
                                          "task_type": str(d.get("task_type") or "unknown")},
                               options))
    return out


_SYNTHETIC_FIELDS = ("video_id", "video_path", "question", "answer")


def _synthetic_groups(d: dict) -> dict[str, str]:
    return {"prompt_type": str(d.get("prompt_type") or "unknown"),
            "duration": duration_bucket(d.get("duration"))}


def read_synthetic(path: Path, roots: Roots) -> list[EvalSample]:
    """Our records (.json / .jsonl, or a dataset split ROOT/records/SPLIT.array_record as
    `seeker-jax synth` and the pipeline write it; data/synth.py's fields): grouped by prompt
    type and duration."""
    out = []
    for i, d in enumerate(_load(path)):
        sid = f"{i}:{d.get('video_id', '?')}" if isinstance(d, dict) else str(i)
        if not isinstance(d, dict):
            out.append(EvalSample(sid, None, roots.common, error=f"record {i}: not an object"))
            continue
        out.append(_sample(sid, d, roots, _SYNTHETIC_FIELDS, _synthetic_groups))
    return out


def samples_from_records(records: Sequence[dict], root: str | os.PathLike,
                         ids: Sequence[str] | None = None) -> list[EvalSample]:
    """Record dicts already in memory (a dataset split, the demo's held-out questions; paths
    relative to `root`) as samples, checked and grouped like read_synthetic's. ids: one per
    record (default `{index}:{video_id}`)."""
    roots = Roots(Path(root), Path(root))
    return [_sample(ids[i] if ids is not None else f"{i}:{d.get('video_id', '?')}", d, roots,
                    _SYNTHETIC_FIELDS, _synthetic_groups) for i, d in enumerate(records)]


READERS: dict[str, Callable[[Path, Roots], list[EvalSample]]] = {
    "v2p": read_v2p, "videomme": read_videomme, "synthetic": read_synthetic}


def read_samples(fmt: str, data: str | os.PathLike, video_root: str | os.PathLike | None = None,
                 frame_root: str | os.PathLike | None = None) -> list[EvalSample]:
    """All samples of a data file; the roots default to the file's folder (a dataset split's
    root for ROOT/records/SPLIT.array_record)."""
    if fmt not in READERS:
        raise ReadError(f"unknown data format {fmt!r}; known: {sorted(READERS)}")
    path = Path(data)
    if not path.is_file():
        raise ReadError(f"--data {path}: no such file")
    base = dataset_base(path)
    roots = Roots(Path(video_root or base), Path(frame_root or base))
    samples = READERS[fmt](path, roots)
    seen: set[str] = set()
    for s in samples:
        if s.id in seen:
            raise ReadError(f"--data {path}: sample id {s.id!r} occurs twice")
        seen.add(s.id)
    return samples


__all__ = ["DIMENSIONS", "EvalSample", "READERS", "ReadError", "Roots", "duration_bucket",
           "read_samples", "read_synthetic", "read_v2p", "read_videomme",
           "samples_from_records"]
