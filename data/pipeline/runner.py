"""Runs one stage over samples keyed by id: idempotent, resumable, in one process or on Ray.

Why a per-sample log: ArrayRecord files cannot be appended to, and a kill must lose at most
the samples in flight. So each finished sample is appended to `log.jsonl` (one line, flushed
and fsynced) as it completes, in any order; a rerun reads the log (a torn last line is
ignored, a duplicate id keeps its first line), skips those ids and does the rest. When every
sample is logged, `out.array_record` (kept records, in input order, sorted-key JSON) and
`rejected.jsonl` are written by an atomic rename, so the final files are the same bytes
whether the stage ran in one go, was killed and resumed, or ran on Ray.

Scale-out is Ray's own: stateless stages (API calls) run as Ray tasks, at most `workers` in
flight; stages holding a model run in `ray.util.ActorPool` actors that build the stage (load
the model) once. The stage code is the same in both modes.
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Iterable, Iterator

from seeker_jax.data.pipeline.stage import Outcome, Rejected, StageSpec
from seeker_jax.data.records import encode, write_records

LOG, OUT, REJECTED, REPORT = "log.jsonl", "out.array_record", "rejected.jsonl", "report.json"
_BUILT: dict[str, Any] = {}


@dataclasses.dataclass
class StageReport:
    """Counts of one stage run (the funnel reads these); `seconds` sums per-sample time."""
    name: str
    num_in: int
    num_out: int
    rejected: dict[str, int]
    examples: dict[str, list[dict[str, str]]]
    seconds: float
    tokens: int
    wall_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _stage(spec: StageSpec):
    key = json.dumps([spec.cls, spec.kwargs], sort_keys=True)
    if key not in _BUILT:
        _BUILT[key] = spec.build()
    return _BUILT[key]


def apply(stage, sample: dict[str, Any]) -> dict[str, Any]:
    """One sample through a stage -> its log entry. An exception inside the stage is a
    rejection `stage_error` (with the error), so one bad sample never stops a run."""
    start = time.perf_counter()
    try:
        outcome = stage(sample)
    except Exception as e:  # noqa: BLE001 - recorded, counted and shown in the funnel
        tb = traceback.extract_tb(e.__traceback__)[-1]
        outcome = Outcome(Rejected("stage_error", f"{type(e).__name__}: {e} "
                                   f"({os.path.basename(tb.filename)}:{tb.lineno})"))
    entry: dict[str, Any] = {"id": sample["id"], "kept": outcome.kept, "tokens": outcome.tokens,
                             "seconds": round(time.perf_counter() - start, 6)}
    if outcome.kept:
        entry["record"] = outcome.value
    else:
        entry["reason"], entry["detail"] = outcome.value.reason, outcome.value.detail
    return entry


def _apply_spec(spec: StageSpec, sample: dict[str, Any]) -> dict[str, Any]:
    return apply(_stage(spec), sample)


class _StageActor:
    """A Ray actor holding one built stage (a SAM model stays loaded between samples)."""

    def __init__(self, spec: StageSpec):
        self.stage = spec.build()

    def run(self, sample: dict[str, Any]) -> dict[str, Any]:
        return apply(self.stage, sample)


def read_log(path: Path) -> dict[str, dict[str, Any]]:
    """Entries by id; a torn (killed mid-write) line is dropped, the first entry of an id wins."""
    done: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return done
    for line in path.read_text().split("\n"):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "id" in entry:
            done.setdefault(entry["id"], entry)
    return done


def _in_process(spec: StageSpec, todo: list[dict], workers: int) -> Iterator[dict]:
    stage = spec.build()
    if workers <= 1 or getattr(stage, "holds_model", False):
        for sample in todo:
            yield apply(stage, sample)
        return
    with ThreadPoolExecutor(workers) as pool:
        for future in as_completed([pool.submit(apply, stage, s) for s in todo]):
            yield future.result()


def _on_ray(spec: StageSpec, todo: list[dict], workers: int) -> Iterator[dict]:
    import ray
    from ray.util import ActorPool

    if spec.stage_class.holds_model:
        actors = [ray.remote(_StageActor).remote(spec) for _ in range(max(workers, 1))]
        yield from ActorPool(actors).map_unordered(lambda a, s: a.run.remote(s), todo)
        return
    task = ray.remote(_apply_spec)
    pending, queue = [], list(reversed(todo))
    while queue or pending:
        while queue and len(pending) < max(workers, 1):
            pending.append(task.remote(spec, queue.pop()))
        ready, pending = ray.wait(pending, num_returns=1)
        yield ray.get(ready[0])


def run_stage(name: str, spec: StageSpec, samples: list[dict[str, Any]], out_dir: str | os.PathLike,
              *, workers: int = 1, use_ray: bool = False,
              progress: bool = False) -> tuple[list[dict[str, Any]], StageReport]:
    """Runs `spec`'s stage on `samples` (unique ids) into `out_dir`; returns the kept records
    in input order and the stage's report. Already-logged ids are not run again."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = [s["id"] for s in samples]
    if len(set(ids)) != len(ids):
        raise ValueError(f"stage {name}: sample ids are not unique")
    log_path = out_dir / LOG
    done = read_log(log_path)
    todo = [s for s in samples if s["id"] not in done]
    start = time.perf_counter()
    if todo:
        _repair_tail(log_path)
        lock = threading.Lock()
        runs = _on_ray(spec, todo, workers) if use_ray else _in_process(spec, todo, workers)
        bar = _progress(name, len(samples), len(samples) - len(todo), progress)
        with open(log_path, "a", encoding="utf-8") as log:
            for entry in runs:
                with lock:
                    log.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
                    log.flush()
                    os.fsync(log.fileno())
                done.setdefault(entry["id"], entry)
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
    entries = [done[i] for i in ids]
    kept = [e["record"] for e in entries if e["kept"]]
    _write_outputs(out_dir, kept, [e for e in entries if not e["kept"]])
    report = summarize(name, entries, time.perf_counter() - start)
    (out_dir / REPORT).write_text(json.dumps(report.to_dict(), indent=1, sort_keys=True))
    return kept, report


def _repair_tail(path: Path) -> None:
    """Ends a log killed mid-line with a newline, so the next entry starts on its own line."""
    if path.is_file() and path.stat().st_size:
        with open(path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")


def _progress(name: str, total: int, initial: int, on: bool):
    if not on:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=name, unit="sample")


def _write_outputs(out_dir: Path, kept: list[dict], rejected: list[dict]) -> None:
    tmp = out_dir / (OUT + ".tmp")
    write_records(tmp, kept)
    os.replace(tmp, out_dir / OUT)
    lines = "".join(json.dumps({"id": e["id"], "reason": e["reason"], "detail": e["detail"]},
                               sort_keys=True, ensure_ascii=False) + "\n" for e in rejected)
    tmp = out_dir / (REJECTED + ".tmp")
    tmp.write_text(lines)
    os.replace(tmp, out_dir / REJECTED)


def summarize(name: str, entries: list[dict], wall: float, n_examples: int = 3) -> StageReport:
    """A StageReport from log entries: counts, rejections by reason (first examples), time."""
    rejected: dict[str, int] = {}
    examples: dict[str, list[dict[str, str]]] = {}
    for e in entries:
        if not e["kept"]:
            rejected[e["reason"]] = rejected.get(e["reason"], 0) + 1
            ex = examples.setdefault(e["reason"], [])
            if len(ex) < n_examples:
                ex.append({"id": e["id"], "detail": e["detail"][:300]})
    return StageReport(name, len(entries), sum(e["kept"] for e in entries),
                       dict(sorted(rejected.items())), dict(sorted(examples.items())),
                       round(sum(e["seconds"] for e in entries), 4),
                       sum(e["tokens"] for e in entries), round(wall, 4))


def read_stage_output(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The kept records of a finished stage, in input order (what the next stage reads)."""
    import grain

    source = grain.sources.ArrayRecordDataSource([str(Path(out_dir) / OUT)])
    return [json.loads(source[i]) for i in range(len(source))]


def output_bytes(records: Iterable[dict[str, Any]]) -> list[bytes]:
    """The bytes each record is stored as (for equality checks)."""
    return [encode(r) for r in records]
