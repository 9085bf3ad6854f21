"""V2P-style records on disk: ArrayRecord files of JSON, read by Grain with random access.

Why ArrayRecord + JSON: Grain reads it with random access (shuffling, sharding, checkpointable
iterators) without holding the dataset in memory, and JSON keeps records readable and
schema-free. Paths inside records are relative to the dataset root so a dataset can move;
`resolve_paths` makes them absolute for the reader.

Layout of a dataset root (docs/data.md):
  records/{train,val,test}.array_record   one JSON record per entry (data/schema.py's format)
  videos/*.mp4, tracks/*.npz, frames/*.png, meta.json

Every record is checked against data/schema.py when a split is opened (`RecordSource(...,
use=...)`): a bad record stops the run before it starts, with a message naming the record, the
field and the fix, instead of failing mid-training or training on "unknown".
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from array_record.python.array_record_module import ArrayRecordWriter

from seeker_jax.data.schema import RecordError, record_label, validate_record

if TYPE_CHECKING:  # grain is slow to import; writers (and synth workers) do not need it
    import grain

SPLITS = ("train", "val", "test")
PATH_FIELDS = ("video_path", "frame_path", "tracks_path")


def split_path(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / "records" / f"{split}.array_record"


def encode(record: dict[str, Any]) -> bytes:
    """Stable bytes for a record (sorted keys), so the same seed gives the same file."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8")


def decode(raw: bytes) -> dict[str, Any]:
    """A record from its stored bytes (the inverse of encode)."""
    return json.loads(raw)


def read_record_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of one ArrayRecord file, in file order, paths as stored (any file, not
    only a split of a dataset root; small files: evaluation, tools)."""
    from array_record.python.array_record_module import ArrayRecordReader

    reader = ArrayRecordReader(str(path))
    try:
        return [decode(raw) for raw in reader.read_all()]
    finally:
        reader.close()


def count_records(path: str | os.PathLike) -> int:
    """How many records one ArrayRecord file holds (without reading them)."""
    from array_record.python.array_record_module import ArrayRecordReader

    reader = ArrayRecordReader(str(path))
    try:
        return int(reader.num_records())
    finally:
        reader.close()


def write_records(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> int:
    """Writes records to one ArrayRecord file (group_size:1 for cheap random access)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    writer = ArrayRecordWriter(str(path), "group_size:1")
    n = 0
    for record in records:
        writer.write(encode(record))
        n += 1
    writer.close()
    return n


def resolve_paths(record: dict[str, Any], root: str | os.PathLike) -> dict[str, Any]:
    """A copy of `record` whose relative path fields are joined to the dataset root."""
    out = dict(record)
    for key in PATH_FIELDS:
        value = out.get(key)
        if value and not os.path.isabs(value):
            out[key] = str(Path(root) / value)
    return out


class MissingSplitError(FileNotFoundError):
    """A dataset root without the split asked for (a user error: the message says what to run)."""


def missing_split_message(root: str | os.PathLike, split: str) -> str:
    """What to do when ROOT/records/SPLIT.array_record is absent: the exact command that writes
    it (a hand-written records/SPLIT.jsonl is imported, not read as it is)."""
    path = split_path(root, split)
    for ext in (".jsonl", ".json"):
        own = path.with_suffix(ext)
        if own.is_file():
            return (f"no records for split {split!r} at {path}; {own} is not read as it is: "
                    f"import it with `seeker-jax data import {own} --out {root} --root {root} "
                    f"--split {split}` (checks every record, writes {path.name})")
    return (f"no records for split {split!r} at {path}; write a dataset with `seeker-jax synth "
            f"--out {root}` or import your records with `seeker-jax data import FILE --out "
            f"{root} --split {split}` (docs/data.md)")


def existing_split(root: str | os.PathLike, split: str) -> Path:
    """The split's array_record file; MissingSplitError (saying how to make it) if absent."""
    path = split_path(root, split)
    if not path.is_file():
        raise MissingSplitError(missing_split_message(root, split))
    return path


def check_records(records: Iterable[dict[str, Any]], use: str, where: str) -> list[dict[str, Any]]:
    """The records validated for `use` (data/schema.py) and normalized; the first bad one is a
    RecordError naming it, with how many more fail."""
    out, errors = [], []
    for i, record in enumerate(records):
        try:
            out.append(validate_record(record, use, record_label(i, record)))
        except RecordError as e:
            errors.append(str(e))
    if errors:
        more = f" ({len(errors) - 1} more record(s) fail too)" if len(errors) > 1 else ""
        raise RecordError(f"{where}: {errors[0]}{more}")
    return out


class RecordSource:
    """Grain RandomAccessDataSource over one split: `source[i]` is a dict record.

    With `resolve=True` (default) the paths are absolute. use: "eval", "rl" or "sft", the
    data/schema.py model every record is checked against when the split is opened (None: not
    checked); records come back normalized (dimension as its name). Picklable, so Grain worker
    processes can open it.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", resolve: bool = True,
                 use: str | None = "eval"):
        path = existing_split(root, split)
        self.root = str(Path(root).resolve())
        self.split = split
        self.resolve = resolve
        self.use = use
        import grain

        self._source = grain.sources.ArrayRecordDataSource([str(path)])
        if use is not None:
            check_records(read_record_file(path), use, f"{path} ({use} records)")

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = decode(self._source[index])
        if self.use is not None:
            record = validate_record(record, self.use, f"record {index}")
        return resolve_paths(record, self.root) if self.resolve else record

    def __repr__(self) -> str:
        return f"RecordSource(root={self.root!r}, split={self.split!r}, n={len(self)})"


def read_records(root: str | os.PathLike, split: str = "train", resolve: bool = True,
                 use: str | None = "eval") -> list[dict[str, Any]]:
    """All records of a split in file order (small datasets, tests and tools), checked for
    `use` as RecordSource checks them: the file is read and validated once (a RecordSource
    would validate each record again on access)."""
    path = existing_split(root, split)
    records = read_record_file(path)
    if use is not None:
        records = check_records(records, use, f"{path} ({use} records)")
    if not resolve:
        return records
    base = str(Path(root).resolve())
    return [resolve_paths(record, base) for record in records]


def make_dataset(root: str | os.PathLike, split: str = "train", *, seed: int = 0,
                 shuffle: bool = True, num_epochs: int | None = 1,
                 shard_options: grain.sharding.ShardOptions | None = None,
                 resolve: bool = True, use: str | None = "rl") -> grain.IterDataset:
    """Records of a split as a Grain IterDataset: sharded, shuffled, repeated.

    Sharding (default: by JAX process, dropping the remainder so every process sees the same
    number of records) happens before shuffling, so shards are disjoint. Each epoch is
    reshuffled. `iter(dataset)` has get_state()/set_state() for exact resume. resolve=False
    keeps the record's paths relative (episodes then show the model the paths SFT trained on).
    use: the data/schema.py model the records are checked against (GRPO's prompts: "rl").
    """
    import grain

    if shard_options is None:
        shard_options = grain.sharding.ShardByJaxProcess(drop_remainder=True)
    ds = grain.MapDataset.source(RecordSource(root, split, resolve, use))
    count, index = shard_options.shard_count, shard_options.shard_index
    end = (len(ds) // count) * count if shard_options.drop_remainder else len(ds)
    ds = ds[index:end:count]
    if shuffle:
        ds = ds.shuffle(seed=seed)
    ds = ds.repeat(num_epochs)
    return ds.to_iter_dataset()
