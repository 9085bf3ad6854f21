"""Reading the model's turns: Hermes tool calls, the answer, and the format check.

The model writes `<think>...</think>`, then `<tool_call>{"name": ..., "arguments": {...}}
</tool_call>` blocks (turns before the last), then one `<answer>...</answer>` (the last turn).
Nothing here raises on model output: a bad call is a `ParseError` that becomes an error message
the model sees.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Sequence, Union

MAX_ANSWER_CHARS = 1000

_CALL = re.compile(r"<tool_call>(.*?)(</tool_call>|$)", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_TAG = re.compile(r"<(/?)(think|tool_call|answer)>")


@dataclass(frozen=True)
class ToolCall:
    """A well-formed call: name and arguments as the model wrote them (types not checked)."""

    name: str
    arguments: dict
    raw: str = ""


@dataclass(frozen=True)
class ParseError:
    """A call that could not be read; `message` is what the model will be told."""

    message: str
    raw: str = ""


Parsed = Union[ToolCall, ParseError]


def _short(text: str, n: int = 80) -> str:
    text = text.strip()
    return text if len(text) <= n else text[:n] + "..."


def parse_call_body(body: str) -> Parsed:
    """The JSON between `<tool_call>` tags -> ToolCall, or a ParseError saying what is wrong."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return ParseError(f"tool call is not valid JSON ({str(exc)[:120]}): {_short(body)}", body)
    if not isinstance(obj, dict):
        return ParseError('tool call must be a JSON object {"name": ..., "arguments": {...}}', body)
    extra = sorted(set(obj) - {"name", "arguments"})
    if extra:
        return ParseError(f'tool call has unexpected keys {extra}; use only "name" and "arguments"',
                          body)
    name, arguments = obj.get("name"), obj.get("arguments", {})
    if not isinstance(name, str) or not name:
        return ParseError('tool call needs a "name" string', body)
    if isinstance(arguments, str):  # some models double-encode the arguments
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            return ParseError(f'{name}: "arguments" is a string that is not a JSON object', body)
    if not isinstance(arguments, dict):
        return ParseError(f'{name}: "arguments" must be a JSON object', body)
    return ToolCall(name, arguments, body)


def parse_tool_calls(text: str, max_calls: int = 4) -> list[Parsed]:
    """Every `<tool_call>` block of a turn, in order. Blocks past `max_calls` become one error;
    an unclosed block at the end is an error too (generation was cut inside it)."""
    out: list[Parsed] = []
    for match in _CALL.finditer(text):
        body, closed = match.group(1), match.group(2)
        if not closed:
            out.append(ParseError("tool call is not closed with </tool_call>", body))
        else:
            out.append(parse_call_body(body))
    if len(out) > max_calls:
        skipped = len(out) - max_calls
        out = out[:max_calls] + [ParseError(
            f"too many tool calls in one turn: only the first {max_calls} were run, "
            f"{skipped} skipped")]
    return out


def extract_answer(text: str) -> str | None:
    """The last `<answer>...</answer>` content, stripped; None if there is none."""
    found = _ANSWER.findall(text)
    return found[-1].strip() if found else None


@dataclass(frozen=True)
class FormatCheck:
    ok: bool
    reason: str = ""
    details: list[str] = field(default_factory=list)


def _tag_sequence(text: str) -> tuple[list[str], str]:
    """Top-level tags of a turn as ['think', 'tool_call', ...]; an error if any tag is unbalanced,
    nested, or if non-space text sits outside the tags."""
    seq: list[str] = []
    pos, open_tag = 0, None
    for m in _TAG.finditer(text):
        closing, name = m.group(1) == "/", m.group(2)
        if open_tag is None:
            if closing:
                return seq, f"</{name}> without <{name}>"
            if text[pos:m.start()].strip():
                return seq, f"text outside tags before <{name}>: {_short(text[pos:m.start()], 40)}"
            open_tag = name
        elif closing and name == open_tag:
            seq.append(name)
            open_tag = None
        else:
            return seq, f"<{'/' if closing else ''}{name}> inside <{open_tag}>"
        pos = m.end()
    if open_tag is not None:
        return seq, f"<{open_tag}> is not closed"
    if text[pos:].strip():
        return seq, f"text outside tags at the end: {_short(text[pos:], 40)}"
    return seq, ""


def validate_turn(text: str, final: bool) -> FormatCheck:
    """One assistant turn: `<think>` first; then tool calls (not final) or one answer (final)."""
    seq, error = _tag_sequence(text)
    if error:
        return FormatCheck(False, error)
    if not seq or seq[0] != "think" or seq.count("think") != 1:
        return FormatCheck(False, "a turn must start with exactly one <think>...</think>")
    rest = seq[1:]
    if final:
        if rest != ["answer"]:
            return FormatCheck(False, "the last turn must be <think> then exactly one <answer>")
        answer = extract_answer(text) or ""
        if len(answer) >= MAX_ANSWER_CHARS:
            return FormatCheck(False, f"answer has {len(answer)} characters (limit "
                                      f"{MAX_ANSWER_CHARS - 1})")
    elif not rest or any(tag != "tool_call" for tag in rest):
        return FormatCheck(False, "a turn before the last must be <think> then <tool_call>s only")
    return FormatCheck(True)


def validate_trajectory(turns: Sequence[str]) -> FormatCheck:
    """All assistant turns of an episode: tool-call turns, then one final answer turn."""
    if not turns:
        return FormatCheck(False, "no assistant turn")
    details = []
    for i, turn in enumerate(turns):
        check = validate_turn(turn, final=i == len(turns) - 1)
        if not check.ok:
            details.append(f"turn {i}: {check.reason}")
    return FormatCheck(not details, details[0] if details else "", details)
