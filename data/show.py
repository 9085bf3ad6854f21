"""`seeker-jax data show`: one record and the exact training sequence SFT builds from it.

Why: what a model learns is the token sequence, not the record. This builds the sequence the
way SFT's loader does (data/trajectories.py: the record checked as SFT checks it, the teacher's
turns run through an Episode with the config's environment and tokenizer) and prints it as
text: the chat with its tool turns, runs of vision tokens shortened to one mark, and the tokens
that carry the loss between LOSS_OPEN and LOSS_CLOSE.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from seeker_jax.models.chat import Segment

LOSS_OPEN, LOSS_CLOSE = "[[", "]]"
_VISION = {1: "<|image_pad|>", 2: "<|video_pad|>"}


def render_sequence(segment: Segment, tokenizer) -> str:
    """The sequence as text; loss-carrying tokens wrapped in [[ ]], vision runs as
    `<|video_pad|>x64`. Decoded run by run, so the text is the tokens' own."""
    ids = np.asarray(segment.input_ids)
    kinds = np.asarray(segment.mm_token_type_ids)
    loss = np.asarray(segment.loss_mask) > 0
    out, start = [], 0
    for end in range(1, len(ids) + 1):
        if end < len(ids) and kinds[end] == kinds[start] and loss[end] == loss[start]:
            continue
        if kinds[start] in _VISION:
            text = f"{_VISION[int(kinds[start])]}x{end - start}"
        else:
            text = tokenizer.decode(ids[start:end].tolist(), skip_special_tokens=False)
        out.append(f"{LOSS_OPEN}{text}{LOSS_CLOSE}" if loss[start] else text)
        start = end
    return "".join(out)


@dataclass
class Shown:
    record: dict[str, Any]
    text: str | None          # None when SFT drops the record (`dropped` says why)
    tokens: int = 0
    loss_tokens: int = 0
    bucket: int | None = None
    dropped: str | None = None


def show_record(root: str | os.PathLike, split: str, index: int, config,
                model_dir: str | None = None) -> Shown:
    """Record `index` of ROOT/records/SPLIT and its SFT sequence under `config` (an SFT config:
    its env, tokenizer and data.buckets; model_dir: the folder of config.model.init_from, for
    tokenizer "model"), built as SFT's loader builds it."""
    from seeker_jax.data.batch import bucket_length
    from seeker_jax.data.records import RecordSource
    from seeker_jax.data.trajectories import build_trajectory
    from seeker_jax.env.config import EnvConfig
    from seeker_jax.models.tokenizer import tokenizer_from_config

    source = RecordSource(root, split, resolve=False, use="sft")
    if not 0 <= index < len(source):
        raise IndexError(f"--index {index}: split {split!r} of {root} holds {len(source)} "
                         "record(s); indices start at 0")
    record = source[index]
    env = EnvConfig.from_config(config.env)
    tokenizer = tokenizer_from_config(config.tokenizer, model_dir)
    try:
        segment = build_trajectory(record, env.formatter(tokenizer), str(root),
                                   env.episode_config())
    except ValueError as e:
        return Shown(record, None, dropped=f"SFT drops this record: {e}")
    buckets = tuple(config.data.buckets)
    bucket = bucket_length(len(segment), buckets)
    shown = Shown(record, render_sequence(segment, tokenizer), len(segment),
                  int(np.asarray(segment.loss_mask).sum()), bucket)
    if bucket is None:
        shown.dropped = (f"SFT drops this record: {len(segment)} tokens is longer than every "
                         f"bucket {buckets}; add a larger one (--config.data.buckets)")
    return shown


__all__ = ["LOSS_CLOSE", "LOSS_OPEN", "Shown", "render_sequence", "show_record"]
