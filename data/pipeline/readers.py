"""Readers: datasets in their own formats -> pipeline samples, and rejections with reasons.

A pipeline sample is a dict: `id` (unique, the key of every stage), `video_path` (absolute),
`question` (the stem, options removed), `answer`, `options` ({letter: text}, {} if open),
`source`, optional `duration` and `dimension`, and, for the synthetic world only, `truth` (what
the oracle backend and the tests check against). A bad record (fields missing, a video that
does not exist) is rejected with its reason; the read goes on.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

from seeker_jax.data.pipeline.stage import Rejected

_OPTION = re.compile(r"^\s*\(?([A-H])[.):]\s*(.+?)\s*$")


@dataclasses.dataclass
class ReadResult:
    samples: list[dict[str, Any]]
    rejected: list[tuple[str, Rejected]]  # (sample id, why)


def split_options(text: str) -> tuple[str, dict[str, str]]:
    """'Q?\\nA. x\\nB. y' -> ('Q?', {'A': 'x', 'B': 'y'}): option lines are trailing lines
    'A. ...', '(B) ...' or 'C: ...' in letter order from A."""
    lines = text.rstrip().split("\n")
    options: dict[str, str] = {}
    while lines:
        m = _OPTION.match(lines[-1])
        if not m or len(lines) == 1:
            break
        options[m.group(1)] = m.group(2)
        lines.pop()
    letters = sorted(options)
    if letters != [chr(ord("A") + i) for i in range(len(letters))]:
        return text.strip(), {}
    return "\n".join(lines).strip(), dict(sorted(options.items()))


def options_text(options: dict[str, str]) -> str:
    """The options as the lines the synthetic world appends: '\\nA. x\\nB. y'."""
    return "".join(f"\n{letter}. {text}" for letter, text in options.items())


def _video(root: Path, value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return str(Path(value) if os.path.isabs(value) else (root / value).resolve())


def _check(sample: dict[str, Any]) -> Rejected | None:
    for key in ("video_path", "question"):
        if not sample.get(key):
            return Rejected("bad_record", f"missing {key!r}")
    if not sample.get("answer"):
        return Rejected("bad_record", "missing 'answer'")
    if not os.path.isfile(sample["video_path"]):
        return Rejected("video_missing", f"no video at {sample['video_path']}")
    return None


def _collect(items: list[tuple[str, dict[str, Any] | Rejected]]) -> ReadResult:
    out, seen = ReadResult([], []), set()
    for sid, item in items:
        if sid in seen:
            out.rejected.append((sid, Rejected("duplicate_id", f"id {sid!r} seen before")))
            continue
        seen.add(sid)
        why = item if isinstance(item, Rejected) else _check(item)
        if why is None:
            out.samples.append(item)
        else:
            out.rejected.append((sid, why))
    return out


def _json_lines(path: Path) -> list[tuple[int, Any]]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines()):
        if line.strip():
            try:
                rows.append((n, json.loads(line)))
            except ValueError as e:
                rows.append((n, Rejected("bad_record", f"line {n + 1} is not JSON ({e})")))
    return rows


def read_qa_jsonl(path: str | os.PathLike, root: str | os.PathLike | None = None) -> ReadResult:
    """Generic video QA: one JSON object a line with `video`, `question`, `answer`, optional
    `options` ({letter: text} or a list) and `id`. Paths are relative to `root` (default: the
    file's folder)."""
    path = Path(path)
    base = Path(root) if root else path.resolve().parent
    items = []
    for n, row in _json_lines(path):
        sid = f"{path.stem}_{n:06d}"
        if isinstance(row, Rejected) or not isinstance(row, dict):
            items.append((sid, row if isinstance(row, Rejected) else Rejected("bad_record", "not an object")))
            continue
        sid = str(row.get("id", sid))
        options = row.get("options") or {}
        if isinstance(options, list):
            options = {chr(ord("A") + i): str(o) for i, o in enumerate(options)}
        stem, inline = split_options(str(row.get("question", "")))
        items.append((sid, {"id": sid, "video_path": _video(base, row.get("video")),
                            "question": stem, "answer": str(row.get("answer", "")),
                            "options": dict(options) or inline, "source": path.stem}))
    return _collect(items)


def read_llava_video(path: str | os.PathLike, root: str | os.PathLike | None = None) -> ReadResult:
    """LLaVA-Video-178K style: a JSON list of {id, video, conversations: [{from: human, value},
    {from: gpt, value}, ...]}; each human/gpt pair is one sample `{id}_{pair}`."""
    path = Path(path)
    base = Path(root) if root else path.resolve().parent
    items = []
    for n, row in enumerate(json.loads(path.read_text())):
        rid = str(row.get("id", f"{path.stem}_{n:06d}")) if isinstance(row, dict) else f"{path.stem}_{n:06d}"
        turns = row.get("conversations") if isinstance(row, dict) else None
        if not isinstance(turns, list) or len(turns) < 2:
            items.append((rid, Rejected("bad_record", "no human/gpt conversation pair")))
            continue
        for k in range(0, len(turns) - 1, 2):
            human, gpt = turns[k], turns[k + 1]
            sid = f"{rid}_{k // 2}"
            if human.get("from") != "human" or gpt.get("from") != "gpt":
                items.append((sid, Rejected("bad_record", f"turns {k},{k + 1} are not human, gpt")))
                continue
            text = re.sub(r"<(image|video)>\s*", "", str(human.get("value", "")))
            stem, options = split_options(text)
            items.append((sid, {"id": sid, "video_path": _video(base, row.get("video")),
                                "question": stem, "answer": str(gpt.get("value", "")).strip(),
                                "options": options, "source": path.stem}))
    return _collect(items)


def read_v2p(path: str | os.PathLike, root: str | os.PathLike | None = None) -> ReadResult:
    """V2P-Bench records (a JSON list or JSONL): video_id, video_path, question with options
    inside, answer letter, dimension. Already instance-level; read for re-rendering."""
    path = Path(path)
    base = Path(root) if root else path.resolve().parent
    rows = (_json_lines(path) if path.suffix == ".jsonl"
            else list(enumerate(json.loads(path.read_text()))))
    items = []
    for n, row in rows:
        sid = f"{path.stem}_{n:06d}"
        if not isinstance(row, dict):
            items.append((sid, row if isinstance(row, Rejected) else Rejected("bad_record", "not an object")))
            continue
        sid = str(row.get("id", f"{row.get('video_id', path.stem)}_{n:06d}"))
        stem, options = split_options(str(row.get("question", "")))
        items.append((sid, {"id": sid, "video_path": _video(base, row.get("video_path")),
                            "question": stem, "answer": str(row.get("answer", "")),
                            "options": options, "source": str(row.get("source", "v2p")),
                            "duration": row.get("duration"),
                            "dimension": str(row.get("dimension", ""))}))
    return _collect(items)


def read_synth(root: str | os.PathLike, split: str = "train") -> ReadResult:
    """The synthetic world as an ORIGINAL video QA: the target named by its description at the
    prompt frame ('the red striped circle') instead of a visual prompt, options apart, and the
    world's truth kept under `truth` for the oracle backend and the tests."""
    from seeker_jax.data.records import read_records
    from seeker_jax.data.visual_prompt import fill_placeholder
    from seeker_jax.data.world import World

    items, worlds = [], {}
    for rec in read_records(root, split, resolve=True):
        tracks = rec["tracks_path"]
        world = worlds.get(tracks) or worlds.setdefault(tracks, World.load(tracks))
        name = "the " + world.describe(rec["target_track_id"], rec["prompt_frame_index"])
        truth = {k: rec[k] for k in ("target_track_id", "tracks_path", "prompt_frame_index",
                                     "question_template", "evidence_window", "prompt_type",
                                     "prompt_color", "prompt_geometry", "frame_path",
                                     "target_phrase", "question")}
        truth["description"] = name
        items.append((rec["id"], {
            "id": rec["id"], "video_path": rec["video_path"],
            "question": fill_placeholder(rec["question_template"], name),
            "answer": rec["answer"], "options": rec["options"], "source": rec["source"],
            "duration": rec["duration"], "dimension": rec["dimension"], "split": rec["split"],
            "truth": truth}))
    return _collect(items)


READERS: dict[str, Callable[..., ReadResult]] = {
    "qa_jsonl": read_qa_jsonl, "llava_video": read_llava_video, "v2p": read_v2p,
    "synth": read_synth}
