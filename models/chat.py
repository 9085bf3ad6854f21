"""THE chat formatter: turns of a tool-using conversation -> token segments.

SFT, RL rollouts and evaluation all build their model input here, so they cannot see
different formats. The text is Qwen3-VL's chat template (tools in `# Tools` / `<tools>`,
tool results as a user turn of `<tool_response>` blocks), with vision spans expanded in place:
an image is `<|vision_start|><|image_pad|>*n<|vision_end|>`, a video is, per temporal group,
`<{t:.1f} seconds><|vision_start|><|video_pad|>*n<|vision_end|>` (no extra outer pair).

A conversation is a list of `Segment`s. Where the headers live, so that generation can append:
  prompt     = <|im_start|>system ... <|im_end|>\\n<|im_start|>user\\n ... <|im_end|>\\n
               <|im_start|>assistant\\n
  assistant  = the generated ids, ending in <|im_end|>               (loss_mask 1)
  tool       = \\n<|im_start|>user\\n<tool_response>\\n...\\n</tool_response><|im_end|>\\n
               <|im_start|>assistant\\n
so prompt + assistant + tool + assistant ... equals the template's rendering of the whole
conversation, minus the template's final "\\n" after the last <|im_end|> (never generated).
Generated ids are kept as they are; only new segments are tokenized.

Text from the world (questions, tool output) is tokenized with `split_special_tokens=True`:
a question or an error message that contains "<|im_end|>" cannot close a turn.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np
from transformers import PreTrainedTokenizerBase

from seeker_jax.models.processing import ProcessedImage, ProcessedVideo
from seeker_jax.models.tokenizer import special_ids

TEXT, IMAGE, VIDEO = 0, 1, 2  # mm_token_type_ids values, as transformers' processors write them

Part = Union[str, ProcessedImage, ProcessedVideo]
Content = Sequence[Part]

TOOLS_PREAMBLE = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>")
TOOLS_POSTAMBLE = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')


@dataclass
class Segment:
    """A stretch of one conversation's tokens, with the pixels its vision tokens stand for.

    input_ids, mm_token_type_ids, loss_mask: (L,) int32. pixel_values: (N, 1536) float32 with
    image_grid_thw (n, 3) int64; pixel_values_videos / video_grid_thw likewise for videos.
    loss_mask is 1 only on assistant tokens the model must learn.
    """

    input_ids: np.ndarray
    mm_token_type_ids: np.ndarray
    loss_mask: np.ndarray
    pixel_values: np.ndarray | None = None
    image_grid_thw: np.ndarray | None = None
    pixel_values_videos: np.ndarray | None = None
    video_grid_thw: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def _cat(arrays: list[np.ndarray], dtype) -> np.ndarray | None:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else None


def concat_segments(segments: Sequence[Segment]) -> Segment:
    """One model input from a conversation's segments: everything concatenated in order.

    Pixel arrays are None when no segment has that modality.
    """
    def gather(name: str) -> list[np.ndarray]:
        return [getattr(s, name) for s in segments if getattr(s, name) is not None]

    return Segment(
        input_ids=np.concatenate([s.input_ids for s in segments]).astype(np.int32),
        mm_token_type_ids=np.concatenate([s.mm_token_type_ids for s in segments]).astype(np.int32),
        loss_mask=np.concatenate([s.loss_mask for s in segments]).astype(np.int32),
        pixel_values=_cat(gather("pixel_values"), np.float32),
        image_grid_thw=_cat(gather("image_grid_thw"), np.int64),
        pixel_values_videos=_cat(gather("pixel_values_videos"), np.float32),
        video_grid_thw=_cat(gather("video_grid_thw"), np.int64),
    )


def render_tools(tools: Sequence[dict]) -> str:
    """The `# Tools` block of the system turn, as Qwen3's template writes it (`tojson`)."""
    return (TOOLS_PREAMBLE + "".join("\n" + json.dumps(t, ensure_ascii=False) for t in tools)
            + TOOLS_POSTAMBLE)


@dataclass
class _Builder:
    """Accumulates one segment: text is buffered so that contiguous text tokenizes as one run."""

    formatter: "ChatFormatter"
    ids: list[int] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    images: list[ProcessedImage] = field(default_factory=list)
    videos: list[ProcessedVideo] = field(default_factory=list)

    def text(self, s: str) -> "_Builder":
        self.pending.append(s)
        return self

    def token(self, token_id: int, kind: int = TEXT) -> "_Builder":
        self._flush()
        self.ids.append(token_id)
        self.types.append(kind)
        return self

    def _flush(self) -> None:
        if self.pending:
            ids = self.formatter.encode("".join(self.pending))
            self.ids.extend(ids)
            self.types.extend([TEXT] * len(ids))
            self.pending = []

    def part(self, part: Part) -> "_Builder":
        sp = self.formatter.ids
        if isinstance(part, str):
            return self.text(part)
        if isinstance(part, ProcessedImage):
            self.images.append(part)
            self.token(sp.vision_start)
            for _ in range(part.num_tokens):
                self.token(sp.image_pad, IMAGE)
            return self.token(sp.vision_end)
        if isinstance(part, ProcessedVideo):
            self.videos.append(part)
            for t in part.timestamps:
                self.text(f"<{t:.1f} seconds>").token(sp.vision_start)
                for _ in range(part.tokens_per_group):
                    self.token(sp.video_pad, VIDEO)
                self.token(sp.vision_end)
            return self
        raise TypeError(f"a content part is str, ProcessedImage or ProcessedVideo, not {type(part)}")

    def build(self, loss: int = 0) -> Segment:
        self._flush()
        n = len(self.ids)
        return Segment(
            input_ids=np.asarray(self.ids, np.int32),
            mm_token_type_ids=np.asarray(self.types, np.int32),
            loss_mask=np.full(n, loss, np.int32),
            pixel_values=_cat([i.pixel_values for i in self.images], np.float32),
            image_grid_thw=(np.stack([i.grid_thw for i in self.images]).astype(np.int64)
                            if self.images else None),
            pixel_values_videos=_cat([v.pixel_values for v in self.videos], np.float32),
            video_grid_thw=(np.stack([v.grid_thw for v in self.videos]).astype(np.int64)
                            if self.videos else None),
        )


class ChatFormatter:
    """Builds the segments of one conversation format: a tokenizer, a system prompt, tools.

    tools: JSON schemas in the OpenAI/Qwen form {"type": "function", "function": {...}}.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, system_prompt: str = "",
                 tools: Sequence[dict] = ()):
        self.tokenizer = tokenizer
        self.ids = special_ids(tokenizer)
        self.system_prompt = system_prompt
        self.tools = list(tools)

    def encode(self, text: str) -> list[int]:
        """Plain text -> ids; special-token strings inside it stay text (see module doc).
        Raises ValueError on text that is not valid Unicode (a lone UTF-16 surrogate, which
        the tokenizer would reject with a bare TypeError)."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"text holds a lone UTF-16 surrogate ({text[exc.start]!a}) at "
                             f"character {exc.start}: it is not valid Unicode; pair or "
                             "replace it") from None
        return self.tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)

    def _open_turn(self, b: _Builder, role: str) -> _Builder:
        return b.token(self.ids.im_start).text(f"{role}\n")

    def system_text(self) -> str:
        """The system turn's content: the prompt, then the tools block (if any tools)."""
        if not self.tools:
            return self.system_prompt
        prefix = self.system_prompt + "\n\n" if self.system_prompt else ""
        return prefix + render_tools(self.tools)

    def system_and_user_segment(self, user: Content) -> Segment:
        """The prompt: system turn (with tools), the user turn, and the assistant header."""
        b = _Builder(self)
        if self.tools or self.system_prompt:
            self._open_turn(b, "system").text(self.system_text())
            b.token(self.ids.im_end).text("\n")
        self._open_turn(b, "user")
        for part in user:
            b.part(part)
        b.token(self.ids.im_end).text("\n")
        return self._open_turn(b, "assistant").build()

    def assistant_segment_from_ids(self, ids: Sequence[int] | np.ndarray) -> Segment:
        """A generated turn, ids untouched; loss on all of them.

        If generation stopped without `<|im_end|>` (a stop string, a length cap), it is added
        with loss_mask 0: the policy did not sample it, but the next segment needs it.
        """
        ids = [int(i) for i in ids]
        loss = [1] * len(ids)
        if not ids or ids[-1] != self.ids.im_end:
            ids.append(self.ids.im_end)
            loss.append(0)
        return Segment(np.asarray(ids, np.int32), np.zeros(len(ids), np.int32),
                       np.asarray(loss, np.int32))

    def assistant_segment_from_text(self, text: str) -> Segment:
        """A teacher's turn (SFT): its text plus `<|im_end|>`, all learned."""
        b = _Builder(self).text(text).token(self.ids.im_end)
        return b.build(loss=1)

    def tool_response_segment(self, responses: Sequence[Content]) -> Segment:
        """Tool results of one assistant turn, one `<tool_response>` block each, in one user
        turn; starts with the "\\n" that closes the assistant turn, ends with the next header."""
        # The template writes "<|im_start|>user" then "\n<tool_response>" (no newline of its own).
        b = _Builder(self).text("\n").token(self.ids.im_start).text("user")
        for content in responses:
            b.text("\n").token(self.ids.tool_response).text("\n")
            for part in content:
                b.part(part)
            b.text("\n").token(self.ids.tool_response_end)
        b.token(self.ids.im_end).text("\n")
        return self._open_turn(b, "assistant").build()

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Generated ids -> text (added tags like <think>, <tool_call> kept)."""
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)
