"""`seeker-jax data import`: a user's records in a known format -> a dataset root that SFT,
GRPO and eval read (ROOT/records/SPLIT.array_record, assets under ROOT, paths relative).

Why one importer over the existing readers: the formats are read by the code that already owns
them (data/pipeline/readers.py: generic QA jsonl, LLaVA-Video; data/pipeline/interop.py:
ShareGPT, verl), and every row then goes through the same three checks before anything is
written: the record format (data/schema.py), the files it names (they exist and the video
decodes), unique ids. A bad row stops the import with a message naming the record, the field
and the fix (or, with skip_invalid, is left out and counted), so a dataset on disk is always
one the trainers accept.

Formats:
  records      our format (docs/data.md) as .jsonl or a .json list; V2P-Bench's released
               .jsonl is this format (integer dimensions, frame_path a string or a list)
  qa_jsonl     {video, question, answer, options?, id?} a line (data/pipeline/readers.py)
  llava_video  LLaVA-Video-178K's [{id, video, conversations: [{from, value}, ...]}]
  sharegpt     LLaMA-Factory ShareGPT rows as `seeker-jax trajectories` exports them (SFT
               records with teacher_turns; data/pipeline/interop.py)
  verl         verl parquet as interop.export_verl writes it (RL records)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seeker_jax.data.records import PATH_FIELDS, split_path, write_records
from seeker_jax.data.schema import RecordError, record_label, validate_record

FORMATS = ("records", "v2p", "qa_jsonl", "llava_video", "sharegpt", "verl")
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_ASSET_DIRS = {"video_path": "videos", "frame_path": "frames", "tracks_path": "tracks"}


def _load_json_rows(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    raise RecordError(f"{path}: line {n + 1} is not JSON ({e}); each line is "
                                      "one record object") from None
        return rows
    try:
        loaded = json.loads(text) if text.strip() else []
    except ValueError as e:
        raise RecordError(f"{path}: not JSON ({e}); give a .json list or a .jsonl file") from None
    return loaded if isinstance(loaded, list) else [loaded]


def detect_format(path: str | os.PathLike) -> str:
    """The format of an input file, from its suffix and its first row's keys."""
    path = Path(path)
    if path.suffix == ".parquet":
        return "verl"
    rows = _load_json_rows(path)
    if not rows:
        raise RecordError(f"{path}: no records (the file is empty); see docs/data.md for the "
                          "record format")
    first = next((row for row in rows if isinstance(row, dict)), None)
    if first is None:
        return "records"  # its rows are checked (and named) one by one
    for key, fmt in (("messages", "sharegpt"), ("conversations", "llava_video"),
                     ("video_path", "records"), ("video", "qa_jsonl")):
        if key in first:
            return fmt
    raise RecordError(f"{path}: cannot tell its format from the first record's keys "
                      f"{sorted(first)}; pass --format (one of {', '.join(FORMATS)})")


def _from_pipeline(fmt: str, path: Path, root: Path) -> list[tuple[dict | None, str | None]]:
    """Generic QA / LLaVA-Video rows through the pipeline's readers, as our records."""
    from seeker_jax.data.pipeline.readers import options_text, read_llava_video, read_qa_jsonl

    result = (read_qa_jsonl if fmt == "qa_jsonl" else read_llava_video)(path, root)
    out: list[tuple[dict | None, str | None]] = []
    for s in result.samples:
        out.append(({"id": s["id"], "video_id": Path(s["video_path"]).stem,
                     "video_path": s["video_path"], "answer": s["answer"],
                     "question": s["question"] + options_text(s["options"]),
                     **({"options": s["options"]} if s["options"] else {}),
                     "source": s["source"]}, None))
    for sid, why in result.rejected:
        missing = re.fullmatch(r"missing '(\w+)'", why.detail)
        if missing:  # the pipeline's own field names, mapped back to the input's
            name = {"video_path": "video"}.get(missing.group(1), missing.group(1))
            detail = f"field {name!r} missing; every {fmt} row needs video, question and answer"
        elif why.reason == "video_missing":
            detail = (f"field 'video' names a missing file ({why.detail}); fix the path "
                      f"(relative paths start at --root {root})")
        else:
            detail = why.detail
        out.append((None, f"record {sid}: {detail}"))
    return out


def _rows(fmt: str, path: Path, root: Path) -> list[tuple[dict | None, str | None]]:
    """(record in our field names, paths as written) or (None, why) per input row."""
    if fmt in ("qa_jsonl", "llava_video"):
        return _from_pipeline(fmt, path, root)
    from seeker_jax.data.pipeline.interop import from_sharegpt, from_verl

    if fmt == "verl":
        import pyarrow.parquet as pq

        rows, convert, kind = pq.read_table(path).to_pylist(), from_verl, "verl"
    else:
        rows = _load_json_rows(path)
        convert, kind = (from_sharegpt, "ShareGPT") if fmt == "sharegpt" else (None, "")
    out: list[tuple[dict | None, str | None]] = []
    for i, row in enumerate(rows):
        if convert is None:
            out.append((row, None))
            continue
        try:
            out.append((convert(row), None))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            out.append((None, f"record {i}: not a {kind} row ({type(e).__name__}: {e}); "
                              f"see data/pipeline/interop.py for the {kind} fields"))
    return out


@dataclass
class _Assets:
    """Places files under the dataset root: kept where they are when already inside it,
    else copied (or linked) into videos/ or frames/ under a unique name."""

    out: Path
    link: bool
    placed: dict[Path, str] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)

    def place(self, src: Path, kind: str) -> str:
        src = src.resolve()
        if src in self.placed:
            return self.placed[src]
        out = self.out.resolve()
        if src.is_relative_to(out):
            rel = str(src.relative_to(out))
        else:
            rel, n = f"{_ASSET_DIRS[kind]}/{src.name}", 0
            while rel in self.taken or (out / rel).exists():
                n += 1
                rel = f"{_ASSET_DIRS[kind]}/{src.stem}_{n}{src.suffix}"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            if self.link:
                os.symlink(src, out / rel)
            else:
                shutil.copy2(src, out / rel)
        self.taken.add(rel)
        self.placed[src] = rel
        return rel


def _video_seconds(path: Path, value: str, label: str) -> float:
    """The video's length; a file no decoder reads is the record's error."""
    from seeker_jax.env.video import VideoFile

    try:
        return float(VideoFile(path).info.duration)
    except Exception as e:  # noqa: BLE001 - any decoder failure means "not a video we can read"
        raise RecordError(f"{label}: field 'video_path' names {value!r}, which is not a readable "
                          f"video ({e})") from None


def _check_files(record: dict[str, Any], label: str, root: Path,
                 frame_root: Path) -> dict[str, list[Path]]:
    """{path field: its files}, each checked to exist, the video to decode (its duration
    filled in when missing); a frame_path list (V2P-Bench) becomes frame_path + frame_paths."""
    frames = record.get("frame_path")
    if isinstance(frames, list):
        record["frame_path"], record["frame_paths"] = (frames[0] if frames else None), frames
    files = {}
    for key in (*PATH_FIELDS, "frame_paths"):
        values = record.get(key)
        if not values:
            continue
        base = frame_root if key in ("frame_path", "frame_paths") else root
        files[key] = []
        for value in values if isinstance(values, list) else [values]:
            src = Path(value) if os.path.isabs(value) else base / value
            if not src.is_file():
                flag = "--frame-root" if base is frame_root else "--root"
                raise RecordError(f"{label}: field {key!r} names {value!r}, but there is no file "
                                  f"at {src}; fix the path (relative paths start at {flag} "
                                  f"{base})")
            files[key].append(src)
    seconds = _video_seconds(files["video_path"][0], record["video_path"], label)
    if record.get("duration") is None:
        record["duration"] = round(seconds, 3)
    return files


def _place(record: dict[str, Any], files: dict[str, list[Path]], assets: _Assets) -> None:
    """The record's paths rewritten to its files' places under the dataset root."""
    for key, sources in files.items():
        placed = [assets.place(src, "frame_path" if key == "frame_paths" else key)
                  for src in sources]
        record[key] = placed if isinstance(record[key], list) else placed[0]


def split_of(video_id: str, val_fraction: float, test_fraction: float, rest: str) -> str:
    """A record's split from a hash of its video id: every question of one video lands in the
    same split (no video seen in training is evaluated on), the same input gives the same
    split on every machine."""
    u = int(hashlib.sha256(video_id.encode()).hexdigest()[:8], 16) / 2 ** 32
    return "val" if u < val_fraction else "test" if u < val_fraction + test_fraction else rest


def import_records(input_path: str | os.PathLike, out: str | os.PathLike, *,
                   fmt: str = "auto", root: str | os.PathLike | None = None,
                   frame_root: str | os.PathLike | None = None, split: str = "train",
                   val_fraction: float = 0.0, test_fraction: float = 0.0, link: bool = False,
                   overwrite: bool = False, skip_invalid: bool = False) -> dict[str, Any]:
    """Imports one file into dataset root `out`; returns a summary (also written to
    OUT/import.json): format, counts per split, skipped records with why, notes.

    root: where the input's relative paths start (default: the input file's folder);
    frame_root: the same for frames (default: root). Raises RecordError (one line) on a bad
    record unless skip_invalid, on empty input, and on a split file that exists unless
    overwrite."""
    path, out = Path(input_path), Path(out)
    if not path.is_file():
        raise RecordError(f"{path}: no such file")
    if not _SPLIT_NAME.match(split):
        raise RecordError(f"--split {split!r}: letters, digits and _ only (train, val, test, rl)")
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise RecordError(f"--val-fraction {val_fraction} + --test-fraction {test_fraction}: "
                          "each at least 0, together below 1")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise RecordError(f"--format {fmt!r}: one of auto, {', '.join(FORMATS)}")
    root = Path(root) if root else path.resolve().parent
    frame_root = Path(frame_root) if frame_root else root
    rows = _rows(fmt, path, root)
    if not rows:
        raise RecordError(f"{path}: no records (the file is empty); see docs/data.md for the "
                          "record format")
    kept: dict[str, list[tuple[dict[str, Any], dict[str, list[Path]]]]] = {}
    errors, ids, no_sft = [], set(), 0
    for i, (row, why) in enumerate(rows):
        label = record_label(i, row)
        try:
            if why is not None:
                raise RecordError(why)
            record = validate_record(row, "rl", label)
            files = _check_files(record, label, root, frame_root)
            record.setdefault("id", f"{record['video_id']}_{i:06d}")
            if record["id"] in ids:
                raise RecordError(f"{label}: field 'id' {record['id']!r} occurs twice; give "
                                  "each record its own id (or leave ids out)")
        except RecordError as e:
            errors.append(str(e))
            continue
        ids.add(record["id"])
        try:
            validate_record(record, "sft", label)
        except RecordError:
            no_sft += 1
        name = split_of(record["video_id"], val_fraction, test_fraction, split)
        kept.setdefault(name, []).append((record, files))
    if errors and not skip_invalid:
        more = (f" ({len(errors) - 1} more record(s) fail too; --skip-invalid imports the "
                "rest)") if len(errors) > 1 else " (--skip-invalid imports the rest)"
        raise RecordError(f"{path}: {errors[0]}{more}")
    if not kept:
        raise RecordError(f"{path}: none of its {len(rows)} record(s) could be imported; "
                          f"first: {errors[0]}")
    existing = [str(split_path(out, s)) for s in kept if split_path(out, s).exists()]
    if existing and not overwrite:
        raise RecordError(f"{', '.join(existing)} exist(s); pass --overwrite to replace, or "
                          "import into another --out / --split")
    assets, counts = _Assets(out, link), {}
    for name, rows_of_split in sorted(kept.items()):  # every record checked: now write
        for record, files in rows_of_split:
            _place(record, files, assets)
        counts[name] = write_records(split_path(out, name), [r for r, _ in rows_of_split])
    notes = []
    videos = len({r["video_id"] for split_rows in kept.values() for r, _ in split_rows})
    for name, fraction in (("val", val_fraction), ("test", test_fraction)):
        if fraction > 0 and name not in kept:
            notes.append(f"--{name}-fraction {fraction} sent no video to {name} ({videos} "
                         f"video(s) in all; splits go by video_id so that no video is in two): "
                         f"the {name} split is not written")
    if no_sft:
        notes.append(f"{no_sft} record(s) have neither frame_path nor teacher_turns: eval and "
                     "GRPO read them, SFT refuses them (its scripted teacher views the "
                     "visual-prompt frame)")
    summary = {"input": str(path.resolve()), "format": fmt, "splits": counts,
               "assets": "linked" if link else "copied", "skipped": errors, "notes": notes}
    (out / "import.json").write_text(json.dumps(summary, indent=1))
    return summary


__all__ = ["FORMATS", "detect_format", "import_records", "split_of"]
