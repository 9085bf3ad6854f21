"""Interop with the PyTorch stack: our SFT data as LLaMA-Factory ShareGPT multi-turn JSON,
our RL data as verl parquet (the fields VideoSeeker's public verl fork reads), and back.

ShareGPT (LLaMA-Factory `formatting: sharegpt`, tags role/content, roles user / assistant /
observation): the user turn is `<video>` and the student's user text, each assistant turn is
one teacher turn, each observation the tool response as text with `<image>` / `<video>` where
the tool returns vision; `videos` / `images` hold the media paths as in the records (relative
to the dataset root: LLaMA-Factory's `media_dir`). Import rebuilds our record from the
messages alone (question, media, teacher turns, answer from the last turn), so a round trip
replays to the same tokens (tested).

verl (legacy_data.yaml keys: prompt, videos, images): `data_source`, `prompt` (chat messages),
`videos` [{"video": path}], `images` [path], `ability`, `reward_model` {style: rule,
ground_truth}, `extra_info` (index, id, question, media paths, duration, dimension, options
as JSON, and `tools_kwargs` with the create_kwargs VideoSeeker's tools read: image_root,
video_root).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from seeker_jax.env.parser import extract_answer
from seeker_jax.env.profiles import seeker_user_text
from seeker_jax.env.records import SampleRecord

VIDEO, IMAGE = "<video>", "<image>"
_OBS = {"view_visual_prompt": IMAGE, "crop_video": VIDEO}


def _user_text(record: dict[str, Any]) -> str:
    return seeker_user_text(SampleRecord.from_dict(record), float(record.get("duration") or 0.0))


def _question(text: str) -> str:
    """The question back out of the user text (after the asset lines and the blank line)."""
    body = text.removeprefix(VIDEO).lstrip("\n")
    return body.split("\n\n", 1)[1] if body.startswith("Video: ") and "\n\n" in body else body


def _tool_name(turn: str) -> str | None:
    from seeker_jax.env.parser import parse_tool_calls
    calls = parse_tool_calls(turn, 1)
    return getattr(calls[0], "name", None) if calls else None


def to_sharegpt(record: dict[str, Any]) -> dict[str, Any]:
    """One SFT record (with `teacher_turns`) as a ShareGPT multi-turn row."""
    turns = list(record["teacher_turns"])
    messages = [{"role": "user", "content": VIDEO + _user_text(record)}]
    images = []
    for i, turn in enumerate(turns):
        messages.append({"role": "assistant", "content": turn})
        if i + 1 < len(turns):
            mark = _OBS.get(_tool_name(turn) or "", "")
            if mark == IMAGE:
                images.append(record["frame_path"])
            messages.append({"role": "observation", "content": mark})
    return {"id": record["id"], "messages": messages, "videos": [record["video_path"]],
            "images": images, "duration": record.get("duration"),
            "dimension": record.get("dimension", "")}


def from_sharegpt(row: dict[str, Any]) -> dict[str, Any]:
    """A ShareGPT row back to our SFT record (see the module doc)."""
    messages = row["messages"]
    if not messages or messages[0]["role"] != "user":
        raise ValueError(f"sharegpt row {row.get('id')}: the first message must be the user's")
    turns = [m["content"] for m in messages if m["role"] == "assistant"]
    text = messages[0]["content"]
    frame = next((line.split(": ", 1)[1] for line in text.split("\n")
                  if line.startswith("Visual-prompt frame: ")), None)
    return {"id": row["id"], "video_id": Path(row["videos"][0]).stem,
            "video_path": row["videos"][0], "frame_path": frame or (row.get("images") or [None])[0],
            "question": _question(text), "answer": extract_answer(turns[-1]) or "",
            "duration": row.get("duration"), "dimension": row.get("dimension", ""),
            "teacher_turns": turns}


def export_sharegpt(records: Sequence[dict[str, Any]], path: str | os.PathLike,
                    root: str | os.PathLike | None = None) -> Path:
    """Writes the SFT records as a ShareGPT JSON list (and a dataset_info.json entry beside)."""
    path = Path(path)
    path.write_text(json.dumps([to_sharegpt(r) for r in records], ensure_ascii=False, indent=1))
    info = {path.stem: {"file_name": path.name, "formatting": "sharegpt",
                        "columns": {"messages": "messages", "videos": "videos", "images": "images"},
                        "tags": {"role_tag": "role", "content_tag": "content",
                                 "user_tag": "user", "assistant_tag": "assistant",
                                 "observation_tag": "observation"}}}
    if root is not None:
        info[path.stem]["media_dir"] = str(root)
    (path.parent / "dataset_info.json").write_text(json.dumps(info, indent=1))
    return path


def import_sharegpt(path: str | os.PathLike) -> list[dict[str, Any]]:
    return [from_sharegpt(row) for row in json.loads(Path(path).read_text())]


def to_verl(record: dict[str, Any], index: int, root: str | os.PathLike) -> dict[str, Any]:
    """One RL record as a verl row."""
    root = str(root)
    return {
        "data_source": str(record.get("source") or "seeker"),
        "prompt": [{"role": "user", "content": VIDEO + _user_text(record)}],
        "videos": [{"video": record["video_path"]}],
        "images": [record["frame_path"]] if record.get("frame_path") else [],
        "ability": "video_instance_qa",
        "reward_model": {"style": "rule", "ground_truth": str(record["answer"])},
        "extra_info": {
            "index": index, "id": str(record.get("id", index)), "question": record["question"],
            "video_id": str(record["video_id"]), "video_path": record["video_path"],
            "frame_path": record.get("frame_path") or "",
            "duration": float(record.get("duration") or 0.0),
            "dimension": str(record.get("dimension", "")),
            "options": json.dumps(record.get("options") or {}, sort_keys=True),
            "tools_kwargs": {"view_visual_prompt": {"create_kwargs": {"image_root": root}},
                             "crop_video": {"create_kwargs": {"video_root": root}}}}}


def from_verl(row: dict[str, Any]) -> dict[str, Any]:
    extra = row["extra_info"]
    return {"id": extra["id"], "video_id": extra["video_id"], "video_path": extra["video_path"],
            "frame_path": extra["frame_path"] or None, "question": extra["question"],
            "answer": row["reward_model"]["ground_truth"], "duration": extra["duration"],
            "dimension": extra["dimension"], "options": json.loads(extra["options"]),
            "source": row["data_source"]}


def export_verl(records: Sequence[dict[str, Any]], path: str | os.PathLike,
                root: str | os.PathLike) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    pq.write_table(pa.Table.from_pylist([to_verl(r, i, root) for i, r in enumerate(records)]),
                   path)
    return path


def import_verl(path: str | os.PathLike) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return [from_verl(row) for row in pq.read_table(path).to_pylist()]
