"""The one record format: what evaluation, SFT and GRPO read, as pydantic models.

Why pydantic: the models are the check every reader runs (`validate_record`) and the JSON Schema
docs/data.md shows (`model_json_schema()`, compared with the doc by tests/test_data_import.py),
so the documented format and the checked one cannot drift apart.

A record is one question about one video: `video_id, video_path, question, answer` are
required; `duration, frame_path, dimension, category, options, ...` are optional; any other key
is kept as it is (synthetic records carry their world's truth that way). Paths are relative to
the dataset root (data/records.py). Uses:
  EvalRecord  what `seeker-jax eval` scores (the V2P-Bench format additionally needs duration,
              frame_path and dimension: seeker_jax/eval/readers.py)
  RLRecord    what GRPO rolls out and rewards: an EvalRecord, plus the evidence window the
              tool rewards may read
  SFTRecord   what SFT turns into a training sequence: an RLRecord whose assistant turns are
              `teacher_turns`, or, without them, the scripted teacher's (data/trajectories.py),
              which views the visual-prompt frame and so needs `frame_path`

`dimension` accepts V2P-Bench's integer codes (1), their string form ("1") and names ("OA") and
is stored as the name; anything else is an error that lists the allowed values.
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError,
                      WithJsonSchema, model_validator)

# V2P-Bench's dimension codes (its eval/eval.py dim_mapping); 8, 11, 15, 16 are unused.
DIMENSIONS = {1: "OA", 2: "HA", 3: "OD", 4: "FM", 5: "CR", 6: "PU", 7: "CI", 9: "FT",
              10: "RT", 12: "AS", 13: "SR", 14: "GC"}
_BY_NAME = {name: name for name in DIMENSIONS.values()}
ALLOWED_DIMENSIONS = ", ".join(f"{code}/{name}" for code, name in DIMENSIONS.items())


class RecordError(ValueError):
    """A record that does not fit the format; the message names the record, field and fix."""


def normalize_dimension(value: Any) -> str:
    """1, "1" or "OA" -> "OA"; None or "" -> "" (no dimension); anything else is an error."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"unknown dimension {value!r}")
    text = str(value).strip()
    if text.isdigit() and int(text) in DIMENSIONS:
        return DIMENSIONS[int(text)]
    if text.upper() in _BY_NAME:
        return text.upper()
    raise ValueError(f"unknown dimension {value!r}")


def _text(value: Any) -> Any:
    """Numbers as text (V2P-Bench writes category as an integer code, some files video ids)."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


_DIMENSION_SCHEMA = {
    "description": "V2P-Bench dimension: an integer code, its string form or its name; "
                   "stored as the name ('' for none)",
    "anyOf": [{"type": "string", "enum": ["", *DIMENSIONS.values()]},
              {"type": "integer", "enum": list(DIMENSIONS)},
              {"type": "string", "enum": [str(code) for code in DIMENSIONS]}]}
Dimension = Annotated[str, BeforeValidator(normalize_dimension), WithJsonSchema(_DIMENSION_SCHEMA)]
Text = Annotated[str, BeforeValidator(_text)]
Required = Annotated[str, BeforeValidator(_text), Field(min_length=1)]


class EvalRecord(BaseModel):
    """One question about one video, as evaluation reads it (paths relative to the root)."""

    model_config = ConfigDict(extra="allow", title="EvalRecord")

    video_id: Required = Field(description="names the video (several questions may share it)")
    video_path: Required = Field(description="the video file, relative to the dataset root")
    question: Required = Field(description="the question text, options inside as 'A. ...' "
                                           "lines for a multiple-choice question")
    answer: Required = Field(description="the correct option letter, or the answer text of an "
                                         "open question")
    id: Text | None = Field(None, description="unique per record (default: made on import)")
    duration: float | None = Field(None, ge=0, description="video length in seconds")
    frame_path: str | list[str] | None = Field(
        None, description="the visual-prompt frame (an image), relative to the dataset root; "
        "a list where there are several (V2P-Bench; import keeps the first here and all in "
        "frame_paths)")
    frame_paths: list[str] | None = Field(None, description="all visual-prompt frames when "
                                                            "there are several")
    dimension: Dimension = ""
    category: Text = Field("", description="free-form category (V2P-Bench: an integer code)")
    options: dict[str, str] | None = Field(None, description="{letter: option text}; for "
                                                             "grading, when the question has them")
    question_form: Literal["mc", "open"] | None = Field(
        None, description="multiple choice or open (default: mc when options or a letter answer)")
    source: str | None = Field(None, description="where the record comes from")


class RLRecord(EvalRecord):
    """A record GRPO rolls out and rewards (the reward compares the answer with `answer`)."""

    model_config = ConfigDict(title="RLRecord")

    evidence_window: list[float] | None = Field(
        None, min_length=2, max_length=2, description="[start, end] seconds that show the "
        "answer; the tool rewards may score crops against it")


class SFTRecord(RLRecord):
    """A record SFT trains on: its teacher's assistant turns, or the scripted teacher's."""

    model_config = ConfigDict(title="SFTRecord")

    teacher_turns: list[str] | None = Field(
        None, description="the assistant turns in order: thinking and <tool_call>s, the last "
        "one ending in <answer>X</answer>; the tools run between them")

    @model_validator(mode="after")
    def _scripted_teacher_needs_frame(self) -> "SFTRecord":
        if not self.teacher_turns and not self.frame_path:
            raise ValueError("frame_path: missing")
        return self


MODELS: dict[str, type[EvalRecord]] = {"eval": EvalRecord, "rl": RLRecord, "sft": SFTRecord}

_FIXES = {
    "video_id": 'add a name for the video, e.g. "video_id": "cooking_01"',
    "video_path": 'add the video file, relative to the dataset root, e.g. '
                  '"video_path": "videos/cooking_01.mp4"',
    "question": 'add the question with its options, e.g. "question": '
                '"What color is the cup?\\nA. red\\nB. blue"',
    "answer": 'add the correct option letter, e.g. "answer": "B"',
    "duration": 'give the video length in seconds, e.g. "duration": 12.5',
    "frame_path": 'add the visual-prompt frame, relative to the dataset root, e.g. '
                  '"frame_path": "frames/cooking_01.png"',
    "dimension": f"use a V2P-Bench code or name ({ALLOWED_DIMENSIONS}) or leave it out",
    "options": 'give {letter: text}, e.g. "options": {"A": "red", "B": "blue"}',
    "question_form": 'use "mc" or "open"',
    "evidence_window": 'give [start, end] in seconds, e.g. "evidence_window": [2.0, 4.5]',
    "teacher_turns": 'give a list of assistant turns, e.g. ["<think>..</think><answer>B'
                     '</answer>"]',
}
_SFT_FRAME = ('SFT without "teacher_turns" runs the scripted teacher, which views the '
              'visual-prompt frame: add "frame_path": "frames/x.png" or the record\'s '
              '"teacher_turns"')


def record_label(index: int | str, record: Any) -> str:
    """How messages name a record: `record 3 (video_id 'x')`."""
    vid = record.get("video_id") if isinstance(record, dict) else None
    return f"record {index}" + (f" (video_id {str(vid)!r})" if vid not in (None, "") else "")


def field_message(label: str, name: str, problem: str = "missing") -> str:
    """`record 3 (video_id 'x'): field 'answer' missing; add the correct option letter, ...`."""
    fix = _FIXES.get(name, "see docs/data.md for the record format")
    return f"{label}: field {name!r} {problem}; {fix}"


def _problem(error: dict[str, Any]) -> tuple[str, str]:
    """(field, what is wrong with it) of pydantic's first error."""
    loc = [str(p) for p in error.get("loc", ())]
    kind, got = error.get("type", ""), error.get("input")
    if kind == "value_error" and not loc and "frame_path" in error.get("msg", ""):
        return "frame_path", "missing (SFT)"
    name = loc[0] if loc else "?"
    if kind == "missing" or (kind.endswith("too_short") and got == ""):
        return name, "missing" if kind == "missing" else "is empty"
    if name == "dimension":
        return name, f"is {got!r}, not a known dimension"
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    where = "".join(f"[{p}]" for p in loc[1:])
    return name, f"{where} is {got!r}: {msg[:1].lower() + msg[1:]}" if where else \
        f"is {got!r}: {msg[:1].lower() + msg[1:]}"


def validate_record(record: Any, use: str = "eval", label: str | None = None,
                    required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The record checked for `use` ("eval", "rl", "sft") and normalized (dimension as its
    name, numbers as text where text is meant); keys it does not know are kept. required: a
    format's own required fields besides the model's (V2P-Bench: duration, frame_path,
    dimension). Raises RecordError with a one-line message naming the record, the first bad
    field and its fix, and every other field that is missing (so a file is fixed in one pass)."""
    label = label or record_label("?", record)
    if not isinstance(record, dict):
        raise RecordError(f"{label}: is {type(record).__name__}, not a JSON object; a record is "
                          '{"video_id": ..., "video_path": ..., "question": ..., "answer": ...}')
    problems: list[tuple[str, str]] = []
    try:
        model = MODELS[use].model_validate(record)
    except ValidationError as e:
        problems = [_problem(error) for error in e.errors()]
    named = {name for name, _ in problems}
    problems += [(name, "missing") for name in required
                 if record.get(name) in (None, "", []) and name not in named]
    if problems:
        raise RecordError(_message(label, problems))
    return model.model_dump(exclude_unset=True)


def _message(label: str, problems: list[tuple[str, str]]) -> str:
    name, problem = problems[0]
    if problem == "missing (SFT)":
        head = f"{label}: field 'frame_path' missing; {_SFT_FRAME}"
    else:
        head = field_message(label, name, problem)
    missing = [repr(n) for n, p in problems[1:] if p in ("missing", "is empty")]
    others = len(problems) - 1 - len(missing)
    return (head + (f" (also missing: {', '.join(missing)})" if missing else "")
            + (f" (and {others} more problem(s))" if others else ""))


def json_schemas() -> dict[str, dict[str, Any]]:
    """{model name: JSON Schema} of the three uses, as docs/data.md shows them."""
    return {model.__name__: model.model_json_schema() for model in MODELS.values()}


def schema_block(schema: dict[str, Any]) -> str:
    """A JSON Schema as docs/data.md prints it: one line per property, so it reads as a table
    (the same JSON, `json.loads` gives the schema back)."""
    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    lines = []
    for key, value in schema.items():
        if key == "properties":
            props = [f"    {dump(name)}: {dump(prop)}" for name, prop in value.items()]
            lines.append('  "properties": {\n' + ",\n".join(props) + "\n  }")
        else:
            lines.append(f"  {dump(key)}: {dump(value)}")
    return "{\n" + ",\n".join(lines) + "\n}"


__all__ = ["ALLOWED_DIMENSIONS", "DIMENSIONS", "EvalRecord", "MODELS", "RLRecord", "RecordError",
           "SFTRecord", "field_message", "json_schemas", "normalize_dimension", "record_label",
           "schema_block", "validate_record"]


if __name__ == "__main__":  # what docs/data.md shows: `python -m seeker_jax.data.schema`
    for name, schema in json_schemas().items():
        print(f"<!-- schema: {name} -->\n```json\n{schema_block(schema)}\n```\n")
