"""Whether an episode's answer is right for its record, by rule: the one verdict behind `passk`
successes, the demo's held-out accuracy, the evaluator's "answer" protocol and the teacher's
accepted trajectories.

It reads the record as GRPO's accuracy reward does (same extractor, env/answers.py): a
multiple-choice question by the letter the answer commits to, an open-ended one by whether the
answer plainly states the reference (no judge here; a judge scores open answers only inside
GRPO's reward). An answer of MAX_ANSWER_CHARS or more is wrong whatever it says: long answers
that list every possibility are how a grader is farmed.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from seeker_jax.env.answers import DEFAULT_LETTERS, choice_correct, states_reference
from seeker_jax.env.parser import MAX_ANSWER_CHARS
from seeker_jax.env.records import SampleRecord

LETTERS = "ABCDEFGH"
_LETTER_ANSWER = re.compile(r"^\s*[\(\[]?\s*[A-Ha-h]\s*[\)\]]?\s*\.?\s*$")


def is_multiple_choice(record: Mapping[str, Any]) -> bool:
    """The record's `question_form` when it has one, else: it has options, or its answer is a
    lone letter (V2P-Bench records carry neither field)."""
    form = record.get("question_form")
    if form:
        return form == "mc"
    return bool(record.get("options")) or bool(_LETTER_ANSWER.match(str(record.get("answer",
                                                                                        ""))))


def _choices(options: Any) -> tuple[str, Any]:
    """(letters, options as extract_choice reads them): {letter: text} as is; a list lettered
    A, B, ... in order; none: A-D."""
    if not options:
        return DEFAULT_LETTERS, None
    if isinstance(options, Mapping):
        return "".join(sorted(options)), dict(options)
    return LETTERS[:len(options)], {k: str(o) for k, o in zip(LETTERS, options)}


def answer_correct(answer: str | None, record: Mapping[str, Any] | SampleRecord) -> bool:
    """The verdict (module doc); `record` is a record dict or a SampleRecord."""
    if isinstance(record, SampleRecord):
        record = record.to_dict()
    if not answer or not answer.strip() or len(answer) >= MAX_ANSWER_CHARS:
        return False
    reference = str(record["answer"])
    if is_multiple_choice(record):
        letters, options = _choices(record.get("options"))
        return choice_correct(answer, reference, letters, options)
    return states_reference(answer, reference, str(record.get("question", "")))


__all__ = ["answer_correct", "is_multiple_choice"]
