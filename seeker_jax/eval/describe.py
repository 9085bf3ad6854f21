"""One episode written out in full, for a person to read: the question, each model turn, what
each tool call showed (its response text, how many frames and at which times) and the verdict.

Why replay instead of logging during the run: the tools are deterministic, so running the
episode's turns again through a fresh Episode gives exactly what the model was shown, without
the rollout engine keeping every observation of every episode.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from seeker_jax.env.config import EnvConfig
from seeker_jax.env.episode import Episode
from seeker_jax.env.records import SampleRecord
from seeker_jax.env.tools import Observation


def replay(turns: Sequence[str], record: dict, root: str | os.PathLike, env: EnvConfig,
           tokenizer: Any) -> list[tuple[str, list[Observation]]]:
    """The turns run again through a fresh Episode of the model's environment (its env config
    and tokenizer): [(model turn, [Observation per call])]; the last turn (the answer) has
    none."""
    episode = Episode(SampleRecord.from_dict(record), env.formatter(tokenizer), root,
                      env.episode_config())
    episode.prompt_segment()
    out = []
    for turn in turns:
        step = episode.step(turn)
        out.append((turn, step.observations))
        if step.done:
            break
    return out


def describe_episode(outcome: Any, record: dict, root: str | os.PathLike, env: EnvConfig,
                     tokenizer: Any, width: int = 100) -> list[str]:
    """One episode (an eval Outcome or a rollout EpisodeResult: turns, answer, end_reason) in
    full, as lines: the question, each model turn, each tool call's response text with the
    frames it showed (count and times), and the answer against the truth."""
    lines = [f"Q ({record.get('dimension', '?')}, {record.get('duration', '?')} s video, "
             f"{record.get('prompt_type', 'visual prompt')}):"]
    lines += [f"    {q}" for q in str(record["question"]).splitlines()]
    for i, (turn, observations) in enumerate(replay(outcome.turns, record, root, env,
                                                    tokenizer)):
        lines.append(f"  model turn {i + 1}: {' '.join(turn.split())[:width * 2]}")
        for obs in observations:
            shown = " ".join(obs.text.split())[:width]
            times = [t for t in obs.frame_times if t is not None]
            seen = (f"{len(obs.frames)} frame(s) at {', '.join(f'{t:.1f}' for t in times)} s"
                    if times else f"{len(obs.frames)} still image(s)")
            lines.append(f"    tool -> {shown}" + ("" if obs.error else f"  [{seen}]"))
    lines.append(f"  answer {outcome.answer!r}, truth {record['answer']!r} "
                 f"({outcome.end_reason})")
    return lines


__all__ = ["describe_episode", "replay"]
