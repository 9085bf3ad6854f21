"""The OpenAI chat-completions wire format (pydantic), and nothing else.

Requests are parsed and validated here (`parse_request`); the engine never sees JSON. A body
is refused (`RequestParseError`, a 400) unless it is one JSON object, nested at most
MAX_JSON_DEPTH deep, with no NaN / Infinity and no lone UTF-16 surrogate in any string.
Unknown request fields are *ignored* (OpenAI clients send fields we do not implement, e.g.
`user`, `metadata`); their names are kept in `ChatCompletionRequest.ignored_fields` for the
server's log (never echoed into a header: a name can hold anything). Fields we know but do not
implement are refused with a 400 (`presence_penalty` != 0, `response_format` other than text,
...): a client asking for them would otherwise get silently wrong output.
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_JSON_DEPTH = 64  # objects and arrays inside each other (the body, tool-call arguments)
MAX_STOP = 16        # stop strings per request

# ----------------------------------------------------------------------------- requests


class ImageUrl(BaseModel):
    url: str
    detail: Optional[str] = None


class VideoUrl(BaseModel):
    """url: an mp4 (data: or file://), or a frame list `data:video/png;base64,F1,F2,...` (or
    video/jpeg, vLLM's form). timestamps (an extension, for frame lists): each frame's time
    in seconds in the source video (the model reads them as `<t seconds>` text); without
    them, frame i is at i / fps (fps: given here, else the server's sampling rate)."""

    model_config = ConfigDict(extra="ignore")
    url: str
    timestamps: Optional[list[float]] = None
    fps: Optional[float] = Field(None, gt=0.0)


class ContentPart(BaseModel):
    """One part of a message's content: text, an image or a video (by URL)."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "image_url", "video_url"]
    text: Optional[str] = None
    image_url: Optional[ImageUrl] = None
    video_url: Optional[VideoUrl] = None

    @model_validator(mode="after")
    def _has_payload(self):
        if getattr(self, self.type) is None:
            raise ValueError(f"a content part of type {self.type!r} needs a {self.type!r} field")
        return self


class FunctionCall(BaseModel):
    name: str
    arguments: str  # a JSON string, as OpenAI sends it


class ToolCallMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[ContentPart], None] = None
    tool_calls: Optional[list[ToolCallMessage]] = None
    tool_call_id: Optional[str] = None
    reasoning_content: Optional[str] = None
    name: Optional[str] = None


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    description: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None


class Tool(BaseModel):
    type: Literal["function"] = "function"
    function: FunctionSpec


class NamedToolChoice(BaseModel):
    type: Literal["function"] = "function"
    function: dict[str, str]  # {"name": ...}


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions. Extra fields are ignored and listed in ignored_fields."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[Message] = Field(min_length=1)
    tools: Optional[list[Tool]] = None
    tool_choice: Union[Literal["auto", "none", "required"], NamedToolChoice, None] = None
    n: int = Field(1, ge=1, le=16)
    seed: Optional[int] = None
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=-1)
    max_tokens: Optional[int] = Field(None, ge=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    stop: Union[str, list[str], None] = None
    logprobs: bool = False
    top_logprobs: Optional[int] = Field(None, ge=0, le=20)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    return_token_ids: bool = False  # extra: prompt and completion token ids (RL clients)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: Optional[dict[str, float]] = None
    parallel_tool_calls: Optional[bool] = None
    response_format: Optional[dict[str, Any]] = None

    @model_validator(mode="after")
    def _refuse_unimplemented(self):
        if len(self.stop_list) > MAX_STOP or "" in self.stop_list:
            raise ValueError(f"stop: send at most {MAX_STOP} non-empty strings")
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise ValueError(f"{name}={getattr(self, name)} is not supported by seeker-jax "
                                 "serve; leave it at 0")
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs=true (as in OpenAI's API): set "
                             "logprobs to true, or leave top_logprobs out")
        if self.logit_bias:
            raise ValueError("logit_bias is not supported by seeker-jax serve")
        if self.parallel_tool_calls is False:
            raise ValueError("parallel_tool_calls=false is not supported: the model may write "
                             "several <tool_call> blocks in one turn")
        if self.response_format not in (None, {"type": "text"}):
            raise ValueError(f"response_format={self.response_format!r} is not supported "
                             "(no constrained decoding); only {'type': 'text'}")
        return self

    @property
    def ignored_fields(self) -> list[str]:
        return sorted(self.model_extra or {})

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def max_new_tokens(self) -> Optional[int]:
        return self.max_completion_tokens or self.max_tokens


# ----------------------------------------------------------------------------- responses


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class ResponseFunction(BaseModel):
    name: str
    arguments: str


class ResponseToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: ResponseFunction


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: Optional[list[int]] = None


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    bytes: Optional[list[int]] = None
    top_logprobs: list[TopLogprob] = []


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob]


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: Optional[str] = None
    reasoning_content: Optional[str] = None
    tool_calls: Optional[list[ResponseToolCall]] = None


class Choice(BaseModel):
    index: int
    message: ResponseMessage
    finish_reason: Literal["stop", "length", "tool_calls"]
    logprobs: Optional[ChoiceLogprobs] = None
    token_ids: Optional[list[int]] = None  # with return_token_ids


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: Optional[dict[str, int]] = None  # {"cached_tokens": ...}


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage
    prompt_token_ids: Optional[list[int]] = None  # with return_token_ids


class DeltaFunction(BaseModel):
    name: Optional[str] = None
    arguments: Optional[str] = None


class DeltaToolCall(BaseModel):
    index: int
    id: Optional[str] = None
    type: Optional[Literal["function"]] = None
    function: DeltaFunction


class Delta(BaseModel):
    role: Optional[Literal["assistant"]] = None
    content: Optional[str] = None
    reasoning_content: Optional[str] = None
    tool_calls: Optional[list[DeltaToolCall]] = None


class StreamChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Optional[Literal["stop", "length", "tool_calls"]] = None
    logprobs: Optional[ChoiceLogprobs] = None
    token_ids: Optional[list[int]] = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[StreamChoice]
    usage: Optional[Usage] = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "seeker-jax"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: int = 400) -> dict:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# ----------------------------------------------------------------------------- parsing


class RequestParseError(ValueError):
    """A request body refused before it reaches the server's logic (always a 400)."""


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON; send finite numbers")


def check_json(value: Any, where: str = "body", max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raises RequestParseError if `value` (parsed JSON) nests deeper than max_depth or holds
    a string (or object key) that is not valid Unicode. Iterative: no recursion limit."""
    stack = [(value, where, 1)]
    while stack:
        v, path, depth = stack.pop()
        if isinstance(v, str):
            _check_text(v, path)
            continue
        if not isinstance(v, (dict, list)):
            continue
        if depth > max_depth:
            raise RequestParseError(f"{path}: JSON nested deeper than {max_depth} levels; "
                                    "flatten it")
        if isinstance(v, dict):
            for k, item in v.items():
                _check_text(k, f"{path} key {k[:40]!a}")
                stack.append((item, f"{path}.{k[:40]}", depth + 1))
        else:
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(v))


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestParseError(f"{path[:200]!a}: a lone UTF-16 surrogate "
                                f"({text[exc.start]!a}) at character {exc.start} is not valid "
                                "Unicode; send paired surrogates or UTF-8") from None


def loads(raw: "bytes | str", where: str = "body") -> Any:
    """Strict JSON (no NaN / Infinity) -> a value that passed `check_json`."""
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise RequestParseError(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels; "
                                "flatten it") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestParseError(f"{where} is not valid JSON ({str(exc)[:120]})") from None
    check_json(value, where)
    return value


def validation_message(exc: ValidationError) -> str:
    """pydantic's errors as one line (the first five), for a 400."""
    parts = []
    for e in exc.errors()[:5]:
        where = ".".join(str(x)[:40] for x in e["loc"])
        parts.append(f"{where}: {e['msg']}" if where else e["msg"])
    return "invalid request: " + "; ".join(parts)


def parse_request(raw: bytes) -> ChatCompletionRequest:
    """A POST /v1/chat/completions body -> the validated request, or RequestParseError."""
    body = loads(raw, "the request body")
    if not isinstance(body, dict):
        raise RequestParseError("the request body must be a JSON object")
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise RequestParseError(validation_message(exc)) from None
