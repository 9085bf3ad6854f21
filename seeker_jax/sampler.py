"""Jitted generation with a KV cache that grows across tool turns.

A `Sampler` owns a batch of B rows. Each row is one conversation whose tokens sit in the KV
cache at slot == token index (no padding inside a row). A conversation grows in two ways:

- `append(row -> Segment)`: a prompt or a tool response (text, images, timestamped video
  frames) is computed on top of the row's cache; earlier turns are never recomputed. The
  segment's MRoPE positions continue the row's rope index exactly as `get_rope_index` would
  number the whole sequence (`segment_positions`), its vision features are scattered into the
  placeholder tokens and its DeepStack features are added in the first decoder layers. Long
  appends run in pieces of at most `max_chunk` tokens (chunked prefill). The last logits give
  the first token of the model's next turn.
- `step()`: up to `decode_steps` decode steps in one jitted `while_loop` for every active row;
  a row stops on a stop token, `max_new_tokens` or the length limit (on device) or on a stop
  string (on the host, which then rolls the row back to the end of the string).

Cache layout: (B, max_len + max_chunk, kv_heads, head_dim). Slots >= max_len are scratch:
rows that take no part in a call write their (ignored) keys there, so every call has one
shape. The token a row sampled last is not in the cache yet; it is written by the next decode
step or at the start of the next append.

Shapes are bucketed (powers of two) so that the number of compilations is bounded:
extend: (B, chunk bucket, vision-feature bucket); decode: (B, steps, forced-token bucket);
vision: one per distinct image / video grid. `compilations` counts them.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from seeker_jax.models.chat import Segment
from seeker_jax.models.qwen3_vl.modeling import (Qwen3VLForConditionalGeneration,
                                                 scatter_features, visibility_mask)
from seeker_jax.models.qwen3_vl.rope import get_rope_index_np
from seeker_jax.models.qwen3_vl.text import init_cache
from seeker_jax.conversation import Conversation, Turn
from seeker_jax.sampling import SamplingParams, sample
from seeker_jax.sharding import DEFAULT_RULES, Rules, array_sharding

log = logging.getLogger(__name__)

STOP_TOKEN, STOP_MAX_NEW, STOP_MAX_LEN, STOP_STRING = 1, 2, 3, 4
STOP_REASONS = {STOP_TOKEN: "stop_token", STOP_MAX_NEW: "max_new_tokens",
                STOP_MAX_LEN: "max_len", STOP_STRING: "stop_string"}


def bucket(n: int, minimum: int = 16) -> int:
    """The power of two >= max(n, minimum)."""
    n = max(int(n), int(minimum), 1)
    return 1 << (n - 1).bit_length()


def segment_positions(input_ids: np.ndarray, mm_token_type_ids: np.ndarray,
                      image_grid_thw: np.ndarray | None, video_grid_thw: np.ndarray | None,
                      start: int, spatial_merge_size: int = 2) -> tuple[np.ndarray, int]:
    """MRoPE positions (3, L) of a segment appended where the next text position is `start`.

    get_rope_index numbers every span relative to a running `cur`, so a segment's positions
    are its own index shifted by `start`. Also returns the next `start` (the position a text
    token after the segment would get), read off a dummy text token appended at the end.
    """
    ids = np.append(np.asarray(input_ids), 0)[None]
    types = np.append(np.asarray(mm_token_type_ids), 0)[None]
    pos, _ = get_rope_index_np(ids, types, image_grid_thw, video_grid_thw, None,
                               spatial_merge_size)
    pos = pos[:, 0].astype(np.int64) + start
    return pos[:, :-1].astype(np.int32), int(pos[0, -1])


# ----------------------------------------------------------------------------- jitted parts

def _language_model(model: Qwen3VLForConditionalGeneration, cache, ids, positions, write_index,
                    n_valid, feats, deepstack):
    """The decoder on (B, L) ids written at write_index (B,); n_valid (B,) real tokens each.

    feats (F, D) / deepstack (k, F, D): vision features for the visual tokens of `ids` in
    row-major order (padded at the end).
    """
    cfg = model.config
    lm = model.model.language_model
    B, L = ids.shape
    embeds = lm.embed_tokens(ids)
    extra = None
    if feats is not None:
        is_visual = (ids == cfg.image_token_id) | (ids == cfg.video_token_id)
        embeds = scatter_features(embeds, is_visual, feats)
        zeros = jnp.zeros_like(embeds)
        extra = [scatter_features(zeros, is_visual, d) for d in deepstack]
    S = cache[0].key.shape[1]
    valid = jnp.arange(S)[None, :] < (write_index + n_valid)[:, None]
    mask = visibility_mask(valid, B, L, cache, write_index)
    return lm(embeds, positions, mask, extra, cache, write_index)


@partial(jax.jit, static_argnames=("graphdef", "grid"))
def _encode_visual(state, pixels, *, graphdef, grid):
    model = nnx.merge(graphdef, state)
    out = model.model.visual(pixels, np.array([grid]))
    return out.embeds, jnp.stack(out.deepstack)


@partial(jax.jit, static_argnames=("graphdef", "params"), donate_argnames=("cache",))
def _extend(state, cache, ids, positions, write_index, n_valid, feats, deepstack, forced, key,
            *, graphdef, params):
    model = nnx.merge(graphdef, state)
    hidden, cache = _language_model(model, cache, ids, positions, write_index, n_valid, feats,
                                    deepstack)
    last = hidden[jnp.arange(ids.shape[0]), n_valid - 1]
    logits = model.logits(last).astype(jnp.float32)
    token, logprob = sample(logits, key, params, forced)
    return cache, token, logprob, logits


@partial(jax.jit, static_argnames=("graphdef", "params", "steps", "stop_ids", "max_len"),
         donate_argnames=("cache",))
def _decode(state, cache, last, length, pos, n_gen, active, max_new, forced, forced_len, key,
            *, graphdef, params, steps, stop_ids, max_len):
    """Up to `steps` decode steps; stops early when no row is active.

    last: the pending token of each row (written at slot `length`, position `pos`).
    Returns the cache, tokens / log-probs (B, steps) (-1 / 0 where a row was inactive), the
    new row state and the stop code of rows that stopped.
    """
    model = nnx.merge(graphdef, state)
    B = last.shape[0]
    rows = jnp.arange(B)
    stops = jnp.asarray(stop_ids if stop_ids else (-1,), jnp.int32)

    def body(carry):
        i, cache, last, length, pos, n_gen, active, stop, toks, lps, key = carry
        key, sub = jax.random.split(key)
        write = jnp.where(active, length, max_len)
        positions = jnp.broadcast_to(pos[None, :, None], (3, B, 1))
        hidden, cache = _language_model(model, cache, last[:, None], positions, write,
                                        jnp.ones_like(length), None, None)
        logits = model.logits(hidden[:, 0]).astype(jnp.float32)
        want = forced[rows, jnp.clip(n_gen, 0, forced.shape[1] - 1)]
        token, logprob = sample(logits, sub, params, jnp.where(n_gen < forced_len, want, -1))
        step = active.astype(jnp.int32)
        length, pos, n_gen = length + step, pos + step, n_gen + step
        toks = toks.at[:, i].set(jnp.where(active, token, -1))
        lps = lps.at[:, i].set(jnp.where(active, logprob, 0.0))
        reason = jnp.where(jnp.isin(token, stops), STOP_TOKEN,
                           jnp.where(n_gen >= max_new, STOP_MAX_NEW,
                                     jnp.where(length + 1 >= max_len, STOP_MAX_LEN, 0)))
        stopping = active & (reason > 0)
        stop = jnp.where(stopping, reason, stop)
        last = jnp.where(active, token, last)
        return (i + 1, cache, last, length, pos, n_gen, active & ~stopping, stop, toks, lps, key)

    toks = jnp.full((B, steps), -1, jnp.int32)
    lps = jnp.zeros((B, steps), jnp.float32)
    carry = (jnp.int32(0), cache, last, length, pos, n_gen, active, jnp.zeros_like(length),
             toks, lps, key)
    carry = jax.lax.while_loop(lambda c: (c[0] < steps) & jnp.any(c[6]), body, carry)
    _, cache, last, length, pos, n_gen, active, stop, toks, lps, _ = carry
    return cache, toks, lps, last, length, pos, n_gen, active, stop


# ----------------------------------------------------------------------------- host side

@dataclass
class _Row:
    ids: list[int] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    policy: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)  # (3, n) per added piece
    segments: list[Segment] = field(default_factory=list)
    pending_visual: list[tuple[jax.Array, jax.Array]] = field(default_factory=list)
    written: int = 0         # tokens whose keys are in the cache (slots 0..written-1)
    cur: int = 0             # the MRoPE position of the next token after `ids`
    turn: list[int] = field(default_factory=list)
    turn_lps: list[float] = field(default_factory=list)
    active: bool = False
    max_new: int = 0
    forced: list[int] = field(default_factory=list)
    result: Turn | None = None


class Sampler:
    """Batched multi-turn generation for a Qwen3-VL model (see the module doc).

    stop_token_ids end a turn on device; stop_strings are checked on the host with
    `decode` (ids -> text), needed only if stop_strings is not empty.
    """

    def __init__(self, model: Qwen3VLForConditionalGeneration, *, batch_size: int, max_len: int,
                 params: SamplingParams = SamplingParams(), stop_token_ids: Sequence[int] = (),
                 stop_strings: Sequence[str] = (), decode: Callable[[list[int]], str] | None = None,
                 pad_id: int = 0, decode_steps: int = 16, max_chunk: int = 512,
                 min_bucket: int = 16, mesh: Mesh | None = None, rules: Rules = DEFAULT_RULES,
                 cache_dtype=None, seed: int = 0):
        if stop_strings and decode is None:
            raise ValueError("stop_strings need `decode` (ids -> text), e.g. tokenizer.decode")
        self.model = model
        self.graphdef, self.state = nnx.split(model)
        self.config = model.config
        self.batch_size, self.max_len = batch_size, max_len
        self.params = params
        self.stop_token_ids = tuple(sorted({int(t) for t in stop_token_ids}))
        self.stop_strings = tuple(stop_strings)
        self.decode_text = decode
        self.pad_id = pad_id
        self.decode_steps, self.min_bucket = decode_steps, min_bucket
        self.max_chunk = bucket(max_chunk, min_bucket)
        self.mesh, self.rules = mesh, rules
        self.cache_dtype = cache_dtype or model.dtype
        self.key = jax.random.key(seed)
        self.compilations: Counter = Counter()
        self.stats: Counter = Counter()
        self.last_logits: jax.Array | None = None  # (B, V): each row's after its latest append
        self.reset()

    # -- state

    def reset(self) -> None:
        """A fresh cache; every row empty."""
        text = self.config.text
        shape = (self.batch_size, self.max_len + self.max_chunk, text.num_key_value_heads,
                 text.head_dim)
        cache = init_cache(text, shape[0], shape[1], self.cache_dtype)
        sharding = array_sharding(self.mesh, ("batch", None, "kv_heads", "head_dim"), shape,
                                  self.rules)
        self.cache = cache if sharding is None else jax.device_put(cache, sharding)
        self.rows = [_Row() for _ in range(self.batch_size)]

    def reset_row(self, row: int) -> None:
        """Empties one row (its cache slots become garbage; nothing reads them)."""
        self.rows[row] = _Row()

    def room(self, row: int) -> int:
        """Tokens that can still be added to `row` while leaving room for one generated token."""
        return self.max_len - 1 - len(self.rows[row].ids)

    @property
    def active_rows(self) -> list[int]:
        return [i for i, r in enumerate(self.rows) if r.active]

    def conversation(self, row: int) -> Conversation:
        r = self.rows[row]
        return Conversation(np.asarray(r.ids, np.int32), np.asarray(r.types, np.int32),
                            np.asarray(r.policy, np.int32), np.asarray(r.logprobs, np.float32),
                            list(r.segments))

    def _next_key(self) -> jax.Array:
        self.key, sub = jax.random.split(self.key)
        return sub

    def _call(self, name: str, fn, *args, **kwargs):
        """Calls a jitted function, counting (and logging) the compilations it triggers."""
        before = fn._cache_size()
        out = fn(*args, **kwargs)
        if fn._cache_size() > before:
            self.compilations[name] += 1
            shapes = [getattr(a, "shape", None) for a in args[2:5]]
            log.info("sampler: compiled %s (#%d), shapes %s", name, self.compilations[name],
                     shapes)
        return out

    # -- appends

    def add(self, row: int, segment: Segment) -> None:
        """Adds a segment to a row's conversation; the next `prefill` / `append` computes it.

        Use alone for tokens the policy did not sample that close a turn (the `<|im_end|>`
        after a turn cut at a stop string). Its vision features are computed here.
        """
        r = self.rows[row]
        if r.active:
            raise RuntimeError(f"row {row} is still generating; wait for its turn to end")
        if len(segment) > self.room(row):
            raise ValueError(f"row {row}: a segment of {len(segment)} tokens does not fit "
                             f"({self.room(row)} left of max_len {self.max_len}); end the "
                             "episode instead of cutting it")
        pos, r.cur = segment_positions(segment.input_ids, segment.mm_token_type_ids,
                                       segment.image_grid_thw, segment.video_grid_thw, r.cur,
                                       self.config.vision.spatial_merge_size)
        r.positions.append(pos)
        r.ids.extend(int(t) for t in segment.input_ids)
        r.types.extend(int(t) for t in segment.mm_token_type_ids)
        r.policy.extend([0] * len(segment))
        r.logprobs.extend([0.0] * len(segment))
        r.segments.append(segment)
        visual = self._visual_features(segment)
        if visual is not None:
            r.pending_visual.append(visual)

    def _visual_features(self, seg: Segment) -> tuple[jax.Array, jax.Array] | None:
        """Features (n, D) and DeepStack features (k, n, D) of a segment's visual tokens, in
        token order. Each image / video runs through the tower alone (one compile per grid)."""
        per_kind = {}
        for kind, pixels, grids in ((1, seg.pixel_values, seg.image_grid_thw),
                                    (2, seg.pixel_values_videos, seg.video_grid_thw)):
            if pixels is None:
                continue
            feats, deep, offset = [], [], 0
            for grid in np.asarray(grids).reshape(-1, 3):
                n = int(np.prod(grid))
                f, d = self._call("vision", _encode_visual, self.state,
                                  jnp.asarray(pixels[offset:offset + n]), graphdef=self.graphdef,
                                  grid=tuple(int(x) for x in grid))
                feats.append(f), deep.append(d)
                offset += n
            per_kind[kind] = (jnp.concatenate(feats), jnp.concatenate(deep, axis=1))
        types = np.asarray(seg.mm_token_type_ids)
        if not per_kind:
            if (types != 0).any():
                raise ValueError("segment has vision tokens but no pixels")
            return None
        counts = {k: v[0].shape[0] for k, v in per_kind.items()}
        for kind, name in ((1, "image"), (2, "video")):
            if int((types == kind).sum()) != counts.get(kind, 0):
                raise ValueError(f"{name} features and {name} tokens do not match: "
                                 f"{int((types == kind).sum())} tokens, {counts.get(kind, 0)} "
                                 "features. A vision span was cut or duplicated.")
        kinds = sorted(per_kind)
        feats = jnp.concatenate([per_kind[k][0] for k in kinds])
        deep = jnp.concatenate([per_kind[k][1] for k in kinds], axis=1)
        base = {k: sum(counts[j] for j in kinds if j < k) for k in kinds}
        visual = types[types != 0]
        order = np.empty(len(visual), np.int64)
        for k in kinds:
            order[visual == k] = base[k] + np.arange(counts[k])
        return feats[order], deep[:, order]

    def append(self, segments: Mapping[int, Segment], max_new_tokens: int | Mapping[int, int],
               forced: Mapping[int, Sequence[int]] | None = None) -> None:
        """Adds each row's segment, computes every token of the row not yet in the cache, and
        samples the first token of the row's next turn. forced[row]: token ids the turn must
        start with (a scripted policy; their log-probs are still the model's)."""
        for row, seg in segments.items():
            self.add(row, seg)
        self.prefill(list(segments), max_new_tokens, forced)

    def prefill(self, rows: Sequence[int], max_new_tokens: int | Mapping[int, int],
                forced: Mapping[int, Sequence[int]] | None = None) -> None:
        """Computes the unwritten tokens of `rows` (in pieces of <= max_chunk) and starts a
        turn on each."""
        forced = forced or {}
        plans = {row: self._plan(row) for row in rows}
        for k in range(max(len(p) for p in plans.values())):
            part = {row: p[k] for row, p in plans.items() if k < len(p)}
            last = [row for row in part if k == len(plans[row]) - 1]
            token, logprob, logits = self._run_extend(part, {r: forced.get(r, ()) for r in last})
            if last:
                done = np.asarray(last)
                self.last_logits = (logits if self.last_logits is None else
                                    self.last_logits.at[done].set(logits[done]))
            for row in last:
                r = self.rows[row]
                r.written, r.pending_visual = len(r.ids), []
                r.max_new = (max_new_tokens if isinstance(max_new_tokens, int)
                             else max_new_tokens[row])
                r.forced = [int(t) for t in forced.get(row, ())]
                r.turn, r.turn_lps, r.active, r.result = [token[row]], [logprob[row]], True, None
                reason = (STOP_TOKEN if r.turn[0] in self.stop_token_ids else
                          STOP_MAX_NEW if r.max_new <= 1 else
                          STOP_MAX_LEN if r.written + 1 >= self.max_len else 0)
                if reason:
                    self._finish(row, reason)
                else:
                    self._check_stop_strings(row, 0)

    def _plan(self, row: int) -> list[dict]:
        """The row's unwritten tokens as pieces of <= max_chunk tokens."""
        r = self.rows[row]
        if r.active:
            raise RuntimeError(f"row {row} is still generating; wait for its turn to end")
        if len(r.ids) == r.written:
            raise ValueError(f"row {row} has nothing new to compute; add a segment first")
        ids = np.asarray(r.ids[r.written:], np.int32)
        types = np.asarray(r.types[r.written:], np.int32)
        positions = np.concatenate(r.positions, axis=1)[:, r.written:]
        feats = deep = None
        if r.pending_visual:
            feats = jnp.concatenate([f for f, _ in r.pending_visual])
            deep = jnp.concatenate([d for _, d in r.pending_visual], axis=1)
        pieces, used = [], 0
        for lo in range(0, len(ids), self.max_chunk):
            hi = min(lo + self.max_chunk, len(ids))
            n_vis = int((types[lo:hi] != 0).sum())
            pieces.append(dict(ids=ids[lo:hi], positions=positions[:, lo:hi],
                               start=r.written + lo,
                               feats=feats[used:used + n_vis] if n_vis else None,
                               deep=deep[:, used:used + n_vis] if n_vis else None))
            used += n_vis
        return pieces

    def _run_extend(self, part: dict[int, dict], forced: dict[int, Sequence[int]]
                    ) -> tuple[list[int], list[float], jax.Array]:
        """One extend call for the given rows' pieces; other rows write to scratch slots."""
        B = self.batch_size
        L = bucket(max(len(p["ids"]) for p in part.values()), self.min_bucket)
        ids = np.full((B, L), self.pad_id, np.int32)
        positions = np.zeros((3, B, L), np.int32)
        write = np.full((B,), self.max_len, np.int32)
        n_valid = np.ones((B,), np.int32)
        first = np.full((B,), -1, np.int32)
        feats, deep = [], []
        for row in sorted(part):
            p = part[row]
            n = len(p["ids"])
            ids[row, :n], positions[:, row, :n] = p["ids"], p["positions"]
            positions[:, row, n:] = p["positions"][:, -1:] + 1 + np.arange(L - n)
            write[row], n_valid[row] = p["start"], n
            if p["feats"] is not None:
                feats.append(p["feats"]), deep.append(p["deep"])
            if forced.get(row):
                first[row] = forced[row][0]
        f = d = None
        if feats:
            f, d = jnp.concatenate(feats), jnp.concatenate(deep, axis=1)
            F = bucket(f.shape[0], self.min_bucket)
            f = jnp.pad(f, ((0, F - f.shape[0]), (0, 0)))
            d = jnp.pad(d, ((0, 0), (0, F - d.shape[1]), (0, 0)))
        start = time.perf_counter()
        self.cache, token, logprob, logits = self._call(
            "extend", _extend, self.state, self.cache, ids, positions, write, n_valid, f, d,
            first, self._next_key(), graphdef=self.graphdef, params=self.params)
        token, logprob = np.asarray(token), np.asarray(logprob)
        self.stats["prefill_tokens"] += int(sum(len(p["ids"]) for p in part.values()))
        self.stats["prefill_padded_tokens"] += B * L
        self.stats["prefill_s"] += time.perf_counter() - start
        return token.tolist(), logprob.tolist(), logits

    # -- decoding

    def step(self) -> dict[int, Turn]:
        """Up to `decode_steps` tokens for every active row; returns the turns that ended."""
        active = self.active_rows
        if not active:
            return {}
        B = self.batch_size
        F = bucket(max(len(self.rows[i].forced) for i in active), self.min_bucket)
        last = np.zeros(B, np.int32)
        length, pos, n_gen = (np.zeros(B, np.int32) for _ in range(3))
        max_new, forced_len = np.ones(B, np.int32), np.zeros(B, np.int32)
        forced = np.full((B, F), -1, np.int32)
        is_active = np.zeros(B, bool)
        for i in active:
            r = self.rows[i]
            last[i], n_gen[i], max_new[i] = r.turn[-1], len(r.turn), r.max_new
            length[i] = len(r.ids) + len(r.turn) - 1
            pos[i] = r.cur + len(r.turn) - 1
            forced[i, :len(r.forced)], forced_len[i] = r.forced, len(r.forced)
            is_active[i] = True
        start = time.perf_counter()
        out = self._call("decode", _decode, self.state, self.cache, last, length, pos, n_gen,
                         is_active, max_new, forced, forced_len, self._next_key(),
                         graphdef=self.graphdef, params=self.params, steps=self.decode_steps,
                         stop_ids=self.stop_token_ids, max_len=self.max_len)
        self.cache = out[0]
        toks, lps, _, length, _, n_gen2, still, stop = (np.asarray(x) for x in out[1:])
        self.stats["decode_s"] += time.perf_counter() - start
        self.stats["decode_calls"] += 1
        ended = {}
        for i in active:
            r = self.rows[i]
            k = int(n_gen2[i] - n_gen[i])
            self.stats["decode_tokens"] += k
            before = len(r.turn)
            r.turn.extend(toks[i, :k].tolist())
            r.turn_lps.extend(lps[i, :k].tolist())
            r.written = int(length[i])
            if stop[i]:
                self._finish(i, int(stop[i]))
            else:
                self._check_stop_strings(i, before)
            if not r.active:
                ended[i] = r.result
        return ended

    def _check_stop_strings(self, row: int, first_new: int) -> None:
        """Ends the turn at the first token that completes a stop string (tokens after it are
        dropped and the cache rolled back), looking only at tokens from `first_new` on."""
        r = self.rows[row]
        if not self.stop_strings:
            return
        if not any(s in self.decode_text(r.turn) for s in self.stop_strings):
            return
        for j in range(first_new, len(r.turn)):
            if any(s in self.decode_text(r.turn[:j + 1]) for s in self.stop_strings):
                del r.turn[j + 1:], r.turn_lps[j + 1:]
                self._finish(row, STOP_STRING)
                return

    def _finish(self, row: int, reason: int) -> None:
        """Moves the turn into the conversation; the cache keeps what is valid of it."""
        r = self.rows[row]
        n = len(r.turn)
        r.written = min(r.written, len(r.ids) + n)
        r.positions.append(np.broadcast_to(r.cur + np.arange(n, dtype=np.int32), (3, n)))
        r.cur += n
        r.ids.extend(int(t) for t in r.turn)
        r.types.extend([0] * n)
        r.policy.extend([1] * n)
        r.logprobs.extend(float(x) for x in r.turn_lps)
        r.result = Turn(np.asarray(r.turn, np.int32), np.asarray(r.turn_lps, np.float32),
                        STOP_REASONS[reason])
        r.active, r.turn, r.turn_lps = False, [], []

    # -- convenience

    def generate(self, prompts: Sequence[Segment], max_new_tokens: int,
                 forced: Mapping[int, Sequence[int]] | None = None) -> list[Turn]:
        """One turn for each prompt (at most batch_size of them), from fresh rows."""
        if len(prompts) > self.batch_size:
            raise ValueError(f"{len(prompts)} prompts for a batch of {self.batch_size}")
        for i in range(len(prompts)):
            self.reset_row(i)
        self.append(dict(enumerate(prompts)), max_new_tokens, forced)
        done = {i: self.rows[i].result for i in range(len(prompts)) if not self.rows[i].active}
        while len(done) < len(prompts):
            done.update(self.step())
        return [done[i] for i in range(len(prompts))]


__all__ = ["Sampler", "bucket", "segment_positions"]
