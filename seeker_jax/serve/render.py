"""OpenAI messages -> the conversation's token segments, through the project's one formatter.

Each message becomes one `Segment` (consecutive `tool` messages together, in one user turn of
`<tool_response>` blocks, as Qwen3's template writes them):

  [system +] first user  ChatFormatter(system, tools).system_and_user_segment  (ends in the
                         assistant header)
  assistant              the ids the server generated for it (TurnMemory), token-exact; or,
                         for a turn it did not generate, its text re-tokenized
  tool (one or more)     ChatFormatter.tool_response_segment
  later user             "\\n" + ChatFormatter().system_and_user_segment (a plain user turn)

so the concatenation equals the sampler row that generated the conversation so far, and the
engine's prefix cache can match it token for token (never re-tokenizing the model's output).
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np

from seeker_jax.models.chat import ChatFormatter, Part, Segment, concat_segments
from seeker_jax.serve.protocol import (Message, RequestParseError, Tool, ToolCallMessage,
                                       VideoUrl, loads)


class RenderError(ValueError):
    """A conversation the chat format cannot express (names the message and the fix)."""


# A content part (protocol.ContentPart) -> a formatter part; raises media.MediaError.
# (kind "image" with the URL | "video" with the whole VideoUrl (timestamps), what) -> part
LoadPart = Callable[[str, "str | VideoUrl", str], Part]


def turn_key(content: str | None, tool_calls: Sequence[ToolCallMessage] | None) -> str:
    """What identifies an assistant turn the server returned, as the client sends it back."""
    calls = [(c.id, c.function.name, c.function.arguments) for c in tool_calls or ()]
    return json.dumps([(content or "").strip(), calls])


class TurnMemory:
    """Assistant turns the server generated: turn_key -> their exact token ids (LRU, bounded).

    With it, a client that sends a conversation back gets the very tokens the model wrote,
    not a re-tokenization of their text (which may differ: token drift).
    """

    def __init__(self, capacity: int = 8192):
        self.capacity = capacity
        self._ids: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, ids: Sequence[int]) -> None:
        with self._lock:
            self._ids[key] = tuple(int(i) for i in ids)
            self._ids.move_to_end(key)
            while len(self._ids) > self.capacity:
                self._ids.popitem(last=False)

    def get(self, key: str) -> tuple[int, ...] | None:
        with self._lock:
            ids = self._ids.get(key)
            if ids is not None:
                self._ids.move_to_end(key)
            return ids


def tool_call_text(name: str, arguments: str) -> str:
    """A call as Qwen3's template writes it in an assistant turn."""
    try:
        args = loads(arguments, f"tool call {name[:40]!a}: arguments") if arguments else {}
    except RequestParseError as exc:
        raise RenderError(f"{exc}; send the arguments as a JSON string") from None
    return ("<tool_call>\n" + json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
            + "\n</tool_call>")


def _parts(msg: Message, index: int, load: LoadPart) -> list[Part]:
    content = msg.content
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    out: list[Part] = []
    for k, part in enumerate(content):
        what = f"messages[{index}].content[{k}]"
        if part.type == "text":
            out.append(part.text or "")
        elif part.type == "image_url":
            out.append(load("image", part.image_url.url, what))
        else:
            out.append(load("video", part.video_url, what))
    return out


def _text_only(msg: Message, index: int) -> str:
    if msg.content is None or isinstance(msg.content, str):
        return msg.content or ""
    if any(p.type != "text" for p in msg.content):
        raise RenderError(f"messages[{index}] ({msg.role}): only text content is allowed here")
    return "".join(p.text or "" for p in msg.content)


def _assistant(fm: ChatFormatter, msg: Message, memory: TurnMemory) -> Segment:
    ids = memory.get(turn_key(_text_only(msg, -1) or None, msg.tool_calls))
    if ids is None and msg.content is None:
        ids = memory.get(turn_key(None, msg.tool_calls))
    if ids is not None:
        return fm.assistant_segment_from_ids(ids)
    text = _text_only(msg, -1)
    if msg.reasoning_content:
        text = f"<think>\n{msg.reasoning_content}\n</think>\n\n" + text
    calls = [tool_call_text(c.function.name, c.function.arguments) for c in msg.tool_calls or ()]
    if calls:
        text = (text + "\n" if text else "") + "\n".join(calls)
    return fm.assistant_segment_from_text(text)


def render_messages(tokenizer, messages: Sequence[Message], tools: Sequence[Tool] | None,
                    load: LoadPart, memory: TurnMemory) -> list[Segment]:
    """The conversation's segments, ending in the assistant header (a generation prompt)."""
    msgs = list(messages)
    system = ""
    if msgs and msgs[0].role in ("system", "developer"):
        system = _text_only(msgs[0], 0)
        msgs = msgs[1:]
    offset = len(messages) - len(msgs)
    if not msgs or msgs[0].role != "user":
        raise RenderError("the conversation must start with a user message (after an "
                          "optional system message)")
    tool_dicts = [t.model_dump(exclude_none=True) for t in tools or ()]
    first = ChatFormatter(tokenizer, system, tool_dicts)
    plain = ChatFormatter(tokenizer)
    newline = plain.encode("\n")
    segments = [first.system_and_user_segment(_parts(msgs[0], offset, load))]
    i = 1
    while i < len(msgs):
        msg, index = msgs[i], offset + i
        prev = msgs[i - 1].role
        if msg.role in ("system", "developer"):
            raise RenderError(f"messages[{index}]: a system message must come first")
        if msg.role == "assistant":
            if prev == "assistant":
                raise RenderError(f"messages[{index}]: two assistant messages in a row")
            segments.append(_assistant(plain, msg, memory))
        elif prev != "assistant":
            raise RenderError(f"messages[{index}] ({msg.role}) follows a {prev} message: "
                              "user and tool messages must answer an assistant turn (merge "
                              "consecutive user messages into one)")
        elif msg.role == "tool":
            responses = []
            while i < len(msgs) and msgs[i].role == "tool":
                responses.append(_parts(msgs[i], offset + i, load))
                i += 1
            segments.append(plain.tool_response_segment(responses))
            continue
        else:
            head = Segment(np.asarray(newline, np.int32), np.zeros(len(newline), np.int32),
                           np.zeros(len(newline), np.int32))
            user = plain.system_and_user_segment(_parts(msg, index, load))
            segments.append(concat_segments([head, user]))
        i += 1
    if msgs[-1].role == "assistant":
        raise RenderError("the last message is an assistant turn; end with a user or tool "
                          "message (continuing an assistant turn is not supported)")
    return segments
