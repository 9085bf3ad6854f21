"""Teacher trajectories (`seeker-jax trajectories`): a strong model drives OUR environment
through the chat agent loop (chat.py), and the episodes it answers correctly become SFT data.

Why our environment: the teacher calls the same tools, in the same sandbox, and reads the same
tool outputs the student will see (frames go to it as `image_url` data URLs with their times:
`TeacherView`); its turns are then replayed through `data.trajectories.build_trajectory` for
SFT, which runs the tools again, so an accepted episode tokenizes exactly as SFT sees it (the
test checks it token for token). Correctness is the rule of env/grading.py (multiple choice
by the committed letter, open-ended by a plain statement of the reference); a judge for
open-ended answers is not wired here. At most `k` accepted episodes per question, out of
`tries` attempts (distinct requests by `seed`, so the on-disk cache keeps them apart and a
rerun is free).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from seeker_jax.agents.chat import run_chat_episode
from seeker_jax.data.openai_api import ChatClient
from seeker_jax.data.openai_content import frames_content, observations_content, text_part
from seeker_jax.env.episode import Episode, EpisodeConfig, StepResult
from seeker_jax.env.grading import answer_correct
from seeker_jax.env.records import SampleRecord
from seeker_jax.env.video import VideoFile
from seeker_jax.models.chat import ChatFormatter, Segment, concat_segments


@dataclasses.dataclass(frozen=True)
class TeacherView:
    """How the teacher sees an episode (a ChatView): the student's system prompt and tools,
    the source video's frames at their times, then the question; each tool round as one user
    message (observations_content). root: where the record's paths start."""

    root: str | os.PathLike

    def prompt(self, episode: Episode) -> list[dict[str, Any]]:
        episode.prompt_segment()
        record, sampling = episode.record, episode.config.video
        path = Path(record.video_path)
        video = VideoFile(path if path.is_absolute() else Path(self.root) / path)
        clip = video.clip(0.0, video.info.duration, sampling)
        texts = [p for p in episode.profile.user_content(record, [], video.info.duration)
                 if isinstance(p, str)]
        messages = []
        if episode.formatter.system_text():
            messages.append({"role": "system", "content": episode.formatter.system_text()})
        content = frames_content(clip.frames, clip.timestamps) + [text_part(t) for t in texts]
        messages.append({"role": "user", "content": content})
        return messages

    def tool_messages(self, episode: Episode, step: StepResult,
                      tool_calls: list[dict]) -> list[dict[str, Any]]:
        return [{"role": "user", "content": observations_content(step.observations)}]


@dataclasses.dataclass
class TeacherEpisode:
    turns: list[str]
    answer: str | None
    end_reason: str
    tool_errors: list[str]
    format_ok: bool
    correct: bool
    segment: Segment          # the conversation as the environment tokenized it
    tokens: int               # API tokens

    @property
    def accepted(self) -> bool:
        return self.correct and self.format_ok and not self.tool_errors


def run_episode(client: ChatClient, record: dict[str, Any], formatter: ChatFormatter,
                root: str | os.PathLike, config: EpisodeConfig, seed: int,
                temperature: float = 0.7, max_tokens: int = 1024) -> TeacherEpisode:
    """One teacher episode (the tool rounds and the answer turn); API failures end it
    (end_reason api_error), never raise."""
    episode = Episode(SampleRecord.from_dict(record), formatter, root, config)
    out = run_chat_episode(client, episode, TeacherView(root), max_turns=config.max_rounds + 1,
                           end_on_api_error=True, temperature=temperature,
                           max_tokens=max_tokens, seed=seed)
    errors = [c.error for c in out.calls if c.error] + ([out.error] if out.error else [])
    return TeacherEpisode(list(episode.turns), out.answer, out.end_reason, errors,
                          episode.format_check().ok if episode.turns else False,
                          answer_correct(out.answer, record), concat_segments(episode.segments),
                          out.tokens)


def sample_question(client: ChatClient, record: dict[str, Any], formatter: ChatFormatter,
                    root: str | os.PathLike, config: EpisodeConfig, k: int, tries: int,
                    **params: Any) -> tuple[list[TeacherEpisode], list[TeacherEpisode]]:
    """Up to `tries` episodes, stopping at `k` accepted; (accepted, all)."""
    accepted, everything = [], []
    for seed in range(tries):
        ep = run_episode(client, record, formatter, root, config, seed, **params)
        everything.append(ep)
        if ep.accepted:
            accepted.append(ep)
            if len(accepted) >= k:
                break
    return accepted, everything


def sft_record(record: dict[str, Any], episode: TeacherEpisode, index: int,
               teacher: str) -> dict[str, Any]:
    """The SFT record: the sample plus the teacher's turns (what build_trajectory replays)."""
    return {**record, "id": f"{record['id']}_t{index}", "source_id": record["id"],
            "teacher_turns": episode.turns, "teacher": teacher}


def acceptance(results: list[tuple[dict, list[TeacherEpisode], list[TeacherEpisode]]]
               ) -> dict[str, dict[str, float]]:
    """Per dimension: questions, questions with >= 1 accepted episode, episodes tried and
    accepted, and the episode acceptance rate."""
    out: dict[str, dict[str, float]] = {}
    for record, accepted, everything in results:
        row = out.setdefault(str(record.get("dimension") or "-"),
                             {"questions": 0, "questions_kept": 0, "episodes": 0, "accepted": 0})
        row["questions"] += 1
        row["questions_kept"] += bool(accepted)
        row["episodes"] += len(everything)
        row["accepted"] += len(accepted)
    for row in out.values():
        row["rate"] = round(row["accepted"] / row["episodes"], 4) if row["episodes"] else 0.0
    return dict(sorted(out.items()))


def run_trajectories(client: ChatClient, root: str | os.PathLike, split: str,
                     workdir: str | os.PathLike, formatter: ChatFormatter,
                     config: EpisodeConfig, *, k: int = 1, tries: int = 4,
                     teacher_name: str = "", **params: Any) -> dict[str, Any]:
    """Rejection-samples the teacher on every record of `root`/`split`; writes
    W/sft/records/train.array_record (paths absolute, as the teacher saw them; what
    `RecordSource(W/sft)` and SFT read), W/episodes.jsonl (every episode), W/acceptance.json
    (per dimension) and W/sft_sharegpt.json (LLaMA-Factory). A rerun replays from the cache."""
    import json

    from seeker_jax.data.pipeline.interop import export_sharegpt
    from seeker_jax.data.records import read_records, split_path, write_records

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    records = read_records(root, split, resolve=True)
    results, sft, lines = [], [], []
    for record in records:
        accepted, everything = sample_question(client, record, formatter, root, config, k,
                                               tries, **params)
        results.append((record, accepted, everything))
        sft += [sft_record(record, ep, i, teacher_name) for i, ep in enumerate(accepted)]
        lines += [json.dumps({"id": record["id"], "seed": s, "turns": ep.turns,
                              "answer": ep.answer, "correct": ep.correct,
                              "accepted": ep.accepted, "end_reason": ep.end_reason,
                              "tool_errors": ep.tool_errors, "tokens": ep.tokens},
                             sort_keys=True) + "\n" for s, ep in enumerate(everything)]
    write_records(split_path(workdir / "sft", "train"), sft)
    (workdir / "episodes.jsonl").write_text("".join(lines))
    table = acceptance(results)
    (workdir / "acceptance.json").write_text(json.dumps(table, indent=1, sort_keys=True))
    export_sharegpt(sft, workdir / "sft_sharegpt.json")
    return {"questions": len(records), "sft_records": len(sft), "acceptance": table,
            "api": client.stats.as_dict()}
