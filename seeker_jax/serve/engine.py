"""The serving engine: requests share one Sampler's rows (continuous batching) on a background
thread, and conversations that come back continue from their cache rows. Knows nothing of HTTP.

- Continuous batching: a request waits in a FIFO queue until it has n free rows. Between
  decode calls, waiting requests are prefilled together into the free rows and join the
  decoding ones, whatever their temperature / top_k / top_p: each row samples with its own,
  as data in the same compiled programs (a new value never compiles).
- Conversation (prefix) cache: a finished row keeps its conversation (prompt + generated ids)
  in the KV cache. A new request whose token ids start with a free row's whole conversation
  (token-exact; the renderer gives back the very ids generated, see render.TurnMemory) takes
  that row and prefills only the rest: the new tool results or user turn. Otherwise it takes
  the least recently used free row. `stats` counts prompt, cached and prefilled tokens.
- Randomness: choice i of a request with seed s samples as episode (16*s + i) of the
  sampler's key, whatever else runs: a seeded request is reproducible, batched or not.

- top_logprobs: while any live request asks for alternatives, the sampler records the top
  TOP_LOGPROBS_MAX of every sampled position (one static size: two compiles of each sampling
  program at most, whatever N requests ask for); each request gets its first N. When none
  asks, the sampler runs its plain programs.
- A row stops decoding as soon as its turn is over for the client: at a stop string (matched
  here, on the host) the sampler's turn ends right after it (the cache keeps exactly the
  tokens sent, so the prefix cache can continue the conversation); a cancelled request (a
  client that went away) ends its rows' turns at once. Either frees the rows for the queue.

Events go back on a per-request queue: ("tokens", choice, ids, logprobs, alternatives),
("done", choice, finish_reason, matched stop string or None), ("error", message, status):
status is the HTTP status the client gets (503 shutting down, 499 cancelled, 500 a bug).
alternatives: None, or per token (ids, log-probs) of the request's top_logprobs best.
"""
from __future__ import annotations

import itertools
import logging
import queue
import random
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from seeker_jax.generation.decoding import STOP_CANCELLED
from seeker_jax.models.chat import Segment, concat_segments
from seeker_jax.models.tokenizer import special_ids
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams
from seeker_jax.generation.stops import find_stop

log = logging.getLogger(__name__)

FINISH = {"stop_token": "stop", "max_new_tokens": "length", "max_len": "length",
          "stop_string": "stop"}
TOP_LOGPROBS_MAX = 20  # OpenAI's limit on top_logprobs; the sampler's one static size
SHUTTING_DOWN = "the server is shutting down; retry on another replica or later"


class EngineError(ValueError):
    """A request the engine cannot run (too long for a row, too many choices): a 400."""

    status = 400


class EngineClosed(EngineError):
    """The engine is closed (the server is shutting down): a 503."""

    status = 503


@dataclass
class GenerationRequest:
    """One chat completion: the conversation's segments and how to sample n continuations.

    params: temperature / top_k / top_p (suppressed ids are the engine's). forced: ids every
    choice's turn starts with (tool_choice). stop: stop strings, checked on the host.
    top_logprobs: how many alternatives (0..TOP_LOGPROBS_MAX) each generated token reports.
    """

    segments: list[Segment]
    params: SamplingParams = SamplingParams()
    max_new_tokens: int = 256
    n: int = 1
    seed: int | None = None
    forced: tuple[int, ...] = ()
    stop: tuple[str, ...] = ()
    top_logprobs: int = 0


@dataclass
class Handle:
    """What submit returns: the event queue, and the prompt's token counts."""

    request: GenerationRequest
    prompt_ids: np.ndarray
    events: "queue.Queue[tuple]" = field(default_factory=queue.Queue)
    cached_tokens: int = 0
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class _Choice:
    handle: Handle
    index: int
    row: int
    sent: int = 0
    done: bool = False


def tail_segment(segments: Sequence[Segment], start: int) -> Segment:
    """The conversation's tokens from `start` on, with the pixels of the images and videos that
    lie there. `start` must not fall inside an image or video."""
    whole = concat_segments(segments)
    types = whole.mm_token_type_ids
    out = dict(pixel_values=None, image_grid_thw=None, pixel_values_videos=None,
               video_grid_thw=None)
    for kind, pix, grids in ((1, "pixel_values", "image_grid_thw"),
                             (2, "pixel_values_videos", "video_grid_thw")):
        grid = getattr(whole, grids)
        if grid is None:
            continue
        where = np.flatnonzero(types == kind)
        keep, patch0, tok0 = [], 0, 0
        first_patch = None
        for g in np.asarray(grid).reshape(-1, 3):
            n_tok, n_patch = int(np.prod(g)) // 4, int(np.prod(g))
            first, last = where[tok0], where[tok0 + n_tok - 1]
            if first < start <= last:
                raise ValueError(f"tail_segment: position {start} is inside a vision span")
            if first >= start:
                keep.append(g)
                first_patch = patch0 if first_patch is None else first_patch
            patch0, tok0 = patch0 + n_patch, tok0 + n_tok
        if keep:
            out[pix] = getattr(whole, pix)[first_patch:]
            out[grids] = np.stack(keep)
    return Segment(whole.input_ids[start:], types[start:], whole.loss_mask[start:], **out)


class Engine:
    """One model, one sampler of `batch_size` rows of `max_len` tokens, one worker thread."""

    def __init__(self, model, tokenizer, *, batch_size: int = 8, max_len: int = 4096,
                 decode_steps: int = 8, max_chunk: int = 512, min_bucket: int = 16,
                 prefix_cache: bool = True):
        sp = special_ids(tokenizer)
        self.tokenizer = tokenizer
        self.suppress = tuple(sorted({sp.vision_start, sp.vision_end, sp.image_pad,
                                      sp.video_pad}))
        self.sampler = Sampler(model, batch_size=batch_size, max_len=max_len,
                               params=SamplingParams(0.0, suppress_ids=self.suppress),
                               stop_token_ids=[sp.im_end, sp.endoftext], pad_id=sp.endoftext,
                               decode_steps=decode_steps, max_chunk=max_chunk,
                               min_bucket=min_bucket)
        self.prefix_cache = prefix_cache
        self.stats: Counter = Counter()
        self._pending: deque[Handle] = deque()
        self._choices: dict[int, _Choice] = {}  # row -> live choice
        self._last_used = np.zeros(batch_size, np.int64)
        self._clock = itertools.count(1)
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="seeker-serve-engine",
                                        daemon=True)
        self._thread.start()

    # -- public

    def submit(self, request: GenerationRequest) -> Handle:
        """Queues a request; raises EngineError if it can never run."""
        s = self.sampler
        if self._stop:
            raise EngineClosed(SHUTTING_DOWN)
        if not 0 <= request.top_logprobs <= TOP_LOGPROBS_MAX:
            raise EngineError(f"top_logprobs={request.top_logprobs} is outside 0.."
                              f"{TOP_LOGPROBS_MAX}")
        if request.n > s.batch_size:
            raise EngineError(f"n={request.n} is more than the server's {s.batch_size} rows")
        ids = concat_segments(request.segments).input_ids
        if len(ids) + 1 > s.max_len:
            raise EngineError(f"the prompt is {len(ids)} tokens; this server's context is "
                              f"{s.max_len} (--max-len): shorten the conversation")
        handle = Handle(request, ids)
        with self._cond:
            if self._stop:
                raise EngineClosed(SHUTTING_DOWN)
            self._pending.append(handle)
            self._cond.notify()
        return handle

    def close(self, timeout: float = 30.0) -> None:
        """Stops the worker. Every request still queued or decoding gets an error event at
        once, so no reader stays blocked on its queue (a thread pool would wait for it at
        exit) nor waits for the worker, which may be inside a decode call or a compile; then
        waits up to `timeout` s for the worker to finish that call (it is a daemon thread)."""
        with self._cond:
            self._stop = True
            self._cond.notify()
            pending, self._pending = list(self._pending), deque()
            live = {id(c.handle): c.handle for c in list(self._choices.values())}
        for handle in [*live.values(), *pending]:
            handle.cancel()
            handle.events.put(("error", SHUTTING_DOWN, 503))
        self._thread.join(timeout=timeout)

    # -- worker

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._pending and not self.sampler.active_rows:
                    self._cond.wait()
                if self._stop:
                    return
            try:
                self._admit()
                if self.sampler.active_rows:
                    self._set_top_n()
                    self.sampler.step()
                self._emit()
            except Exception as exc:  # never leave a client hanging
                log.exception("serve engine failed")
                self._fail_all(f"engine error: {type(exc).__name__}: {exc}")

    def _fail_all(self, message: str) -> None:
        for c in list(self._choices.values()):
            c.handle.events.put(("error", message, 500))
        self._choices.clear()
        with self._cond:
            while self._pending:
                self._pending.popleft().events.put(("error", message, 500))
        self.sampler.reset()

    def _set_top_n(self) -> None:
        """The sampler records alternatives only while a live request wants them."""
        wanted = any(c.handle.request.top_logprobs for c in self._choices.values())
        self.sampler.top_n = TOP_LOGPROBS_MAX if wanted else 0

    def _free_rows(self) -> list[int]:
        s = self.sampler
        return [r for r in range(s.batch_size) if not s.rows[r].active and r not in self._choices]

    def _cached_row(self, free: list[int], ids: np.ndarray) -> tuple[int | None, int]:
        """The free row holding the longest whole prefix of `ids` (and its length)."""
        best, length = None, 0
        if not self.prefix_cache:
            return best, length
        for r in free:
            held = self.sampler.rows[r].ids
            if length < len(held) < len(ids) and np.array_equal(ids[:len(held)], held):
                best, length = r, len(held)
        return best, length

    def _episode(self, handle: Handle, index: int) -> int:
        if handle.request.seed is None:
            return random.randrange(2**31 - 1)
        return (16 * int(handle.request.seed) + index) % (2**31 - 1)

    def _admit(self) -> None:
        s = self.sampler
        segments, max_new, forced, groups = {}, {}, {}, []
        while True:
            with self._cond:
                if not self._pending:
                    break
                handle = self._pending[0]
                if handle.cancelled:
                    self._pending.popleft().events.put(("error", "request cancelled", 499))
                    continue
                req = handle.request
                free = self._free_rows()
                if len(free) < req.n:
                    break
                self._pending.popleft()
            row, cached = self._cached_row(free, handle.prompt_ids)
            if row is None:
                row = min(free, key=lambda r: self._last_used[r])
                s.reset_row(row, self._episode(handle, 0))
            else:
                s.rows[row].episode = self._episode(handle, 0)  # the request's own draws
            if len(handle.prompt_ids) - cached > s.room(row):
                handle.events.put(("error", "the prompt does not fit in a row: shorten the "
                                   "conversation", 400))
                continue
            s.set_row_params(row, SamplingParams(req.params.temperature, req.params.top_k,
                                                 req.params.top_p))
            handle.cached_tokens = cached
            segments[row] = tail_segment(req.segments, cached)
            max_new[row] = min(req.max_new_tokens, s.max_len - len(handle.prompt_ids))
            if req.forced:
                forced[row] = req.forced
            others = [r for r in free if r != row][:req.n - 1]
            for r in [row, *others]:
                self._last_used[r] = next(self._clock)
            self._choices.update({r: _Choice(handle, i, r) for i, r in
                                  enumerate([row, *others])})
            groups.append((handle, row, others))
            self.stats["requests"] += 1
            self.stats["prompt_tokens"] += len(handle.prompt_ids)
            self.stats["cached_tokens"] += cached
            self.stats["prefill_tokens"] += len(handle.prompt_ids) - cached
        if not segments:
            return
        self._set_top_n()
        s.append(segments, max_new, forced)
        for handle, row, others in groups:
            if others:
                s.fork(row, others, [self._episode(handle, i + 1) for i in range(len(others))],
                       {r: handle.request.forced for r in others} if handle.request.forced
                       else None)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    @staticmethod
    def _alternatives(r, ended: bool, n: int) -> list | None:
        """Per token of the row's turn, its n best (ids, log-probs); None when n is 0."""
        if not n:
            return None
        if ended:
            if r.result.top_ids is None:
                raise RuntimeError("the sampler recorded no top_logprobs for this turn")
            return [(a[:n], b[:n]) for a, b in zip(r.result.top_ids, r.result.top_logprobs)]
        if any(t is None for t in r.turn_top):
            raise RuntimeError("the sampler recorded no top_logprobs for part of this turn")
        return [(a[:n], b[:n]) for a, b in r.turn_top]

    def _emit(self) -> None:
        """Sends every live choice its new tokens; ends the choices whose turn ended, and the
        sampler turns of choices that no one reads any more (a stop string, a cancel)."""
        s = self.sampler
        for row, c in list(self._choices.items()):
            r = s.rows[row]
            if c.handle.cancelled:  # free the row now; wake a reader still blocked on the queue
                if r.active:
                    s.end_turn(row, reason=STOP_CANCELLED)
                    self.stats["cancelled_rows"] += 1
                c.handle.events.put(("error", "request cancelled", 499))
                del self._choices[row]
                continue
            ended = not r.active
            ids = list(r.result.ids) if ended else list(r.turn)
            lps = list(r.result.logprobs) if ended else list(r.turn_lps)
            alts = self._alternatives(r, ended, c.handle.request.top_logprobs)
            reason, matched = (FINISH[r.result.stop_reason] if ended else None), None
            stops = c.handle.request.stop
            hit = find_stop(ids, stops, self._decode) if stops else None
            if hit is not None:
                n = hit.tokens
                ids, lps, reason, matched = ids[:n], lps[:n], "stop", hit.stop
                alts = alts if alts is None else alts[:n]
                if r.active:  # the client's turn is over: stop decoding right after it
                    s.end_turn(row, n)
                    self.stats["stop_string_rows"] += 1
            if len(ids) > c.sent:
                c.handle.events.put(("tokens", c.index, ids[c.sent:], lps[c.sent:],
                                     alts if alts is None else alts[c.sent:]))
                c.sent = len(ids)
            if reason is not None:
                c.handle.events.put(("done", c.index, reason, matched))
                del self._choices[row]
                self.stats["completion_tokens"] += len(ids)


__all__ = ["Engine", "EngineClosed", "EngineError", "GenerationRequest", "Handle",
           "tail_segment"]
