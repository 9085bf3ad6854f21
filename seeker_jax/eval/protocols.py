"""Evaluation protocols: each is a small named entry (reader, prompt, extractor, decoding); one
runner (runner.py) drives them all.

Why named entries: a benchmark figure only means something with the exact protocol behind it
(prompt text, frames, tools, how the letter is read). Each entry states its source:

- "agentic": ours. The environment of training (the env config's profile, tools, round limit),
  answers read with env/answers.py's robust extractor ("(B)", "Answer: B", option text, ...).
- "v2p_official": V2P-Bench's inference (gaotiexinqu/V2P-Bench infer/infer_qwen2.5-vl.py): no
  tools, 64 frames at <= 336*336 px, the visual-prompt frame(s) after the question, greedy, 64
  new tokens; its eval/eval.py scores `response[0] == answer` (the first character).
- "videoseeker_official": VideoSeeker's public eval (eval/inference/single_inference.py, tool
  mode; on V2P-Bench only view_visual_prompt, benchmarks.json): its prompt text and layouts
  (profiles "videoseeker_official[_v2p]"), at most 5 tool rounds, greedy; its
  calu_metrics/utils.py reads the first letter inside the first `<answer>...</answer>`.
- "answer": ours, for our own records (the demo's held-out accuracy, `passk`): the training
  environment; the episode's `<answer>` judged by env/grading.py's rule, GRPO's accuracy
  without a judge (multiple choice by the committed letter, open-ended by a plain statement
  of the reference).
- "videomme": Video-MME's published prompt (profile "videomme", ending "The best answer is:");
  the extraction its scorer is publicly documented to do (lmms-eval's videomme utils; not
  available offline, re-written from that description): drop the answer prefixes, then the
  first of A-D. Not checked against the original code here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from seeker_jax.env.answers import extract_choice
from seeker_jax.env.grading import answer_correct
from seeker_jax.env.parser import extract_answer
from seeker_jax.eval.readers import EvalSample
from seeker_jax.registry import Registry

# The model's turns (text, special tokens stripped) -> the letter, or None (unparsable).
Extractor = Callable[[Sequence[str], EvalSample], "str | None"]
# (what the extractor read, the sample) -> right or wrong.
Verdict = Callable[[str, EvalSample], bool]


def same_letter(prediction: str, sample: EvalSample) -> bool:
    """The benchmarks' verdict: the letter read is the answer key's letter."""
    return prediction == sample.answer


def extract_answer_tag(turns: Sequence[str], sample: EvalSample) -> str | None:
    """The last turn's `<answer>` content (what the environment takes as the answer)."""
    return extract_answer(turns[-1]) if turns else None


def answer_verdict(prediction: str, sample: EvalSample) -> bool:
    """env/grading.py's rule on the sample's record (letter or open-ended statement)."""
    return sample.record is not None and answer_correct(prediction, sample.record)


def extract_agentic(turns: Sequence[str], sample: EvalSample) -> str | None:
    """Our robust reading (env/answers.py) of the last turn, with the sample's option texts."""
    return extract_choice(turns[-1], options=sample.options or None) if turns else None


def extract_v2p_official(turns: Sequence[str], sample: EvalSample) -> str | None:
    """V2P-Bench eval.py's `response[0]`: the first character, if it is a choice letter (the
    official script compares it with the answer as is, so any other character is wrong)."""
    text = turns[0] if turns else ""
    return text[0] if text and text[0] in "ABCD" else None


_FIRST_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)


def extract_videoseeker_official(turns: Sequence[str], sample: EvalSample) -> str | None:
    """VideoSeeker's extract_thinking_answer on its response (all rounds' text concatenated):
    the first letter (any of A-Z, upper-cased) that starts the first `<answer>` block's
    stripped content; None without one."""
    m = _FIRST_ANSWER.search("".join(turns))
    if not m:
        return None
    letter = re.match(r"^([A-Za-z])", m.group(1).strip())
    return letter.group(1).upper() if letter else None


VIDEOMME_PREFIXES = ("The best answer is", "The correct answer is", "The answer is",
                     "The answer", "The best option is", "The correct option is",
                     "Best answer:", "Best option:", "Answer:", "Option:")


def extract_videomme(turns: Sequence[str], sample: EvalSample) -> str | None:
    """Video-MME's scorer as publicly described: strip the prefixes, then the first of A-D
    anywhere (None when there is none)."""
    s = (turns[-1] if turns else "").strip()
    for prefix in VIDEOMME_PREFIXES:
        s = s.replace(prefix, "")
    m = re.search(r"[ABCD]", s)
    return m.group(0) if m else None


@dataclass(frozen=True)
class EvalProtocol:
    """name; profile: the env/profiles.py prompt profile it uses (None: the env config's);
    extract: response text -> letter or None; frames_after_question: append the visual-prompt
    frame(s) as images after the question (V2P-Bench's own layout); max_new_tokens per turn and
    max_turns per episode (1: no tools); source: where its rules come from (for the report);
    verdict: whether what was read is right (default: the answer key's letter)."""

    name: str
    profile: str | None
    extract: Extractor
    frames_after_question: bool = False
    max_new_tokens: int = 1024
    max_turns: int = 6
    source: str = ""
    verdict: Verdict = same_letter


PROTOCOLS: Registry[EvalProtocol] = Registry(
    "eval protocol", "set config.protocol, e.g. --config configs/eval.py:v2p_official")


def register_protocol(protocol: EvalProtocol) -> EvalProtocol:
    return PROTOCOLS.add(protocol.name, protocol)


def get_protocol(name: str) -> EvalProtocol:
    return PROTOCOLS.get(name)


register_protocol(EvalProtocol(
    "agentic", None, extract_agentic, max_new_tokens=1024, max_turns=6,
    source="seeker-jax: the training environment; env/answers.py extraction"))
register_protocol(EvalProtocol(
    "v2p_official", "v2p_official", extract_v2p_official, frames_after_question=True,
    max_new_tokens=64, max_turns=1,
    source="V2P-Bench infer/infer_qwen2.5-vl.py + eval/eval.py (response[0] == answer)"))
register_protocol(EvalProtocol(
    "videoseeker_official", "videoseeker_official_v2p", extract_videoseeker_official,
    max_new_tokens=8192, max_turns=6,
    source="VideoSeeker eval/inference/single_inference.py (tool mode) + "
           "eval/calu_metrics/utils.py (first letter in the first <answer>)"))
register_protocol(EvalProtocol(
    "answer", None, extract_answer_tag, max_new_tokens=1024, max_turns=6,
    source="seeker-jax: the training environment; the <answer> judged by env/grading.py "
           "(GRPO's accuracy rule without a judge)", verdict=answer_verdict))
register_protocol(EvalProtocol(
    "videomme", "videomme", extract_videomme, max_new_tokens=64, max_turns=1,
    source="Video-MME prompt and answer extraction as publicly documented (lmms-eval videomme; "
           "re-written, not checked against its code offline)"))

__all__ = ["EvalProtocol", "Extractor", "PROTOCOLS", "VIDEOMME_PREFIXES", "Verdict",
           "answer_verdict", "extract_agentic", "extract_answer_tag", "extract_v2p_official",
           "extract_videomme", "extract_videoseeker_official", "get_protocol",
           "register_protocol", "same_letter"]
