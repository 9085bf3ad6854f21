"""A generated turn's text -> reasoning_content, content and tool_calls, incrementally.

One splitter serves streaming and non-streaming responses, so both split a turn the same way:
`<think>...</think>` goes to reasoning_content; each well-formed Hermes `<tool_call>` block
(seeker_jax.env.parser) becomes a tool call; everything else is content. A block that does not
parse stays in the content as the model wrote it (the client sees what went wrong). Text that
may be the start of a tag is held back until it is decided.

Trimming (the same in both modes): the whitespace at the two ends of the whole content, and of
the whole reasoning, is dropped (Qwen3 writes "\n\n" after `</think>` and "\n" around tool
calls); whitespace inside is kept. Streaming holds trailing whitespace back until more text
follows, so the streamed deltas join into exactly the non-streaming content. The exact text is
in the token ids (`return_token_ids`) and the log-probs' bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from seeker_jax.env.parser import ToolCall, parse_call_body

THINK, THINK_END, CALL, CALL_END = "<think>", "</think>", "<tool_call>", "</tool_call>"


@dataclass
class Event:
    """kind: "reasoning" / "content" (text) or "tool_call" (name, arguments as JSON string)."""

    kind: str
    text: str = ""
    name: str = ""
    arguments: str = ""


def _held(buffer: str, tag: str) -> int:
    """How many trailing characters of buffer could begin `tag` (and must wait)."""
    for k in range(min(len(tag) - 1, len(buffer)), 0, -1):
        if tag.startswith(buffer[-k:]):
            return k
    return 0


@dataclass
class Trim:
    """Drops the whitespace at the two ends of a text that arrives in pieces: leading
    whitespace until the first other character, trailing whitespace held until more follows
    (and dropped if nothing does)."""

    started: bool = False
    held: str = ""

    def feed(self, text: str) -> str:
        if not self.started:
            text = text.lstrip()
            if not text:
                return ""
            self.started = True
        body = text.rstrip()
        if not body:
            self.held += text
            return ""
        out, self.held = self.held + body, text[len(body):]
        return out


@dataclass
class OutputSplitter:
    """feed(text) -> events decided so far; finish() -> the rest. Content and reasoning are
    trimmed at their ends (module doc)."""

    mode: str = "start"
    buffer: str = ""
    events: list[Event] = field(default_factory=list)
    trims: dict[str, Trim] = field(default_factory=lambda: {"reasoning": Trim(),
                                                            "content": Trim()})

    def _emit(self, kind: str, text: str) -> None:
        text = self.trims[kind].feed(text)
        if text:
            self.events.append(Event(kind, text))

    def _step(self) -> bool:
        """Decides what it can of the buffer; True if it should run again."""
        b = self.buffer
        if self.mode == "start":
            stripped = b.lstrip()
            if stripped.startswith(THINK):
                self.mode, self.buffer = "think", stripped[len(THINK):]
                return True
            if THINK.startswith(stripped):
                return False
            self.mode = "content"
            return True
        if self.mode == "think":
            end = b.find(THINK_END)
            if end >= 0:
                self._emit("reasoning", b[:end])
                self.mode, self.buffer = "content", b[end + len(THINK_END):]
                return True
            keep = _held(b, THINK_END)
            self._emit("reasoning", b[:len(b) - keep])
            self.buffer = b[len(b) - keep:]
            return False
        if self.mode == "content":
            start = b.find(CALL)
            if start >= 0:
                self._emit("content", b[:start])
                self.mode, self.buffer = "call", b[start + len(CALL):]
                return True
            keep = _held(b, CALL)
            self._emit("content", b[:len(b) - keep])
            self.buffer = b[len(b) - keep:]
            return False
        end = b.find(CALL_END)  # mode == "call"
        if end < 0:
            return False
        parsed = parse_call_body(b[:end])
        if isinstance(parsed, ToolCall):
            self.events.append(Event("tool_call", name=parsed.name,
                                     arguments=json.dumps(parsed.arguments, ensure_ascii=False)))
        else:
            self._emit("content", CALL + b[:end + len(CALL_END)])
        self.mode, self.buffer = "content", b[end + len(CALL_END):]
        return True

    def feed(self, text: str) -> list[Event]:
        self.buffer += text
        while self._step():
            pass
        out, self.events = self.events, []
        return out

    def finish(self) -> list[Event]:
        out = self.feed("")
        rest = self.buffer
        if self.mode == "call":
            rest = CALL + rest
        self.buffer = ""
        self._emit("reasoning" if self.mode == "think" else "content", rest)
        out += self.events
        self.events = []
        return out


@dataclass
class SplitTurn:
    reasoning: str | None
    content: str | None
    tool_calls: list[tuple[str, str]]  # (name, arguments JSON)


def split_turn(text: str) -> SplitTurn:
    """The whole turn at once (non-streaming): the streaming split, joined."""
    s = OutputSplitter()
    events = s.feed(text) + s.finish()
    reasoning = "".join(e.text for e in events if e.kind == "reasoning")
    content = "".join(e.text for e in events if e.kind == "content")
    calls = [(e.name, e.arguments) for e in events if e.kind == "tool_call"]
    return SplitTurn(reasoning or None, content or None, calls)
