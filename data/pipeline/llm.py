"""Strict JSON answers from an LLM / VLM over the OpenAI chat API, validated by pydantic.

Why a repair turn: the client caches by request, so asking the same thing again would return
the same bad reply. An invalid reply is instead answered with the validation error ("your reply
was rejected: ...") and asked again, up to `attempts` times; then the sample is rejected with
the last error as its reason. Everything is deterministic given the server's replies, so a
rerun (from the cache) gives the same records.
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable, TypeVar

import pydantic

from seeker_jax.data.openai_api import ApiError, ChatClient
from seeker_jax.data.pipeline.stage import Rejected

M = TypeVar("M", bound=pydantic.BaseModel)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def make_client(model: str, **kwargs: Any) -> ChatClient:
    """`model` is URL#MODEL; kwargs are ChatClient's (max_concurrency, rate_limit_per_s, ...)."""
    return ChatClient.from_spec(model, **kwargs)


def parse_reply(text: str, schema: type[M]) -> M:
    """The reply as `schema`; a ```json fence around it is allowed. Raises ValueError."""
    m = _FENCE.match(text)
    body = m.group(1) if m else text.strip()
    try:
        data = json.loads(body)
    except ValueError as e:
        raise ValueError(f"not JSON ({e.msg} at char {e.pos}): {text[:80]!r}") from None
    try:
        return schema.model_validate(data)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "reply"
        raise ValueError(f"schema: {where}: {first['msg']}") from None


def response_format(schema: type[pydantic.BaseModel], mode: str | None) -> dict[str, Any]:
    """The request's `response_format` (vLLM / OpenAI structured output), or nothing."""
    if mode == "json_schema":
        return {"response_format": {"type": "json_schema", "json_schema": {
            "name": schema.__name__, "schema": schema.model_json_schema(), "strict": True}}}
    if mode == "json_object":
        return {"response_format": {"type": "json_object"}}
    return {}


def ask_json(client: ChatClient, messages: list[dict[str, Any]], schema: type[M],
             check: Callable[[M], str | None] = lambda _: None, *, attempts: int = 3,
             json_mode: str | None = None, max_tokens: int = 512
             ) -> tuple[M | Rejected, int]:
    """Asks until a reply parses as `schema` and passes `check` (an error text or None).
    Returns (the reply or a Rejected, API tokens used)."""
    tokens, messages = 0, list(messages)
    error = "no attempt"
    params = {"temperature": 0.0, "max_tokens": max_tokens, **response_format(schema, json_mode)}
    for _ in range(max(attempts, 1)):
        try:
            result = client.chat(messages, **params)
        except ApiError as e:
            return Rejected("api_error", str(e)), tokens
        tokens += int(result.usage.get("total_tokens", 0))
        try:
            reply = parse_reply(result.text, schema)
            error = check(reply)
        except ValueError as e:
            error = str(e)
        if error is None:
            return reply, tokens
        messages += [{"role": "assistant", "content": result.text},
                     {"role": "user", "content": f"Your reply was rejected: {error}. Reply "
                      "again with only the JSON object the schema asks for."}]
    return Rejected("invalid_reply", error), tokens
