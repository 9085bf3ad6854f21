"""Teacher trajectories: a strong model drives OUR environment over the OpenAI chat API, and
the episodes it answers correctly become SFT data.

Why our environment: the teacher calls the same tools, in the same sandbox, and reads the same
tool outputs the student will see (frames go to it as `image_url` data URLs with their times);
its turns are then replayed through `data.trajectories.build_trajectory` for SFT, which runs
the tools again, so an accepted episode tokenizes exactly as SFT sees it (the test checks it
token for token). Correctness is the rule (multiple choice: `env.answers.choice_correct`;
open-ended: normalized exact match). A judge for open-ended answers is not wired here yet.
At most `k` accepted episodes per question, out of `tries` attempts (distinct requests by
`seed`, so the on-disk cache keeps them apart and a rerun is free).
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from seeker_jax.data.openai_api import ApiError, ChatClient
from seeker_jax.data.openai_content import frames_content, observations_content, text_part
from seeker_jax.env.answers import choice_correct
from seeker_jax.env.episode import Episode, EpisodeConfig
from seeker_jax.env.records import SampleRecord
from seeker_jax.env.tools import Observation
from seeker_jax.env.video import VideoFile
from seeker_jax.models.chat import ChatFormatter, Segment, concat_segments


def tool_message(observations: list[Observation]) -> dict[str, Any]:
    """The tool round as the user message the teacher reads (observations_content)."""
    return {"role": "user", "content": observations_content(observations)}


def prompt_messages(episode: Episode, root: str | os.PathLike) -> list[dict[str, Any]]:
    """System (the student's: prompt and tools) and user turn (frames, then the text)."""
    record, sampling = episode.record, episode.config.video
    path = Path(record.video_path)
    video = VideoFile(path if path.is_absolute() else Path(root) / path)
    clip = video.clip(0.0, video.info.duration, sampling)
    texts = [p for p in episode.profile.user_content(record, [], video.info.duration)
             if isinstance(p, str)]
    messages = []
    if episode.formatter.system_text():
        messages.append({"role": "system", "content": episode.formatter.system_text()})
    content = frames_content(clip.frames, clip.timestamps) + [text_part(t) for t in texts]
    messages.append({"role": "user", "content": content})
    return messages


def answer_correct(answer: str | None, record: dict[str, Any]) -> bool:
    """Multiple choice by the letter rule; open-ended by normalized exact match."""
    if answer is None:
        return False
    if record.get("options"):
        return choice_correct(answer, str(record["answer"]), options=record["options"])
    norm = lambda s: re.sub(r"[^a-z0-9 ]", "", s.lower()).split()  # noqa: E731
    return norm(answer) == norm(str(record.get("answer_text") or record["answer"]))


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
    """One teacher episode; API failures end it (end_reason api_error), never raise."""
    episode = Episode(SampleRecord.from_dict(record), formatter, root, config)
    episode.prompt_segment()
    messages = prompt_messages(episode, root)
    errors: list[str] = []
    tokens, reason, answer = 0, "max_rounds", None
    for _ in range(config.max_rounds + 1):
        try:
            reply = client.chat(messages, temperature=temperature, max_tokens=max_tokens,
                                seed=seed)
        except ApiError as e:
            reason = "api_error"
            errors.append(str(e))
            break
        tokens += int(reply.usage.get("total_tokens", 0))
        result = episode.step(reply.text)
        messages.append({"role": "assistant", "content": reply.text})
        if result.done:
            reason, answer = result.end_reason, result.answer
            break
        errors += [o.error for o in result.observations if o.error]
        messages.append(tool_message(result.observations))
    return TeacherEpisode(list(episode.turns), answer, reason, errors,
                          episode.format_check().ok if episode.turns else False,
                          answer_correct(answer, record), concat_segments(episode.segments),
                          tokens)


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
