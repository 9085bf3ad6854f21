"""Stage 4: draw a visual prompt on one masked frame and put its phrase in the question.

The renderer is the synthetic world's own (`data.visual_prompt`), so real and synthetic data
get the same marks and phrases. The prompt type is drawn uniformly from `types` by an rng
seeded from (seed, sample id) alone, so a sample renders the same way in any run, order or
process; the same rng then goes to the renderer (colour, scribble, arrow, labels). The prompt
frame is the sampled mask frame where the target is largest (the first on ties). The output is
a V2P-style record (`env.records.SampleRecord` fields) that SFT, GRPO and eval read; its
frame_path is relative to the dataset root (frames_dir's parent), like the synthetic world's.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from seeker_jax.data.pipeline.masks import decode_rle
from seeker_jax.data.pipeline.readers import options_text
from seeker_jax.data.pipeline.stage import Outcome, Rejected
from seeker_jax.data.visual_prompt import PROMPT_TYPES, fill_placeholder, render_visual_prompt
from seeker_jax.env.video import VideoError, VideoFile


def sample_rng(seed: int, sample_id: str) -> np.random.Generator:
    """An rng that depends only on the seed and the sample id (sha256, not Python's hash)."""
    digest = hashlib.sha256(sample_id.encode("utf-8")).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


def prompt_slot(masks: dict[str, Any]) -> int:
    """Index (into masks' frames) of the largest target mask."""
    areas = [int(decode_rle(c, masks["size"]).sum()) for c in masks["rle"]]
    return int(np.argmax(areas))


def draw(frame: np.ndarray, target: np.ndarray, others: Sequence[np.ndarray], seed: int,
         sample_id: str, types: Sequence[str] = PROMPT_TYPES):
    """The prompt type (uniform over `types`) and the rendered VisualPrompt of one sample."""
    rng = sample_rng(seed, sample_id)
    prompt_type = str(types[int(rng.integers(len(types)))])
    return render_visual_prompt(frame, target, others, rng, prompt_type)


class Render:
    name, holds_model = "render", False

    def __init__(self, frames_dir: str, seed: int = 0, types: Sequence[str] = PROMPT_TYPES,
                 phrase_llm: dict[str, Any] | None = None):
        """phrase_llm: LlmPhrase's arguments (model URL#MODEL, client settings) to have an LLM
        phrase the reference to the mark (data/pipeline/phrase.py); None: the template."""
        unknown = [t for t in types if t not in PROMPT_TYPES]
        if unknown or not types:
            raise ValueError(f"render: unknown prompt types {unknown}; pick from {PROMPT_TYPES}")
        self.frames_dir, self.seed, self.types = Path(frames_dir), int(seed), tuple(types)
        self.phrase = None
        if phrase_llm:
            from seeker_jax.data.pipeline.phrase import LlmPhrase

            self.phrase = LlmPhrase(**phrase_llm)

    def __call__(self, sample: dict[str, Any]) -> Outcome:
        masks = sample["masks"]
        slot = prompt_slot(masks)
        index = masks["frame_indices"][slot]
        try:
            frame = VideoFile(sample["video_path"]).read(np.array([index]))[0]
        except VideoError as e:
            return Outcome(Rejected("video_corrupt", str(e)))
        target = decode_rle(masks["rle"][slot], masks["size"])
        if frame.shape[:2] != target.shape:
            return Outcome(Rejected("mask_size", f"mask {target.shape} vs frame {frame.shape[:2]}"))
        other_rle = masks["others"][slot] if masks.get("others") else []  # oracle only, so far
        others = [decode_rle(c, masks["size"]) for c in other_rle]
        vp = draw(frame, target, others, self.seed, sample["id"], self.types)
        self.frames_dir.mkdir(parents=True, exist_ok=True)
        frame_path = self.frames_dir / f"{sample['id']}.png"
        Image.fromarray(vp.image).save(frame_path, optimize=False)
        options = sample.get("options") or {}
        tokens, source, phrase_error = 0, "template", None
        if self.phrase is None:
            stem = fill_placeholder(sample["question_template"], vp.phrase)
        else:
            stem, tokens, source, phrase_error = self.phrase.stem(
                sample["question_template"], vp.phrase, vp.color)
        record = {
            "id": sample["id"], "video_id": Path(sample["video_path"]).stem,
            "video_path": sample["video_path"], "duration": sample["duration"],
            "question": stem + options_text(options), "answer": sample["answer"],
            "source": sample.get("source", ""),
            "frame_path": str(frame_path.relative_to(self.frames_dir.parent)),
            "dimension": sample.get("dimension", ""), "category": "pipeline",
            "prompt_type": vp.prompt_type, "prompt_frame_index": int(index),
            "prompt_time": masks["times"][slot], "prompt_color": vp.color,
            "prompt_geometry": vp.geometry, "target_phrase": vp.phrase, "phrase_source": source,
            "target_tag": sample["target_tag"], "evidence_window": list(sample["window"]),
            "question_template": sample["question_template"], "options": options,
            "question_form": "mc" if options else "open", "mask_backend": sample["mask_backend"],
            "split": sample.get("split", "train"),
        }
        if phrase_error:
            record["phrase_error"] = phrase_error
        if "truth" in sample:
            record["truth"] = sample["truth"]
        return Outcome(record, tokens)
