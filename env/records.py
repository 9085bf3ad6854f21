"""Sample records: what episodes are built from (V2P-Bench fields).

`video_id, video_path, duration, question, answer, frame_path, dimension, category`, plus any
extra keys (kept in `extras`). Paths may be relative to a dataset root given separately.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterator

REQUIRED = ("video_id", "video_path", "question")


@dataclass(frozen=True)
class SampleRecord:
    video_id: str
    video_path: str
    question: str
    answer: str = ""
    duration: float | None = None
    frame_path: str | None = None
    dimension: str = ""
    category: str = ""
    extras: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "SampleRecord":
        """Builds a record; unknown keys go to `extras`. Raises ValueError on missing fields."""
        missing = [k for k in REQUIRED if not d.get(k)]
        if missing:
            raise ValueError(f"record {d.get('video_id', '?')} lacks {missing}")
        known = {f.name for f in fields(cls)} - {"extras"}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["video_id"] = str(kwargs["video_id"])
        if kwargs.get("duration") is not None:
            kwargs["duration"] = float(kwargs["duration"])
        extras = dict(d.get("extras") or {}, **{k: v for k, v in d.items()
                                                 if k not in known and k != "extras"})
        return cls(**kwargs, extras=extras)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extras"}
        return {**d, **self.extras}

    def assets(self) -> dict[str, str]:
        """Kind -> path as written in the record (what the model is shown)."""
        out = {"video": self.video_path}
        if self.frame_path:
            out["frame"] = self.frame_path
        return out


def read_records(path: str | os.PathLike) -> Iterator[SampleRecord]:
    """Records from a .json (one object or a list) or a .jsonl file."""
    text = Path(path).read_text()
    if str(path).endswith(".jsonl"):
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        loaded = json.loads(text)
        items = loaded if isinstance(loaded, list) else [loaded]
    for item in items:
        yield SampleRecord.from_dict(item)


def default_root(record_file: str | os.PathLike) -> Path:
    """Relative paths in a record file are relative to the file's folder unless told otherwise."""
    return Path(record_file).resolve().parent
