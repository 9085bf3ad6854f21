"""Model backends for evaluation: `ckpt:PATH`, `hf:PATH` (in-process, through the rollout
engine) and `openai:URL#MODEL` (any OpenAI-compatible endpoint, through the chat agent loop).
Both agent loops live in seeker_jax/agents; a backend only adapts them to the evaluator.

Each backend takes a batch of episodes and returns one `Outcome` per episode, in order. The
in-process backend runs all of them through `Rollout` (rows decode side by side, tools on host
threads; GRPO-style groups share a prompt). The OpenAI backend runs episodes on threads: per
turn it sends the conversation so far (the env's own content, recorded by episodes.py's
MessageFormatter: `MessageView`) and feeds the reply to the env.

Tools reach a remote model by profile mode `tool_mode`: "text" (the tools block rendered into
the system message, as Qwen's template does, and hermes `<tool_call>` text parsed from the
reply) or "tools" (the OpenAI `tools` parameter; returned `tool_calls` become hermes text for
the env, results go back as role "tool" messages).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

from seeker_jax.agents.chat import run_chat_episode
from seeker_jax.agents.policy import Policy, load_policy
from seeker_jax.agents.rollout import RolloutStats
from seeker_jax.data.openai_content import VIDEO_MODES, to_openai_content
from seeker_jax.env.config import EnvConfig
from seeker_jax.env.episode import StepResult
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
    """turns: the model's turns (text); end_reason: why the episode ended; calls: tool log;
    answer: the episode's `<answer>` (None: it ended without one); turn_stop_reasons: why
    each turn stopped (in-process only). Field names as a rollout EpisodeResult's, so what
    reads an EpisodeResult (GRPO's rewards) reads an Outcome too."""

    turns: list[str]
    end_reason: str
    calls: list[dict] = field(default_factory=list)
    answer: str | None = None
    turn_stop_reasons: list[str] = field(default_factory=list)


def _calls(calls) -> list[dict]:
    return [{"round": c.round, "name": c.name, "arguments": c.arguments, "error": c.error}
            for c in calls]


class InProcessBackend:
    """A policy (our model, its tokenizer) through the rollout engine: greedy, or sampled at
    `temperature` (reproducible from `seed`). `stats`: the last run's RolloutStats.
    max_response_tokens: each episode's budget after its prompt (0: only the row)."""

    def __init__(self, policy: Policy, *, batch_size: int, max_len: int, max_new_tokens: int,
                 max_turns: int, temperature: float = 0.0, seed: int = 0, num_workers: int = 8,
                 max_response_tokens: int = 0):
        self.policy, self.seed = policy, seed
        self.rollout = policy.rollout(batch_size=batch_size, max_len=max_len,
                                      max_new_tokens=max_new_tokens, max_turns=max_turns,
                                      temperature=temperature, seed=seed,
                                      num_workers=num_workers,
                                      max_response_tokens=max_response_tokens)
        self.stats = RolloutStats()

    def formatter(self, env: EnvConfig):
        return env.formatter(self.policy.tokenizer)

    def run(self, episodes: Sequence[EvalEpisode], group_size: int = 1,
            first_index: int = 0) -> list[Outcome]:
        """Episodes [g*n, (g+1)*n) of group_size n share one prompt (built by the first)."""
        results, self.stats = self.rollout.run(episodes, group_size, seed=self.seed,
                                               first_index=first_index)
        return [Outcome([clean_turn(t) for t in r.turns], r.end_reason, _calls(r.calls),
                        r.answer, list(r.turn_stop_reasons)) for r in results]


@dataclass(frozen=True)
class MessageView:
    """How the evaluator shows an episode to a chat model (a ChatView): the env's own content,
    recorded by the episode's MessageFormatter, as OpenAI parts (data/openai_content.py).
    tool_mode, video_mode, tool_role: see OpenAIBackend."""

    tool_mode: str = "text"
    video_mode: str = "frames"
    tool_role: str = "tool"

    def prompt(self, episode: EvalEpisode) -> list[dict]:
        fmt: MessageFormatter = episode.formatter
        episode.prompt_segment()
        system = fmt.system_prompt if self.tool_mode == "tools" else fmt.system_text()
        history = [{"role": "system", "content": system}] if system else []
        return history + [{"role": "user", "content": self._content(fmt.log[0][1])}]

    def tool_messages(self, episode: EvalEpisode, step: StepResult,
                      tool_calls: list[dict]) -> list[dict]:
        """One role "tool" message per response (Qwen's template, like our formatter, writes
        them as one user turn of `<tool_response>` blocks); tool_call ids when the server gave
        calls. tool_role "user": one user message with the blocks as text, for servers that
        refuse tool messages without tool_calls (the tags are then text, not special tokens)."""
        responses = episode.formatter.log[-1][1]
        if self.tool_role == "user" and not tool_calls:
            parts = [p for r in responses for p in ("\n<tool_response>\n", *r,
                                                    "\n</tool_response>")]
            return [{"role": "user", "content": self._content(parts)}]
        ids = [c.get("id", "") for c in tool_calls] if len(tool_calls) == len(responses) else []
        out = []
        for k, r in enumerate(responses):
            message = {"role": "tool", "content": self._content(r)}
            if ids:
                message["tool_call_id"] = ids[k]
            out.append(message)
        return out

    def _content(self, content) -> list[dict]:
        return to_openai_content(content, self.video_mode)


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
        self.view = MessageView(tool_mode, video_mode, tool_role)

    def formatter(self, env: EnvConfig):
        from seeker_jax.env.profiles import get_profile

        profile = get_profile(env.profile)
        return MessageFormatter(profile.system_prompt, profile.tools)

    def _episode(self, ep: EvalEpisode) -> Outcome:
        tools = ep.formatter.tools if self.tool_mode == "tools" else None
        out = run_chat_episode(self.client, ep, self.view, max_turns=self.max_turns,
                               tools=tools, temperature=0, max_tokens=self.max_new_tokens)
        return Outcome(out.turns, out.end_reason, _calls(out.calls), out.answer)

    def run(self, episodes: Sequence[EvalEpisode], group_size: int = 1,
            first_index: int = 0) -> list[Outcome]:
        """Every episode on its own (a remote model shares no prompt work; greedy, so the
        episode index does not matter)."""
        with ThreadPoolExecutor(max(1, min(self.workers, len(episodes)))) as pool:
            return list(pool.map(self._episode, episodes))


def model_kind(spec: str) -> str:
    """"ckpt", "hf" or "openai": the kind of a --model spec (a malformed one: ValueError)."""
    kind, _, rest = spec.partition(":")
    if not rest or kind not in ("ckpt", "hf", "openai"):
        raise ValueError(f"--model {spec!r}: use ckpt:PATH, hf:PATH or openai:URL#MODEL")
    return kind


def load_backend(spec: str, *, batch_size: int, max_len: int, max_new_tokens: int,
                 max_turns: int, tool_mode: str = "text", cache_dir: str | None = None,
                 video_mode: str = "frames", tool_role: str = "tool"
                 ) -> tuple[object, EnvConfig | None]:
    """`ckpt:PATH` | `hf:PATH` | `openai:URL#MODEL` -> (backend, the checkpoint's saved env
    config or None). video_mode, tool_role: how openai: sends videos and tool results
    (OpenAIBackend)."""
    kind, rest = model_kind(spec), spec.partition(":")[2]
    if kind == "openai":
        from seeker_jax.data.openai_api import ChatClient

        client = ChatClient.from_spec(rest, cache_dir=cache_dir, timeout_s=600.0)
        return OpenAIBackend(client, max_new_tokens=max_new_tokens, max_turns=max_turns,
                             tool_mode=tool_mode, video_mode=video_mode,
                             tool_role=tool_role), None
    policy = load_policy(spec)
    backend = InProcessBackend(policy, batch_size=batch_size, max_len=max_len,
                               max_new_tokens=max_new_tokens, max_turns=max_turns)
    return backend, (policy.env if policy.saved_env else None)


__all__ = ["InProcessBackend", "MessageView", "OpenAIBackend", "Outcome", "clean_turn",
           "load_backend", "model_kind"]
