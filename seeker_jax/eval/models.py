"""Model backends for evaluation: `ckpt:PATH`, `hf:PATH` (in-process, through the rollout
engine) and `openai:URL#MODEL` (any OpenAI-compatible endpoint, driving the same Episode).

Each backend takes a batch of episodes and returns one `Outcome` per episode, in order. The
in-process backends run all of them through `Rollout` (rows decode side by side, tools on host
threads). The OpenAI backend runs episodes on threads: per turn it sends the conversation so
far (the env's own content, episodes.py's MessageFormatter) and feeds the reply to the env.

Tools reach a remote model by profile mode `tool_mode`: "text" (the tools block rendered into
the system message, as Qwen's template does, and hermes `<tool_call>` text parsed from the
reply) or "tools" (the OpenAI `tools` parameter; returned `tool_calls` become hermes text for
the env, results go back as role "tool" messages).
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

from seeker_jax.env.config import EnvConfig
from seeker_jax.data.openai_content import VIDEO_MODES, to_openai_content
from seeker_jax.eval.episodes import EvalEpisode, MessageFormatter

_SPECIAL_TAIL = ("<|im_end|>", "<|endoftext|>")


def clean_turn(text: str) -> str:
    """A turn's text without the end-of-turn token the sampler keeps."""
    for tail in _SPECIAL_TAIL:
        if text.endswith(tail):
            text = text[: -len(tail)]
    return text


@dataclass
class Outcome:
    """turns: the model's turns (text); end_reason: why the episode ended; calls: tool log."""

    turns: list[str]
    end_reason: str
    calls: list[dict] = field(default_factory=list)


def _calls(calls) -> list[dict]:
    return [{"round": c.round, "name": c.name, "arguments": c.arguments, "error": c.error}
            for c in calls]


class InProcessBackend:
    """Our model through the rollout engine, greedy. tokenizer: the one it was trained with."""

    def __init__(self, model, tokenizer, *, batch_size: int, max_len: int, max_new_tokens: int,
                 max_turns: int):
        from seeker_jax.agents.rollout import Rollout, RolloutConfig, env_sampler
        from seeker_jax.generation.sampling import SamplingParams

        self.tokenizer = tokenizer
        sampler = env_sampler(model, tokenizer, batch_size=batch_size, max_len=max_len,
                              params=SamplingParams(temperature=0.0))
        self.rollout = Rollout(sampler, RolloutConfig(max_new_tokens=max_new_tokens,
                                                      max_turns=max_turns))

    def formatter(self, env: EnvConfig):
        return env.formatter(self.tokenizer)

    def run(self, episodes: Sequence[EvalEpisode]) -> list[Outcome]:
        results, _ = self.rollout.run(episodes, seed=0)
        return [Outcome([clean_turn(t) for t in r.turns], r.end_reason, _calls(r.calls))
                for r in results]


def _hermes(tool_calls: list[dict]) -> str:
    """OpenAI tool_calls -> the hermes text the env parses."""
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


class OpenAIBackend:
    """Any OpenAI-compatible endpoint; temperature 0, one thread per episode in flight."""

    def __init__(self, client, *, max_new_tokens: int, max_turns: int, tool_mode: str = "text",
                 workers: int = 8, video_mode: str = "frames", tool_role: str = "tool"):
        if tool_mode not in ("text", "tools"):
            raise ValueError(f"tool_mode {tool_mode!r}: use 'text' or 'tools'")
        if video_mode not in VIDEO_MODES:
            raise ValueError(f"video_mode {video_mode!r}: use one of {VIDEO_MODES}")
        if tool_role not in ("tool", "user"):
            raise ValueError(f"tool_role {tool_role!r}: use 'tool' or 'user'")
        self.client, self.tool_mode, self.workers = client, tool_mode, workers
        self.video_mode, self.tool_role = video_mode, tool_role
        self.max_new_tokens, self.max_turns = max_new_tokens, max_turns

    def formatter(self, env: EnvConfig):
        from seeker_jax.env.profiles import get_profile

        profile = get_profile(env.profile)
        return MessageFormatter(profile.system_prompt, profile.tools)

    def _episode(self, ep: EvalEpisode) -> Outcome:
        fmt: MessageFormatter = ep.formatter
        ep.prompt_segment()
        history: list[dict] = []  # the conversation sent, grown turn by turn
        turns: list[str] = []
        params = {"temperature": 0, "max_tokens": self.max_new_tokens}
        if self.tool_mode == "tools" and fmt.tools:
            params["tools"] = fmt.tools
        system = fmt.system_prompt if self.tool_mode == "tools" else fmt.system_text()
        if system:
            history.append({"role": "system", "content": system})
        history.append({"role": "user", "content": self._content(fmt.log[0][1])})
        for _ in range(self.max_turns):
            reply = self.client.chat(history, **params)
            calls = reply.tool_calls if self.tool_mode == "tools" else []
            text = reply.text + _hermes(calls)
            turns.append(text)
            message = {"role": "assistant", "content": reply.text}
            if calls:
                message["tool_calls"] = calls
            history.append(message)
            result = ep.step(text)
            if result.done:
                return Outcome(turns, result.end_reason, _calls(ep.calls))
            history.extend(self._tool_messages(calls, fmt.log[-1][1]))
        return Outcome(turns, "max_turns", _calls(ep.calls))

    def _content(self, content) -> list[dict]:
        return to_openai_content(content, self.video_mode)

    def _tool_messages(self, calls: list[dict], responses: list) -> list[dict]:
        """One role "tool" message per response (Qwen's template, like our formatter, writes
        them as one user turn of `<tool_response>` blocks); tool_call ids when the server gave
        calls. tool_role "user": one user message with the blocks as text, for servers that
        refuse tool messages without tool_calls (the tags are then text, not special tokens)."""
        if self.tool_role == "user" and not calls:
            parts = [p for r in responses for p in ("\n<tool_response>\n", *r,
                                                    "\n</tool_response>")]
            return [{"role": "user", "content": self._content(parts)}]
        ids = [c.get("id", "") for c in calls] if len(calls) == len(responses) else []
        out = []
        for k, r in enumerate(responses):
            message = {"role": "tool", "content": self._content(r)}
            if ids:
                message["tool_call_id"] = ids[k]
            out.append(message)
        return out

    def run(self, episodes: Sequence[EvalEpisode]) -> list[Outcome]:
        with ThreadPoolExecutor(max(1, min(self.workers, len(episodes)))) as pool:
            return list(pool.map(self._episode, episodes))


def load_backend(spec: str, *, batch_size: int, max_len: int, max_new_tokens: int,
                 max_turns: int, tool_mode: str = "text", cache_dir: str | None = None,
                 video_mode: str = "frames", tool_role: str = "tool"
                 ) -> tuple[object, EnvConfig | None]:
    """`ckpt:PATH` | `hf:PATH` | `openai:URL#MODEL` -> (backend, the checkpoint's saved env
    config or None). video_mode, tool_role: how openai: sends videos and tool results
    (OpenAIBackend)."""
    kind, _, rest = spec.partition(":")
    if not rest or kind not in ("ckpt", "hf", "openai"):
        raise ValueError(f"--model {spec!r}: use ckpt:PATH, hf:PATH or openai:URL#MODEL")
    if kind == "openai":
        from seeker_jax.data.openai_api import ChatClient

        client = ChatClient.from_spec(rest, cache_dir=cache_dir, timeout_s=600.0)
        return OpenAIBackend(client, max_new_tokens=max_new_tokens, max_turns=max_turns,
                             tool_mode=tool_mode, video_mode=video_mode,
                             tool_role=tool_role), None
    common = dict(batch_size=batch_size, max_len=max_len, max_new_tokens=max_new_tokens,
                  max_turns=max_turns)
    if kind == "ckpt":
        from seeker_jax.checkpointing.checkpoint import load_model, read_env_config, read_tokenizer

        return (InProcessBackend(load_model(rest), read_tokenizer(rest), **common),
                read_env_config(rest))
    from seeker_jax.models.qwen3_vl import from_pretrained
    from seeker_jax.models.tokenizer import load_tokenizer

    return InProcessBackend(from_pretrained(rest), load_tokenizer(rest), **common), None

__all__ = ["InProcessBackend", "OpenAIBackend", "Outcome", "clean_turn", "load_backend"]
