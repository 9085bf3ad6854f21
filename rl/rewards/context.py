"""What a reward reads about one finished episode (`RewardContext`), and how to build it from a
rollout's `EpisodeResult` and the sample's record.

The context is plain data (strings, numbers, windows), so every reward is a pure function of
it and a table of hand-written contexts tests them without a model or a video.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

QUESTION_FORMS = ("mc", "open")
# Tokens the sampler keeps at the end of a turn (it stopped on them); they are not text the
# model wrote between tags, so the format rules must not see them.
_TRAILING_SPECIALS = re.compile(r"(?:\s*(?:<\|im_end\|>|<\|endoftext\|>))+\s*$")
_LETTER_ANSWER = re.compile(r"^\s*[\(\[]?\s*[A-Ha-h]\s*[\)\]]?\s*\.?\s*$")
_TRUNCATING_STOPS = ("max_new_tokens", "max_len")
# The name env/episode.py records for a call it could not parse (bad JSON, an unclosed tag).
UNPARSED = "<unparsed>"


@dataclass(frozen=True)
class RewardContext:
    """One finished episode, as the rewards see it.

    answer: the extracted `<answer>` content (None: the episode ended without one).
    reference: the record's ground truth (a letter for "mc"). options: the choice texts in
    letter order (None: none given; V2P puts them inside the question). turns: the model's
    turns as text, trailing `<|im_end|>` removed. num_tool_calls: the well-formed calls
    (parsimony counts these); malformed_calls: those the environment could not parse, their
    own metric, never parsimony's. truncated: a length limit cut the episode.
    evidence_window: (start, end) seconds of the record's evidence. crop_windows: the
    (start_time, end_time) of each crop_video call that ran without error, in order.
    """

    question: str
    answer: str | None
    reference: str
    question_form: str = "open"
    options: list[str] | None = None
    turns: list[str] = field(default_factory=list)
    num_tool_calls: int = 0
    malformed_calls: int = 0
    tool_errors: int = 0
    end_reason: str = "answer"
    truncated: bool = False
    evidence_window: tuple[float, float] | None = None
    crop_windows: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self):
        if self.question_form not in QUESTION_FORMS:
            raise ValueError(f"RewardContext: question_form {self.question_form!r} is not one of "
                             f"{QUESTION_FORMS}")


def clean_turn(text: str) -> str:
    """A turn without the end-of-turn special tokens the sampler kept after it."""
    return _TRAILING_SPECIALS.sub("", text)


def _options(value: Any) -> list[str] | None:
    """Record options ({letter: text} in synthetic records, a list elsewhere) -> texts in
    letter order, or None when there are none."""
    if not value:
        return None
    if isinstance(value, Mapping):
        return [str(value[k]) for k in sorted(value)]
    return [str(v) for v in value]


def _window(value: Any, what: str) -> tuple[float, float] | None:
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return None
    try:
        start, end = (float(x) for x in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected [start, end] in seconds, got {value!r}") from None
    return start, end


def _field(call: Any, name: str, default: Any = None) -> Any:
    return call.get(name, default) if isinstance(call, Mapping) else getattr(call, name, default)


def crop_windows(calls: Sequence[Any]) -> list[tuple[float, float]]:
    """(start_time, end_time) of the crop_video calls that ran without error. A call is an
    env CallRecord or a dict with the same fields (name, arguments, error)."""
    out = []
    for call in calls:
        if _field(call, "name") != "crop_video" or _field(call, "error"):
            continue
        args = _field(call, "arguments") or {}
        try:
            out.append((float(args["start_time"]), float(args["end_time"])))
        except (KeyError, TypeError, ValueError):
            continue  # an argument the tool accepted but we cannot read as a window
    return out


def question_form_of(record: Mapping[str, Any]) -> str:
    """The record's `question_form`, else "mc" when it has options or its answer is a lone
    letter (V2P-Bench records carry neither field), else "open"."""
    form = record.get("question_form")
    if form:
        if form not in QUESTION_FORMS:
            raise ValueError(f"record {record.get('id', record.get('video_id', '?'))}: "
                             f"question_form {form!r} is not one of {QUESTION_FORMS}")
        return form
    answer = str(record.get("answer", ""))
    return "mc" if record.get("options") or _LETTER_ANSWER.match(answer) else "open"


def from_episode(result: Any, record: Mapping[str, Any]) -> RewardContext:
    """The context of one rollout episode (`seeker_jax.agents.rollout.EpisodeResult`: turns,
    answer, end_reason, calls, turn_stop_reasons) and its record (question, answer,
    question_form, options, evidence_window)."""
    name = f"record {record.get('id', record.get('video_id', '?'))}"
    if "question" not in record or "answer" not in record:
        raise ValueError(f"{name}: a reward needs the record's 'question' and 'answer'")
    calls = list(getattr(result, "calls", []) or [])
    stops = list(getattr(result, "turn_stop_reasons", []) or [])
    truncated = (result.end_reason in ("max_len", "max_response")
                 or bool(stops and stops[-1] in _TRUNCATING_STOPS))
    return RewardContext(
        question=str(record["question"]), answer=result.answer, reference=str(record["answer"]),
        question_form=question_form_of(record), options=_options(record.get("options")),
        turns=[clean_turn(t) for t in result.turns],
        num_tool_calls=sum(1 for c in calls if _field(c, "name") != UNPARSED),
        malformed_calls=sum(1 for c in calls if _field(c, "name") == UNPARSED),
        tool_errors=sum(1 for c in calls if _field(c, "error")), end_reason=result.end_reason,
        truncated=truncated,
        evidence_window=_window(record.get("evidence_window"), f"{name}: evidence_window"),
        crop_windows=crop_windows(calls))


__all__ = ["QUESTION_FORMS", "UNPARSED", "RewardContext", "clean_turn", "crop_windows",
           "from_episode", "question_form_of"]
