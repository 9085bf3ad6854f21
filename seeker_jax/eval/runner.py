"""The one evaluation runner: samples -> episodes (batched through a backend) -> results.jsonl,
summary.json, summary.md, accuracy.png.

Resumable: results.jsonl is appended one line per finished sample (flushed and fsynced after
each batch), and a rerun skips the ids already there, so a killed run loses at most the batch
in flight. A torn last line (killed mid-write) is ignored and that sample runs again.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from seeker_jax.env.config import EnvConfig
from seeker_jax.env.video import VideoError
from seeker_jax.eval.episodes import EvalEpisode
from seeker_jax.eval.protocols import EvalProtocol
from seeker_jax.eval.readers import EvalSample
from seeker_jax.eval.report import markdown, plot
from seeker_jax.eval.scoring import Scored, summarize

RESULTS, SUMMARY_JSON, SUMMARY_MD, PLOT = ("results.jsonl", "summary.json", "summary.md",
                                           "accuracy.png")


def read_done(path: Path) -> dict[str, dict]:
    """id -> result line of a results.jsonl; a torn (unparsable) line is skipped."""
    done: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            done[row["id"]] = row
    return done


def score_row(sample: EvalSample, protocol: EvalProtocol, turns: list[str], end_reason: str,
              calls: list[dict], error: str | None = None) -> dict:
    """One results.jsonl line: the sample, the whole episode, the letter read, the verdict."""
    letter = None if error else protocol.extract(turns, sample)
    return {"id": sample.id, "groups": sample.groups, "answer": sample.answer,
            "prediction": letter, "parsed": letter is not None,
            "correct": letter is not None and letter == sample.answer, "error": error,
            "end_reason": end_reason, "turns": turns, "calls": calls,
            "record": sample.record.to_dict() if sample.record else None}


def _episode(sample: EvalSample, formatter, env: EnvConfig, protocol: EvalProtocol
             ) -> EvalEpisode:
    return EvalEpisode(sample.record, formatter, sample.root, env.episode_config(),
                       sample.frames, protocol.frames_after_question)


def run_eval(samples: Sequence[EvalSample], backend, env: EnvConfig, protocol: EvalProtocol,
             workdir: str | os.PathLike, *, batch_size: int = 8, group_keys: Sequence[str] = (),
             meta: dict | None = None, resamples: int = 2000) -> dict:
    """Runs what is not done yet, then writes the summaries over all samples; returns summary."""
    if protocol.profile is not None:
        env = replace(env, profile=protocol.profile)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / RESULTS
    done = read_done(path)
    todo = [s for s in samples if s.id not in done]
    with open(path, "a", encoding="utf-8") as out, tqdm(
            total=len(samples), initial=len(samples) - len(todo), desc=protocol.name,
            unit="q") as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            rows = [score_row(s, protocol, [], "record_error", [], s.error)
                    for s in batch if s.record is None]
            rows += _run_batch([s for s in batch if s.record is not None], backend, env,
                               protocol)
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                done[row["id"]] = row
            out.flush()
            os.fsync(out.fileno())
            bar.update(len(batch))
    return write_summary(samples, done, protocol, workdir, group_keys, meta or {}, resamples)


def _run_batch(batch: list[EvalSample], backend, env: EnvConfig, protocol: EvalProtocol
               ) -> list[dict]:
    """Episodes of the readable samples; a video that cannot be read is that sample's error
    (its prompt is built first, here, so it cannot stop the others)."""
    formatter_for = backend.formatter
    ready, rows = [], []
    for s in batch:
        ep = _episode(s, formatter_for(env), env, protocol)
        try:
            segment = ep.prompt_segment()
        except (VideoError, OSError, ValueError) as e:
            rows.append(score_row(s, protocol, [], "video_error", [], f"record {s.id}: {e}"))
            continue
        ep.prompt_segment = (lambda seg: (lambda: seg))(segment)  # built once, reused
        ready.append((s, ep))
    outcomes = backend.run([ep for _, ep in ready]) if ready else []
    rows += [score_row(s, protocol, o.turns, o.end_reason, o.calls)
             for (s, _), o in zip(ready, outcomes)]
    return rows


def write_summary(samples: Sequence[EvalSample], done: dict[str, dict], protocol: EvalProtocol,
                  workdir: Path, group_keys: Sequence[str], meta: dict, resamples: int = 2000
                  ) -> dict:
    """summary.json / summary.md / accuracy.png over the given samples' result lines."""
    scored = [Scored(s.id, done[s.id]["groups"], bool(done[s.id]["correct"]),
                     bool(done[s.id]["parsed"]), bool(done[s.id]["error"]))
              for s in samples if s.id in done]
    keys = list(group_keys) or sorted({k for s in samples for k in s.groups})
    summary = {"protocol": protocol.name, "source": protocol.source, **meta,
               **summarize(scored, keys, resamples)}
    (workdir / SUMMARY_JSON).write_text(json.dumps(summary, indent=2))
    (workdir / SUMMARY_MD).write_text(markdown(summary))
    if keys:
        plot(summary, workdir / PLOT, keys[0])
    return summary


__all__ = ["PLOT", "RESULTS", "SUMMARY_JSON", "SUMMARY_MD", "read_done", "run_eval",
           "score_row", "write_summary"]
