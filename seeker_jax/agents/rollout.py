"""The rollout engine: many episodes at once through the jitted sampler and the environment.

Rows of one `Sampler` hold episodes. When a row's turn ends, the episode's `step` (parse the
turn, run its tools: video decoding, the slow part) runs on a host thread while the other rows
keep decoding; when the observation is ready, it is appended to that row's cache (never
re-prefilling earlier turns) and the row decodes again. Prompts (which decode the video) are
built on the threads too. A finished episode frees its row for the next one.

An episode ends on an answer or on whatever else the environment decides (no call, the round
limit), on `max_turns`, or on the length limit: a turn that fills the row, or an observation
that would not fit, ends the episode; a vision span is never cut. With `max_response_tokens`,
everything after the prompt (turns, tool outputs, their images) is capped per episode: a turn
gets at most what is left of it, and an episode that would pass it ends ("max_response").

Bad samples (`skip_bad_samples`, GRPO's setting) never end a run: a prompt longer than the row,
a video that cannot be read or is missing (the prompt's build raises), a tool step that raises.
The episode (a prompt's whole group) ends at once with `skipped` set to why (end_reason
"prompt_too_long", "bad_video" or "tool_raised"), is logged, and holds no trainable tokens;
the caller counts and drops it. Without the setting a raise propagates, as before; a prompt
that does not fit is always skipped (there is nothing else to do with it).

Reproducible: the sampling key of every token folds in (seed, episode index, token index), so
the tokens and log-probs of a run depend on the seed and the episodes only, not on tool
timing, batch size or grouping.

GRPO groups (`run(..., group_size=n)`): episodes [g*n, (g+1)*n) share one prompt. It is built
(video decoded) once, vision-encoded and prefilled once, and its cache row is forked to the
group's other rows. A group is admitted when n rows are free (so batch_size >= n).

Episodes follow a small protocol (what `seeker_jax.env.episode.Episode` provides):
  prompt_segment() -> Segment
  step(text, ids) -> result with .done, .answer, .segment (to append), .end_reason
  segments: list[Segment] (optional: the env's own view, used to close turns exactly as it did)
  calls: list (optional: the tool-call log)
  adopt_prompt(segment) (optional: a group member takes its leader's prompt instead of
    building it; without it, the member's `segments` is set to [segment])
"""
from __future__ import annotations

import logging
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from seeker_jax.env.sandbox import SandboxError
from seeker_jax.env.video import VideoError
from seeker_jax.models.chat import Segment
from seeker_jax.generation.conversation import Conversation, Turn
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams

log = logging.getLogger(__name__)

# (episode index, turn index) -> text or token ids the turn must start with, or None.
Script = Callable[[int, int], "str | Sequence[int] | None"]


class EpisodeLike(Protocol):
    def prompt_segment(self) -> Segment: ...

    def step(self, text: str, ids: Sequence[int] | None = None) -> Any: ...


# A prompt whose build raises one of these is bad data (a corrupt or missing video, an asset
# outside the sandbox), not a bug: with skip_bad_samples the sample is skipped.
BAD_DATA = (VideoError, SandboxError, OSError)
SKIP_REASONS = ("prompt_too_long", "bad_video", "tool_raised")


@dataclass(frozen=True)
class RolloutConfig:
    """max_new_tokens: per turn; max_turns: model turns per episode (the environment may end
    it sooner); num_workers: tool threads; max_response_tokens: per episode, every token after
    the prompt (0: only the row limits it); skip_bad_samples: skip (and log) an episode whose
    video cannot be read or whose tool step raises, instead of raising (module doc)."""

    max_new_tokens: int = 1024
    max_turns: int = 8
    num_workers: int = 8
    max_response_tokens: int = 0
    skip_bad_samples: bool = False


@dataclass
class EpisodeResult:
    """One finished episode.

    conversation: all token ids, the policy mask (1 on tokens the policy sampled; prompts,
    tool outputs and the `<|im_end|>` added after a stop string are 0), the sampling
    log-probs and the pixels for re-running the forward. turns: the model's turns as text, with
    why each stopped. calls: the environment's tool-call log. skipped: why the episode could
    not run (one of SKIP_REASONS; its conversation holds nothing to learn from), else None.
    """

    index: int
    conversation: Conversation
    turns: list[str]
    turn_stop_reasons: list[str]
    answer: str | None
    end_reason: str
    calls: list = field(default_factory=list)
    skipped: str | None = None


@dataclass
class RolloutStats:
    wall_s: float = 0.0
    wait_tools_s: float = 0.0   # the decoder had nothing to run: every live row awaited a tool
    decode_s: float = 0.0
    prefill_s: float = 0.0
    end_reasons: Counter = field(default_factory=Counter)
    turns: int = 0
    tool_calls: int = 0
    # Prompt work: prompts built (video decodes), their tokens prefilled, their vision tokens
    # encoded, the host seconds building them (summed over threads), rows forked from them.
    prompts_built: int = 0
    prompt_tokens: int = 0
    prompt_vision_tokens: int = 0
    prompt_build_s: float = 0.0
    forked_rows: int = 0
    skipped: Counter = field(default_factory=Counter)  # episodes skipped, by SKIP_REASONS

    @property
    def wait_fraction(self) -> float:
        return self.wait_tools_s / self.wall_s if self.wall_s else 0.0


def stop_tokens(tokenizer, stop_strings: Sequence[str]) -> tuple[list[int], list[str]]:
    """Splits stop strings into single-token ones (stopped on device) and the rest (host)."""
    ids, rest = [], []
    for s in stop_strings:
        enc = tokenizer.encode(s, add_special_tokens=False)
        (ids.append(enc[0]) if len(enc) == 1 else rest.append(s))
    return ids, rest


def suppressed_ids(tokenizer, extra: Sequence[int] = ()) -> tuple[int, ...]:
    """The ids a tool episode's policy never emits: the four vision ids (a placeholder would
    need pixels) and `extra`, sorted. The sampler masks them (env_sampler) and GRPO's learner
    masks the same tuple (PolicyLossConfig.suppress_ids): one distribution for both."""
    from seeker_jax.models.tokenizer import special_ids

    sp = special_ids(tokenizer)
    return tuple(sorted({sp.vision_start, sp.vision_end, sp.image_pad, sp.video_pad,
                         *(int(i) for i in extra)}))


def env_sampler(model, tokenizer, *, batch_size: int, max_len: int,
                params: SamplingParams = SamplingParams(),
                stop_strings: Sequence[str] = ("</tool_call>", "</answer>"), **kwargs) -> Sampler:
    """A sampler for tool episodes: stops on `<|im_end|>`, `<|endoftext|>` and the stop
    strings; never emits vision placeholders (they would need pixels): suppressed_ids."""
    from seeker_jax.models.tokenizer import special_ids

    sp = special_ids(tokenizer)
    ids, rest = stop_tokens(tokenizer, stop_strings)
    suppress = suppressed_ids(tokenizer, params.suppress_ids)
    params = SamplingParams(params.temperature, params.top_k, params.top_p, suppress)
    return Sampler(model, batch_size=batch_size, max_len=max_len, params=params,
                   stop_token_ids=[sp.im_end, sp.endoftext, *ids], stop_strings=rest,
                   decode=lambda t: tokenizer.decode(t, skip_special_tokens=False),
                   pad_id=sp.endoftext, **kwargs)


@dataclass
class _Live:
    index: int
    episode: EpisodeLike
    turns: list[str] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)
    closing: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    last_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))


class Rollout:
    """Runs episodes through a sampler; `run` returns them in input order."""

    def __init__(self, sampler: Sampler, config: RolloutConfig = RolloutConfig(),
                 script: Script | None = None, encode: Callable[[str], list[int]] | None = None):
        if script is not None and encode is None:
            raise ValueError("a script needs `encode` (text -> ids) for its text turns")
        self.sampler, self.config = sampler, config
        self.script, self.encode = script, encode
        self.decode_text = sampler.decode_text or (lambda ids: " ".join(map(str, ids)))

    def run(self, episodes: Sequence[EpisodeLike], group_size: int = 1, seed: int | None = None,
            first_index: int = 0) -> tuple[list[EpisodeResult], RolloutStats]:
        """Runs every episode; episode i samples with key fold_in(seed, first_index + i) (the
        sampler's seed unless `seed` is given: pass a new one per GRPO iteration; first_index:
        where this call's episodes start in a larger run done in parts, so the parts draw what
        one call would). With group_size n, episodes [g*n, (g+1)*n) share one prompt, computed
        once (see the module doc)."""
        s, cfg = self.sampler, self.config
        if not 1 <= group_size <= s.batch_size:
            raise ValueError(f"group_size {group_size} must be in [1, batch_size "
                             f"{s.batch_size}]: a group's rows run side by side")
        if seed is not None:
            s.set_seed(seed)
        start = time.perf_counter()
        base = Counter(s.stats)
        stats = RolloutStats()
        queue = deque(list(range(i, min(i + group_size, len(episodes))))
                      for i in range(0, len(episodes), group_size))
        live: dict[int, _Live] = {}
        futures: dict[Future, tuple[int, str]] = {}
        results: dict[int, EpisodeResult] = {}
        ready: dict[int, Segment] = {}
        followers: dict[int, list[tuple[int, int]]] = {}  # leader row -> [(row, episode)]
        free = list(range(s.batch_size))
        s.reset()

        build_s: list[float] = []  # list.append is atomic across the tool threads

        def build_prompt(episode: EpisodeLike) -> Segment:
            t0 = time.perf_counter()
            segment = episode.prompt_segment()
            build_s.append(time.perf_counter() - t0)
            return segment

        def admit() -> None:
            while queue and len(free) >= len(queue[0]):
                group = queue.popleft()
                rows = [free.pop(0) for _ in group]
                for row, i in zip(rows, group):
                    live[row] = _Live(i, episodes[i])
                s.reset_row(rows[0], episode=first_index + group[0])
                followers[rows[0]] = list(zip(rows[1:], group[1:]))
                futures[pool.submit(build_prompt, episodes[group[0]])] = (rows[0], "prompt")

        def prompt_ready(leader: int, segment: Segment) -> None:
            """The group's prompt: queued on the leader's row for the next append (the other
            rows fork from it then), or, if it cannot fit, the end of the whole group."""
            stats.prompts_built += 1
            stats.prompt_tokens += len(segment)
            stats.prompt_vision_tokens += int((np.asarray(segment.mm_token_type_ids) != 0).sum())
            group = followers.pop(leader)
            for row, _ in group:
                _adopt(live[row].episode, segment)
                prompt_len[row] = len(segment)
            prompt_len[leader] = len(segment)
            if len(segment) > s.room(leader):
                skip([leader, *(row for row, _ in group)], "prompt_too_long",
                     f"its prompt has {len(segment)} tokens and a row holds {s.max_len}")
            else:
                ready[leader] = segment
                forks[leader] = [row for row, _ in group]

        def skip(rows: list[int], why: str, detail: str, exc: BaseException | None = None
                 ) -> None:
            """Ends these rows' episodes as skipped bad samples (module doc), logged."""
            for row in rows:
                record = getattr(getattr(live[row].episode, "record", None), "video_id", "?")
                log.warning("rollout: episode %d (video %s) skipped, %s: %s",
                            first_index + live[row].index, record, why, detail,
                            exc_info=exc if why == "tool_raised" else None)
                stats.skipped[why] += 1
                finish(row, why, skipped=why)

        def left(row: int) -> int | None:
            """Tokens of the episode's response budget still free (None: no budget)."""
            if not cfg.max_response_tokens:
                return None
            return prompt_len[row] + cfg.max_response_tokens - len(s.rows[row].ids)

        def fork(leader: int) -> None:
            rows = forks.pop(leader)
            if rows:
                s.fork(leader, rows, [first_index + live[row].index for row in rows],
                       self._forced({row: live[row] for row in rows}))
                stats.forked_rows += len(rows)

        def finish(row: int, reason: str, answer: str | None = None,
                   skipped: str | None = None) -> None:
            ep = live.pop(row)
            results[ep.index] = EpisodeResult(
                ep.index, self._record(row, ep.closing), ep.turns, ep.stops, answer, reason,
                list(getattr(ep.episode, "calls", [])), skipped)
            stats.end_reasons[reason] += 1
            s.reset_row(row)
            free.append(row)
            admit()

        def offer(row: int, segment: Segment) -> None:
            """Queues a segment for the next append, or ends the episode if it cannot fit (in
            the row, or in its response budget with room for one more token)."""
            budget = left(row)
            if len(segment) > s.room(row):
                finish(row, "max_len")  # the record keeps the turn's closing tokens
            elif budget is not None and len(segment) >= budget:
                finish(row, "max_response")
            else:
                live[row].closing = np.zeros(0, np.int32)  # now part of the segment
                ready[row] = segment

        def turn_ended(row: int, turn: Turn) -> None:
            ep = live[row]
            text = self.decode_text(turn.ids.tolist())
            ep.turns.append(text)
            ep.stops.append(turn.stop_reason)
            ep.last_ids = turn.ids
            stats.turns += 1
            budget = left(row)
            if turn.stop_reason == "max_len":
                finish(row, "max_len")
            elif turn.stop_reason == "max_new_tokens" and budget is not None and budget <= 0:
                finish(row, "max_response")  # the turn was cut by the episode's budget
            else:
                futures[pool.submit(ep.episode.step, text, turn.ids.tolist())] = (row, "step")

        def harvest(done: set[Future]) -> None:
            for fut in done:
                row, kind = futures.pop(fut)
                ep = live[row]
                if kind == "prompt":
                    try:
                        segment = fut.result()
                    except BAD_DATA as exc:
                        if not cfg.skip_bad_samples:
                            raise
                        rows = [row, *(r for r, _ in followers.pop(row))]
                        skip(rows, "bad_video", f"{type(exc).__name__}: {exc}")
                        continue
                    prompt_ready(row, segment)
                    continue
                try:
                    result = fut.result()
                except Exception as exc:  # noqa: BLE001 - a bad sample must not end the run
                    if not cfg.skip_bad_samples:
                        raise
                    skip([row], "tool_raised", f"{type(exc).__name__}: {exc}", exc)
                    continue
                ep.closing = self._closing(ep, result.done)
                if result.done:
                    finish(row, result.end_reason, result.answer)
                elif len(ep.turns) >= cfg.max_turns:
                    finish(row, "max_turns")
                else:
                    offer(row, _join(ep.closing, result.segment))

        forks: dict[int, list[int]] = {}  # leader row -> rows to fork after its prompt
        prompt_len: dict[int, int] = {}  # row -> its episode's prompt tokens
        with ThreadPoolExecutor(cfg.num_workers) as pool:
            admit()
            while live:
                harvest({f for f in futures if f.done()})
                if ready:
                    forced = self._forced({row: live[row] for row in ready})
                    rows = list(ready)
                    budgets = {row: left(row) for row in ready}
                    s.append(ready, {row: cfg.max_new_tokens if budgets[row] is None else
                                     min(cfg.max_new_tokens, budgets[row] - len(ready[row]))
                                     for row in ready}, forced)
                    ready.clear()
                    started = list(rows)
                    for row in rows:
                        if row in forks:
                            started += forks[row]
                            fork(row)
                    for row in started:
                        if not s.rows[row].active:
                            turn_ended(row, s.rows[row].result)
                if s.active_rows:
                    for row, turn in s.step().items():
                        turn_ended(row, turn)
                elif futures and not ready:
                    t0 = time.perf_counter()
                    done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                    stats.wait_tools_s += time.perf_counter() - t0
                    harvest(done)
        stats.wall_s = time.perf_counter() - start
        delta = Counter(s.stats)
        delta.subtract(base)
        stats.decode_s, stats.prefill_s = delta["decode_s"], delta["prefill_s"]
        stats.tool_calls = sum(len(r.calls) for r in results.values())
        stats.prompt_build_s = sum(build_s)
        return [results[i] for i in range(len(episodes))], stats

    def _forced(self, rows: dict[int, _Live]) -> dict[int, list[int]]:
        out = {}
        for row, ep in rows.items():
            want = self.script(ep.index, len(ep.turns)) if self.script else None
            if want:
                out[row] = self.encode(want) if isinstance(want, str) else [int(t) for t in want]
        return out

    def _closing(self, ep: _Live, done: bool) -> np.ndarray:
        """Tokens the environment put after the generated ids to close the turn (the
        `<|im_end|>` after a stop string), read from its own assistant segment."""
        segments = getattr(ep.episode, "segments", None)
        if not segments:
            return np.zeros(0, np.int32)
        assistant = np.asarray(segments[-1 if done else -2].input_ids, np.int32)
        n = len(ep.last_ids)
        if not np.array_equal(assistant[:n], ep.last_ids):
            raise RuntimeError(f"episode {ep.index}: the environment's assistant turn is not the "
                               "generated ids (token drift); it must keep generated ids as-is")
        return assistant[n:]

    def _record(self, row: int, closing: np.ndarray) -> Conversation:
        conv = self.sampler.conversation(row)
        if not len(closing):
            return conv
        n = len(closing)
        return Conversation(np.concatenate([conv.input_ids, closing]),
                            np.concatenate([conv.mm_token_type_ids, np.zeros(n, np.int32)]),
                            np.concatenate([conv.policy_mask, np.zeros(n, np.int32)]),
                            np.concatenate([conv.logprobs, np.zeros(n, np.float32)]),
                            conv.segments)


def _adopt(episode: EpisodeLike, segment: Segment) -> None:
    """A group member takes its leader's prompt as its own first segment."""
    if hasattr(episode, "adopt_prompt"):
        episode.adopt_prompt(segment)
    elif hasattr(episode, "segments"):
        episode.segments = [segment]


def _join(closing: np.ndarray, segment: Segment) -> Segment:
    if not len(closing):
        return segment
    n = len(closing)
    return Segment(np.concatenate([closing, segment.input_ids]).astype(np.int32),
                   np.concatenate([np.zeros(n, np.int32), segment.mm_token_type_ids]),
                   np.concatenate([np.zeros(n, np.int32), segment.loss_mask]),
                   segment.pixel_values, segment.image_grid_thw, segment.pixel_values_videos,
                   segment.video_grid_thw)


__all__ = ["BAD_DATA", "EpisodeResult", "Rollout", "RolloutConfig", "RolloutStats",
           "SKIP_REASONS", "Script", "env_sampler", "stop_tokens", "suppressed_ids"]
