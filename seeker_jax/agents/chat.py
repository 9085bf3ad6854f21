"""The agent loop over a chat API: one episode of our environment driven by a remote model
(any OpenAI-compatible server), turn by turn. The evaluator's `openai:` backend and the
teacher's trajectories both run it; in-process models run the same episodes through the
rollout engine (rollout.py).

Per turn: send the conversation so far, give the reply to the episode (its tools run on this
host, in its sandbox), append the tool results; until the episode ends (an answer, no call,
the round limit) or `max_turns`. A `ChatView` decides how the episode is shown: the
evaluator's shows the environment's own content (the very pixels our model would see), the
teacher's the source video's frames at their times.

Native tool calls (`tools` given): the schemas go as the OpenAI `tools` parameter. Either way,
a reply is joined back into the turn the model wrote (`turn_text`): servers that split a turn
(our `serve`, vLLM's reasoning and tool parsers) return the `<think>` text as
`reasoning_content` and the `<tool_call>` blocks as `tool_calls`; the turn is rebuilt in
Qwen3's template form, so an `openai:` episode records (and parses) the same turn as an
in-process one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from seeker_jax.data.openai_api import ApiError, ChatClient, ChatResult
from seeker_jax.env.episode import CallRecord, Episode, StepResult


class ChatView(Protocol):
    def prompt(self, episode: Episode) -> list[dict]:
        """The first messages (system, user); builds the episode's prompt."""

    def tool_messages(self, episode: Episode, step: StepResult,
                      tool_calls: list[dict]) -> list[dict]:
        """The messages that carry one tool round's results back."""


@dataclass
class ChatOutcome:
    """turns: the model's turns as the episode read them; answer: the episode's answer (None
    if it ended without one); end_reason: why it ended ("api_error": the server failed, see
    `error`); calls: the episode's tool-call log; tokens: API tokens spent."""

    turns: list[str]
    answer: str | None
    end_reason: str
    calls: list[CallRecord] = field(default_factory=list)
    tokens: int = 0
    error: str | None = None


def reasoning_of(reply: ChatResult) -> str | None:
    """The reply's `reasoning_content` (our serve, vLLM, SGLang; `reasoning` on some)."""
    message = reply.raw.get("choices", [{}])[0].get("message") or {}
    return message.get("reasoning_content") or message.get("reasoning") or None


def turn_text(reply: ChatResult, tool_calls: Sequence[dict]) -> str:
    """The model's turn rebuilt from a split reply, as Qwen3's chat template writes one:
    `<think>\nREASONING\n</think>\n\n` + content, then each call as a hermes block on its
    own line (serve.render renders an assistant message back the same way, so the history a
    server rebuilds is this turn). A plain text reply gives its text unchanged."""
    text, reasoning = reply.text, reasoning_of(reply)
    if reasoning:
        text = f"<think>\n{reasoning.strip()}\n</think>\n\n" + text
    if tool_calls:  # the template's rule: a newline before the calls after any text
        text = (text + "\n" if text else "") + "\n".join(hermes([c]) for c in tool_calls)
    return text


def hermes(tool_calls: Sequence[dict]) -> str:
    """OpenAI tool_calls -> the hermes text the episode parses."""
    out = []
    for c in tool_calls:
        fn = c.get("function", {})
        args = fn.get("arguments", "{}")
        try:
            args = json.loads(args) if isinstance(args, str) else args
        except ValueError:
            pass
        out.append("<tool_call>\n" + json.dumps({"name": fn.get("name"), "arguments": args})
                   + "\n</tool_call>")
    return "".join(out)


def run_chat_episode(client: ChatClient, episode: Episode, view: ChatView, *, max_turns: int,
                     tools: Sequence[dict] | None = None, end_on_api_error: bool = False,
                     **params: Any) -> ChatOutcome:
    """Plays one episode with the chat model behind `client` (params: temperature,
    max_tokens, seed, ...). end_on_api_error: an ApiError ends the episode ("api_error")
    instead of raising (the teacher moves on; the evaluator stops, so a server failure is
    never scored as a wrong answer)."""
    messages = view.prompt(episode)
    if tools:
        params = {**params, "tools": list(tools)}
    turns: list[str] = []
    tokens = 0

    def outcome(reason: str, answer: str | None = None, error: str | None = None):
        return ChatOutcome(turns, answer, reason, list(episode.calls), tokens, error)

    for _ in range(max_turns):
        try:
            reply = client.chat(messages, **params)
        except ApiError as e:
            if not end_on_api_error:
                raise
            return outcome("api_error", error=str(e))
        tokens += int(reply.usage.get("total_tokens", 0))
        calls = list(reply.tool_calls)  # a splitting server returns them without `tools` too
        text = turn_text(reply, calls)
        turns.append(text)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reasoning_of(reply):  # sent back as received: the server rebuilds the same turn
            message["reasoning_content"] = reasoning_of(reply)
        if calls:
            message["tool_calls"] = calls
        messages.append(message)
        step = episode.step(text)
        if step.done:
            return outcome(step.end_reason, step.answer)
        messages.extend(view.tool_messages(episode, step, calls))
    return outcome("max_turns")


__all__ = ["ChatOutcome", "ChatView", "hermes", "reasoning_of", "run_chat_episode",
           "turn_text"]
