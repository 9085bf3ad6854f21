"""Teacher trajectories for SFT, built by running the environment, and a Grain loader of them.

Why through the Episode: SFT must see exactly the tokens a rollout sees. The prompt, every
assistant turn and every tool response come from the environment's one formatter, and the tool
responses come from really running the tools on the record's video and frame.

Teacher trajectory of a synthetic record (3 assistant turns, 2 tool rounds):
  <think>I view the marked frame.</think><tool_call>view_visual_prompt("frame")</tool_call>
  <think>I watch a to b s.</think><tool_call>crop_video("video", a, b)</tool_call>
  <think>I answer.</think><answer>X</answer>

Batches (`seeker_jax.data.batch.collate`, the one path from conversations to a batch): examples
are padded to the smallest length bucket that holds them (a vision span is never cut: an example
longer than the largest bucket, or whose tool call failed, is dropped; no count is kept yet).
Pixel arrays are concatenated over the batch, as transformers does; the jitted step compiles once per
(bucket length, vision grids) signature, and the synthetic world's fixed resolution makes that
one signature per bucket.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from typing import Any

import numpy as np

from seeker_jax.env.config import EnvConfig
from seeker_jax.env.episode import Episode, EpisodeConfig
from seeker_jax.env.records import SampleRecord
from seeker_jax.data.batch import bucket_length, collate
from seeker_jax.models.chat import ChatFormatter, Segment, concat_segments


def tool_call(name: str, **arguments: Any) -> str:
    """A tool call as the teacher writes it: the JSON inside <tool_call> tags."""
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


_SECONDS = re.compile(r"(\d+(?:\.\d+)?) s\b")


def crop_window(record: dict) -> tuple[float, float]:
    """The window the teacher crops, read from the question alone (what a student sees):
    the two times it names (between a and b), half a second either side of the one time it
    names (at t), else the whole video. Rounded to 0.1 s, at least 0.5 s long, inside
    [0, duration], so the call always succeeds and its numbers are short to write."""
    duration = float(record.get("duration") or 0.0) or float(record["evidence_window"][1])
    times = [float(t) for t in _SECONDS.findall(record["question"])]
    if len(times) >= 2:
        start, end = min(times[:2]), max(times[:2])
    elif times:
        start, end = times[0] - 0.5, times[0] + 0.5
    else:
        start, end = 0.0, duration
    start = max(0.0, round(start, 1))
    end = min(round(duration, 1), round(max(end, start + 0.5), 1))
    start = max(0.0, min(start, round(end - 0.5, 1)))
    return start, end


def teacher_turns(record: dict) -> list[str]:
    """The assistant turns of a record: a real teacher's (`teacher_turns`, written by
    `seeker-jax trajectories`), else the scripted ones for a synthetic record (module doc).

    Scripted turns are short and fixed, so a tiny model learns them in minutes: each turn's
    first words say which turn it is, the tools name the sample's assets by kind ("frame",
    "video": env/sandbox.py accepts them for this sample's own files only) instead of paths
    to copy, and the crop window comes from the question (`crop_window`), so every number is
    in the prompt. A record with `teacher_shortcut` (configs/synth.py:learn_tools) gets a
    weak teacher's turns instead: view the marked frame, then answer what it shows, no crop;
    one with `teacher_guess` (configs/synth.py:learn_guess) a lazier one's: answer at once, no
    tool, with a guess; one with `teacher_answer` (configs/synth.py:learn_confuse) the usual
    turns, ending in that answer, a mistaken one.
    """
    if record.get("teacher_turns"):
        return list(record["teacher_turns"])
    if record.get("teacher_guess") is not None:   # a guessing teacher (configs/synth.py)
        return [f"<think>I answer.</think>\n<answer>{record['teacher_guess']}</answer>"]
    view = ("<think>I view the marked frame.</think>\n"
            + tool_call("view_visual_prompt", frame_path="frame"))
    if record.get("teacher_shortcut") is not None:   # a weak teacher (configs/synth.py)
        return [view, f"<think>I answer.</think>\n<answer>{record['teacher_shortcut']}</answer>"]
    start, end = crop_window(record)
    return [
        view,
        f"<think>I watch {start:.1f} to {end:.1f} s.</think>\n"
        + tool_call("crop_video", video_path="video", start_time=start, end_time=end),
        f"<think>I answer.</think>\n<answer>{record.get('teacher_answer', record['answer'])}"
        "</answer>",
    ]


def build_trajectory(record: dict, formatter: ChatFormatter, root: str | os.PathLike,
                     config: EpisodeConfig) -> Segment:
    """Runs the teacher's turns through an Episode; the whole conversation as one Segment.

    Raises if a tool call fails (a teacher trajectory with an error is not one to learn).
    """
    episode = Episode(SampleRecord.from_dict(record), formatter, root, config)
    episode.prompt_segment()
    for turn in teacher_turns(record):
        result = episode.step(turn)
        errors = [o.error for o in result.observations if o.error]
        if errors:
            raise ValueError(f"teacher trajectory of {record.get('id')}: tool error {errors[0]}")
        if result.done:
            break
    return concat_segments(episode.segments)


def grid_signature(segment: Segment) -> tuple:
    """What the jitted step specializes on besides length: the vision grids."""
    def key(grid):
        return () if grid is None else tuple(map(tuple, np.asarray(grid).tolist()))
    return key(segment.image_grid_thw), key(segment.video_grid_thw)


@dataclasses.dataclass(frozen=True)
class TrajectoryConfig:
    """env: the run's environment (no default: SFT and episodes must share the one from the
    config, env/config.py); tokenizer / model_dir: models/tokenizer.py's tokenizer_from_config
    arguments (kept as names so the transform pickles into Grain workers)."""

    env: EnvConfig
    buckets: tuple[int, ...] = (512, 1024, 2048)
    tokenizer: str = "offline_qwen"
    model_dir: str | None = None

    def episode_config(self) -> EpisodeConfig:
        return self.env.episode_config()


class _Build:
    """Grain map: record -> trajectory Segment (or None when it fits no bucket / a tool failed).

    The tokenizer is built lazily so the transform pickles into Grain worker processes.
    """

    def __init__(self, root: str, config: TrajectoryConfig):
        self.root, self.config = root, config
        self._formatter = None

    def __call__(self, record: dict) -> Segment | None:
        if self._formatter is None:
            from seeker_jax.models.tokenizer import tokenizer_from_config
            self._formatter = self.config.env.formatter(
                tokenizer_from_config(self.config.tokenizer, self.config.model_dir))
        try:
            segment = build_trajectory(record, self._formatter, self.root,
                                       self.config.episode_config())
        except ValueError:
            return None
        if bucket_length(len(segment), self.config.buckets) is None:
            return None
        return segment


def make_loader(root: str | os.PathLike, split: str, batch_size: int, config: TrajectoryConfig,
                *, seed: int = 0, shuffle: bool = True, num_epochs: int | None = None,
                prefetch: int = 2, shard_options=None):
    """Grain IterDataset of `seeker_jax.data.batch.Batch`es (process-local batch_size rows).

    Records are sharded by JAX process, shuffled per epoch and repeated; trajectories are built
    on the fly (tools run in Grain's threads); consecutive examples are collated and padded
    to the smallest bucket holding the longest of them (`seeker_jax.data.batch.collate`).
    `iter(...)` has get_state()/set_state() for exact resume.
    """
    import grain

    from seeker_jax.data.records import RecordSource

    if shard_options is None:
        shard_options = grain.sharding.ShardByJaxProcess(drop_remainder=True)
    ds = grain.MapDataset.source(RecordSource(root, split, resolve=False, use="sft"))
    count, index = shard_options.shard_count, shard_options.shard_index
    ds = ds[index:(len(ds) // count) * count:count]
    if shuffle:
        ds = ds.shuffle(seed=seed)
    ds = ds.repeat(num_epochs).map(_Build(str(root), config))
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=max(prefetch, 1),
                                              prefetch_buffer_size=max(prefetch, 1)))
    ds = ds.filter(lambda e: e is not None)
    return ds.batch(batch_size, drop_remainder=True,
                    batch_fn=functools.partial(collate, bucket=tuple(config.buckets)))


__all__ = ["TrajectoryConfig", "build_trajectory", "grid_signature", "make_loader",
           "crop_window", "teacher_turns", "tool_call"]
