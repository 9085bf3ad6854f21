"""The one evaluation runner: samples -> episodes (batched through a backend) -> scored
episodes (`evaluate`, in memory: the demo, `passk`) -> results.jsonl, summary.json, summary.md,
accuracy.png and the episode viewer episodes.html (`run_eval`: `seeker-jax eval`).

Resumable: results.jsonl is appended one line per finished sample (flushed and fsynced after
each batch), and a rerun skips the ids already there, so a killed run loses at most the batch
in flight. A torn last line (killed mid-write) is ignored and that sample runs again.
A folder's results belong to the run that made them: `check_run_key` keeps what made them
(model, protocol, data, config) in run_key.json and refuses to resume under another.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from seeker_jax.config import differences
from seeker_jax.env.config import EnvConfig
from seeker_jax.env.video import VideoError
from seeker_jax.errors import UserError
from seeker_jax.eval.episodes import EvalEpisode
from seeker_jax.eval.models import Outcome
from seeker_jax.eval.protocols import EvalProtocol
from seeker_jax.eval.readers import EvalSample
from seeker_jax.eval.report import markdown, plot
from seeker_jax.eval.scoring import Scored, summarize
from seeker_jax.eval.viewer import MAX_IMAGE_BYTES, VIEWER, from_result_row, write_viewer

RESULTS, SUMMARY_JSON, SUMMARY_MD, PLOT = ("results.jsonl", "summary.json", "summary.md",
                                           "accuracy.png")
RUN_KEY = "run_key.json"


def check_run_key(workdir: str | os.PathLike, key: dict, overwrite: bool = False) -> None:
    """Makes `workdir` hold results of the run `key` names (a JSON tree: model, protocol, data,
    config), so a rerun never relabels another run's answers.

    A new folder records the key in run_key.json. A folder with results made under another
    key (or before runs were keyed) raises UserError naming what differs; `overwrite` deletes
    those results (results.jsonl and the summaries) and starts afresh instead.
    """
    workdir = Path(workdir)
    key = json.loads(json.dumps(key))  # tuples -> lists, as read back
    stored_path, results = workdir / RUN_KEY, workdir / RESULTS
    stored = json.loads(stored_path.read_text()) if stored_path.is_file() else None
    if stored is not None and stored != key or stored is None and results.is_file():
        if not overwrite:
            what = ("; ".join(differences(stored, key)) if stored is not None else
                    f"{results} was written before runs were keyed (no {RUN_KEY})")
            raise UserError(f"eval: {workdir} holds results of another run ({what}); give a "
                            "new --workdir, or --overwrite to delete those results")
        for name in (RESULTS, SUMMARY_JSON, SUMMARY_MD, PLOT, VIEWER, RUN_KEY):
            (workdir / name).unlink(missing_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    stored_path.write_text(json.dumps(key, indent=2))


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


@dataclass
class Judged:
    """One episode of one sample, scored: what the protocol read (`prediction`, None when
    unreadable) and its verdict; `error`: why the sample could not run (then it is wrong)."""

    sample: EvalSample
    outcome: Outcome
    prediction: str | None
    correct: bool
    error: str | None = None

    def row(self) -> dict:
        """The results.jsonl line: the sample, the whole episode, the prediction, the verdict."""
        o, s = self.outcome, self.sample
        return {"id": s.id, "groups": s.groups, "answer": s.answer,
                "prediction": self.prediction, "parsed": self.prediction is not None,
                "correct": self.correct, "error": self.error, "end_reason": o.end_reason,
                "turns": o.turns, "calls": o.calls,
                "record": s.record.to_dict() if s.record else None}


def judge(sample: EvalSample, protocol: EvalProtocol, outcome: Outcome,
          error: str | None = None) -> Judged:
    """Reads the episode's prediction with the protocol's extractor and gives its verdict."""
    prediction = None if error else protocol.extract(outcome.turns, sample)
    correct = prediction is not None and protocol.verdict(prediction, sample)
    return Judged(sample, outcome, prediction, bool(correct), error)


def score_row(sample: EvalSample, protocol: EvalProtocol, turns: list[str], end_reason: str,
              calls: list[dict], error: str | None = None) -> dict:
    """One results.jsonl line of an episode given as its parts (judge(...).row())."""
    return judge(sample, protocol, Outcome(turns, end_reason, calls), error).row()


def _episode(sample: EvalSample, formatter, env: EnvConfig, protocol: EvalProtocol
             ) -> EvalEpisode:
    return EvalEpisode(sample.record, formatter, sample.root, env.episode_config(),
                       sample.frames, protocol.frames_after_question)


def evaluate(samples: Sequence[EvalSample], backend, env: EnvConfig, protocol: EvalProtocol,
             *, per_sample: int = 1, first_index: int = 0) -> list[list[Judged]]:
    """Runs `per_sample` episodes of every sample (a group sharing one prompt; sampled ones
    differ when the backend samples) in one backend call, and scores them: per sample its
    list of Judged. A sample that cannot be read, or whose video fails, gets `per_sample`
    Judged with the error (its prompt is built first, here, so it cannot stop the others).
    first_index: where these samples' episodes start in a larger run done in parts (the
    sampling keys then match one call over all of them)."""
    if protocol.profile is not None:
        env = replace(env, profile=protocol.profile)
    formatter_for = backend.formatter
    out: list[list[Judged]] = []
    runnable, episodes = [], []
    for s in samples:
        if s.record is None:
            out.append([judge(s, protocol, Outcome([], "record_error"), s.error)] * per_sample)
            continue
        group = [_episode(s, formatter_for(env), env, protocol) for _ in range(per_sample)]
        try:
            segment = group[0].prompt_segment()
        except (VideoError, OSError, ValueError) as e:
            out.append([judge(s, protocol, Outcome([], "video_error"), f"record {s.id}: {e}")]
                       * per_sample)
            continue
        group[0].prompt_segment = (lambda seg: (lambda: seg))(segment)  # built once, reused
        out.append([])
        runnable.append((s, out[-1]))
        episodes += group
    outcomes = backend.run(episodes, per_sample, first_index) if episodes else []
    for i, (s, judged) in enumerate(runnable):
        judged += [judge(s, protocol, o) for o in outcomes[i * per_sample:(i + 1) * per_sample]]
    return out


def run_eval(samples: Sequence[EvalSample], backend, env: EnvConfig, protocol: EvalProtocol,
             workdir: str | os.PathLike, *, batch_size: int = 8, group_keys: Sequence[str] = (),
             meta: dict | None = None, resamples: int = 2000,
             viewer_bytes: int | None = MAX_IMAGE_BYTES) -> dict:
    """Runs what is not done yet, then writes the summaries and episodes.html over all samples
    (viewer_bytes: its image budget; None: no page); returns the summary."""
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
            rows = [j[0].row() for j in evaluate(batch, backend, env, protocol)]
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                done[row["id"]] = row
            out.flush()
            os.fsync(out.fileno())
            bar.update(len(batch))
    summary = write_summary(samples, done, protocol, workdir, group_keys, meta or {}, resamples)
    if viewer_bytes is not None:
        write_episodes(samples, done, env, workdir, summary, viewer_bytes)
    return summary


def write_episodes(samples: Sequence[EvalSample], done: dict[str, dict], env: EnvConfig,
                   workdir: Path, summary: dict, max_bytes: int = MAX_IMAGE_BYTES) -> Path:
    """episodes.html (eval/viewer.py) over the given samples' result lines, in sample order,
    with accuracy.png beside them; the frames are re-read through `env` (the run's)."""
    o = summary["overall"]
    acc = "-" if o["accuracy"] is None else f"{100 * o['accuracy']:.1f}%"
    meta = {"model": summary.get("model", "?"), "data": summary.get("data", "?"),
            "protocol": f"{summary['protocol']} ({summary['source']})",
            "accuracy": f"{acc} ({o['correct']} of {o['n']}; {o['unparsable']} unparsable, "
                        f"{o['errors']} errors)"}
    views = [from_result_row(done[s.id], s) for s in samples if s.id in done]
    write_viewer(views, env.episode_config(), workdir / VIEWER,
                 title=f"{summary['protocol']} on {summary.get('data', '?')}", meta=meta,
                 plots=[workdir / PLOT], max_bytes=max_bytes, progress=True)
    return workdir / VIEWER


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


__all__ = ["Judged", "PLOT", "RESULTS", "RUN_KEY", "SUMMARY_JSON", "SUMMARY_MD",
           "VIEWER", "check_run_key", "evaluate", "judge", "read_done", "run_eval", "score_row",
           "write_episodes", "write_summary"]
