"""Jitted generation with a KV cache that grows across tool turns.

A `Sampler` owns a batch of B rows, each one conversation whose tokens sit in the KV cache at
slot == token index. `append(row -> Segment)` computes a prompt or a tool response on top of
the row's cache (earlier turns are never recomputed; MRoPE positions continue the row's rope
index exactly as `get_rope_index` numbers the whole sequence; long appends run in pieces of
`max_chunk`); `step()` runs up to `decode_steps` decode steps for every active row in one
jitted while_loop, until a stop token, `max_new_tokens`, the length limit (on device) or a
stop string (on the host, which rolls the row back to the end of the string).

Cache: (B, kv_heads, max_len + max_chunk, head_dim), head-major; slots >= max_len are scratch
for rows that take no part in a call, so every call has one shape. Attention reads a window
of the first power-of-two (>= min_window) slots that hold the participating rows' tokens.

The sampler owns its weights (a copy, refreshed by `load_state`, never aliasing a learner
buffer). The token at index t of episode e is drawn with `fold_in(fold_in(seed_key, e), t)`,
so which rows share a call never changes a sample. Recorded log-probs are the tempered,
untruncated ones a learner recomputes (`sampling.learner_logprobs`), with `top_n`
alternatives when asked. `fork` copies a prefilled row into others (a GRPO group prefills
its prompt once). Each row samples with its own temperature / top-k / top-p as data
(`set_row_params`); only which code a call needs is static (`sampling.SamplingPlan`).

Shapes are bucketed (powers of two), so compilations are bounded: extend per (chunk bucket,
vision-feature bucket, window), decode per (forced-token bucket, window), vision per vision
bucket; `compilations` counts them. docs/engine.md tells the whole story.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from seeker_jax.models.chat import Segment
from seeker_jax.models.qwen3_vl.modeling import Qwen3VLForConditionalGeneration
from seeker_jax.models.qwen3_vl.text import init_cache
from seeker_jax.generation.conversation import Conversation, Turn
from seeker_jax.generation.decoding import (STOP_MAX_LEN, STOP_MAX_NEW, STOP_REASONS,
                                            STOP_STRING, STOP_TOKEN, copy_rows, decode,
                                            encode_visual, extend, first_tokens)
from seeker_jax.generation.sampling import RowSampling, SamplingParams, SamplingPlan
from seeker_jax.generation.rows import (ForkPoint, Row, bucket, decoding_graph, extend_inputs,
                                        features_in_token_order, per_row, plan_pieces, segment_positions)
from seeker_jax.generation.stops import find_stop
from seeker_jax.sharding import DEFAULT_RULES, Rules, array_sharding, model_shardings
from seeker_jax.training.state_copy import copy_state
from seeker_jax.training.vision_batch import prepare_slots

log = logging.getLogger(__name__)


class Sampler:
    """Batched multi-turn generation for a Qwen3-VL model (see the module doc).

    stop_token_ids end a turn on device; stop_strings are checked on the host with
    `decode` (ids -> text), needed only if stop_strings is not empty. top_logprobs: how many
    alternatives each sampled position records (`top_n`, settable between calls; each value
    is its own compile of the sampling programs, so keep to one or two values).
    """

    def __init__(self, model: Qwen3VLForConditionalGeneration, *, batch_size: int, max_len: int,
                 params: SamplingParams = SamplingParams(), stop_token_ids: Sequence[int] = (),
                 stop_strings: Sequence[str] = (), decode: Callable[[list[int]], str] | None = None,
                 pad_id: int = 0, decode_steps: int = 16, max_chunk: int = 512,
                 min_bucket: int = 16, mesh: Mesh | None = None, rules: Rules = DEFAULT_RULES,
                 cache_dtype=None, seed: int = 0, top_logprobs: int = 0,
                 min_window: int = 1024):
        if stop_strings and decode is None:
            raise ValueError("stop_strings need `decode` (ids -> text), e.g. tokenizer.decode")
        model = decoding_graph(model)
        self.graphdef, state = nnx.split(model)
        shardings = model_shardings(model, mesh, rules) if mesh is not None else None
        # The sampler's own buffers: a learner step donating the model's arrays cannot
        # delete them.
        self.state = copy_state(state, [state], shardings)
        self.config = model.config
        self.batch_size, self.max_len = batch_size, max_len
        self.params = params
        self.top_n = top_logprobs
        self.stop_token_ids = tuple(sorted({int(t) for t in stop_token_ids}))
        self.stop_strings = tuple(stop_strings)
        self.decode_text = decode
        self.pad_id = pad_id
        self.decode_steps, self.min_bucket = decode_steps, min_bucket
        self.min_window = min_window
        self.max_chunk = bucket(max_chunk, min_bucket)
        self.mesh, self.rules = mesh, rules
        self.cache_dtype = cache_dtype or model.dtype
        self.seed_key = jax.random.key(seed)
        self._next_episode = 0
        self.compilations: Counter = Counter()
        self.stats: Counter = Counter()
        self.last_logits: jax.Array | None = None  # (B, V): each row's after its latest append
        self.reset()

    # -- state

    @property
    def model(self) -> Qwen3VLForConditionalGeneration:
        """The model the sampler runs (its own weights)."""
        return nnx.merge(self.graphdef, self.state)

    def set_seed(self, seed: int) -> None:
        """The seed every row's keys fold from (see the module doc)."""
        self.seed_key = jax.random.key(seed)

    def load_state(self, *states) -> None:
        """New weights between rollouts: nnx.States covering the whole model (e.g. the
        learner's trainable, frozen and rest), or a TrainState.

        Each array is copied into the sampler's own buffer, cast to the sampler's dtype and
        placed with its sharding; the learner's arrays stay the learner's (its next step may
        donate them). Every row is reset: cached keys were computed with the old weights.
        """
        self.state = copy_state(self.state, states)
        self.reset()

    @property
    def top_n(self) -> int:
        return self._top_n

    @top_n.setter
    def top_n(self, n: int) -> None:
        vocab = self.config.text.vocab_size
        if not 0 <= int(n) <= vocab:
            raise ValueError(f"top_logprobs must be in [0, {vocab}] (the vocabulary), got {n}")
        self._top_n = int(n)

    def _new_row(self, episode: int | None) -> Row:
        if episode is None:
            episode, self._next_episode = self._next_episode, self._next_episode + 1
        return Row(episode=int(episode))

    def reset(self) -> None:
        """A fresh cache; every row empty."""
        text = self.config.text
        shape = (self.batch_size, text.num_key_value_heads, self.max_len + self.max_chunk,
                 text.head_dim)
        cache = init_cache(text, shape[0], shape[2], self.cache_dtype)
        sharding = array_sharding(self.mesh, ("batch", "kv_heads", None, "head_dim"), shape,
                                  self.rules)
        if sharding is None:  # committed where the (copied) weights are: one signature per
            # call; replicated on their mesh, whatever one weight's own spec is
            sharding = jax.tree.leaves(self.state)[0].sharding
            if isinstance(sharding, jax.sharding.NamedSharding):
                sharding = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
        self.cache = jax.device_put(cache, sharding)
        self.rows = [self._new_row(None) for _ in range(self.batch_size)]
        self.last_logits = None

    def reset_row(self, row: int, episode: int | None = None) -> None:
        """Empties one row (its cache slots become garbage; nothing reads them) for `episode`
        (the id its sampling keys fold in; a fresh one when None). Pass ids for runs that
        must replay exactly."""
        self.rows[row] = self._new_row(episode)

    def set_row_params(self, row: int, params: SamplingParams | None) -> None:
        """The temperature / top-k / top-p the row samples with from its next token on (None:
        the sampler's `params`); kept until the row is reset, copied by `fork`. Any values,
        no compile (module doc)."""
        self.rows[row].params = params

    def row_params(self, row: int) -> SamplingParams:
        return self.rows[row].params or self.params

    def _sampling(self, rows: Sequence[int]) -> dict:
        """The `params` (plan) and `sampling` (arrays) of a call in which `rows` sample. The other
        rows take the first one's values, so they add no code to the plan."""
        own = {r: self.row_params(r) for r in rows}
        first = own[rows[0]]
        per_row = [own.get(r, first) for r in range(self.batch_size)]
        return dict(params=SamplingPlan.of(list(own.values()), self.config.text.vocab_size,
                                           self.params.suppress_ids),
                    sampling=RowSampling.of(per_row))

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

    def _window(self, needed: int) -> int | None:
        """How many cache slots a call's attention reads: the power of two >= `needed`
        (>= min_window), or None (all of them) when that is not smaller than the cache. Each
        value is its own compile, so at most log2(max_len / min_window) + 1 per program."""
        window = bucket(needed, self.min_window)
        return None if window >= self.max_len + self.max_chunk else window

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
            self.stats["vision_tokens"] += int(visual[0].shape[0])

    def _visual_features(self, seg: Segment) -> tuple[jax.Array, jax.Array] | None:
        """Features (n, D) and DeepStack features (k, n, D) of a segment's visual tokens, in
        token order. All images (and all videos) of a segment go through the tower in one call
        on bucketed arrays (grids as data): one compile per vision bucket, not per grid."""
        per_kind = {}
        for kind, pixels, grids in ((1, seg.pixel_values, seg.image_grid_thw),
                                    (2, seg.pixel_values_videos, seg.video_grid_thw)):
            if pixels is None:
                continue
            px, inputs = jax.device_put(prepare_slots(pixels, grids, self.config.vision))
            f, d = self._call("vision", encode_visual, self.state, px, inputs,
                              graphdef=self.graphdef)
            per_kind[kind] = (f, d, int(inputs.num_features))
        return features_in_token_order(per_kind, np.asarray(seg.mm_token_type_ids))

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
            token, logprob, logits, top = self._run_extend(part,
                                                           {r: forced.get(r, ()) for r in last})
            if last:
                done = np.asarray(last)
                self.last_logits = (logits if self.last_logits is None else
                                    self.last_logits.at[done].set(logits[done]))
            for row in last:
                r = self.rows[row]
                r.written, r.pending_visual = len(r.ids), []
                self._start_turn(row, token[row], logprob[row],
                                 max_new_tokens if isinstance(max_new_tokens, int)
                                 else max_new_tokens[row], forced.get(row, ()), top[row])

    def _start_turn(self, row: int, token: int, logprob: float, max_new: int,
                    forced: Sequence[int], top: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> None:
        """A row whose every token is in the cache starts a turn with its first token (and its
        top_n alternatives, when recorded)."""
        r = self.rows[row]
        r.max_new, r.forced = max_new, [int(t) for t in forced]
        r.fork_point = ForkPoint(len(r.ids), len(r.positions), r.cur, max_new)
        r.turn, r.turn_lps, r.active, r.result = [int(token)], [float(logprob)], True, None
        r.turn_top = [top]
        reason = (STOP_TOKEN if r.turn[0] in self.stop_token_ids else
                  STOP_MAX_NEW if r.max_new <= 1 else
                  STOP_MAX_LEN if r.written + 1 >= self.max_len else 0)
        if reason:
            self._finish(row, reason)
        else:
            self._check_stop_strings(row, 0)

    def fork(self, src_row: int, dst_rows: Sequence[int], episodes: Sequence[int] | None = None,
             forced: Mapping[int, Sequence[int]] | None = None) -> None:
        """Copies a just-prefilled row into `dst_rows` (their cache rows and conversation), and
        starts each copy's turn with a first token of its own episode's key.

        The copies equal rows that prefilled the same segments themselves (same logits, same
        draws for the same episode ids) at the cost of one cache-row copy: a GRPO group of n
        episodes of one prompt decodes, encodes and prefills the prompt once. `src_row` must
        not have decoded since its last append; dst rows must not be generating.
        forced[dst]: tokens the copy's turn must start with.
        """
        src = self.rows[src_row]
        fp = src.fork_point
        if fp is None:
            raise RuntimeError(f"row {src_row} has decoded since its last append (or has none); "
                               "fork a row right after its prompt's append")
        dst_rows = [int(d) for d in dst_rows]
        episodes = [None] * len(dst_rows) if episodes is None else list(episodes)
        if len(episodes) != len(dst_rows):
            raise ValueError(f"fork: {len(dst_rows)} rows but {len(episodes)} episode ids")
        for d in dst_rows:
            if d == src_row or self.rows[d].active:
                raise RuntimeError(f"fork: destination row {d} is the source or still "
                                   "generating; use free rows")
        source = np.arange(self.batch_size, dtype=np.int32)
        source[dst_rows] = src_row
        self.cache = self._call("fork", copy_rows, self.cache, jnp.asarray(source))
        self.last_logits = self.last_logits[jnp.asarray(source)]
        forced = forced or {}
        episode = np.zeros(self.batch_size, np.int32)
        first = np.full(self.batch_size, -1, np.int32)
        for d, e in zip(dst_rows, episodes):
            r = self._new_row(e)
            r.ids, r.types = src.ids[:fp.n_ids], src.types[:fp.n_ids]
            r.policy, r.logprobs = src.policy[:fp.n_ids], src.logprobs[:fp.n_ids]
            r.positions, r.segments = src.positions[:fp.n_pieces], list(src.segments)
            r.written, r.cur, r.params = fp.n_ids, fp.cur, src.params
            self.rows[d] = r
            episode[d] = r.episode
            if forced.get(d):
                first[d] = forced[d][0]
        token, logprob, top = self._call(
            "first_tokens", first_tokens, self.last_logits, self.seed_key,
            jnp.asarray(episode), jnp.full(self.batch_size, fp.n_ids, jnp.int32),
            jnp.asarray(first), **self._sampling(dst_rows), top_n=self.top_n)
        token, logprob = np.asarray(token), np.asarray(logprob)
        top = per_row(top, self.batch_size)
        self.stats["forked_rows"] += len(dst_rows)
        for d in dst_rows:
            self._start_turn(d, token[d], logprob[d], fp.max_new, forced.get(d, ()), top[d])

    def _plan(self, row: int) -> list[dict]:
        """The row's unwritten tokens as pieces of <= max_chunk tokens."""
        r = self.rows[row]
        if r.active:
            raise RuntimeError(f"row {row} is still generating; wait for its turn to end")
        if len(r.ids) == r.written:
            raise ValueError(f"row {row} has nothing new to compute; add a segment first")
        return plan_pieces(r, self.max_chunk)

    def _run_extend(self, part: dict[int, dict], forced: dict[int, Sequence[int]]
                    ) -> tuple[list[int], list[float], jax.Array, list]:
        """One extend call for the given rows' pieces; other rows write to scratch slots."""
        B = self.batch_size
        x = extend_inputs(part, forced, B, self.pad_id, self.max_len, self.min_bucket)
        episode = np.array([r.episode for r in self.rows], np.int32)
        start = time.perf_counter()
        self.cache, token, logprob, logits, top = self._call(
            "extend", extend, self.state, self.cache, x.ids, x.positions, x.write, x.n_valid,
            x.feats, x.deep, x.first, self.seed_key, episode, graphdef=self.graphdef,
            **self._sampling(sorted(part)),
            top_n=self.top_n,
            window=self._window(max(p["start"] + len(p["ids"]) for p in part.values())))
        token, logprob = np.asarray(token), np.asarray(logprob)
        self.stats["prefill_tokens"] += int(sum(len(p["ids"]) for p in part.values()))
        self.stats["prefill_padded_tokens"] += int(x.ids.size)
        self.stats["prefill_s"] += time.perf_counter() - start
        return token.tolist(), logprob.tolist(), logits, per_row(top, self.batch_size)

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
            r.fork_point = None
        start = time.perf_counter()
        out = self._call("decode", decode, self.state, self.cache, last, length, pos, n_gen,
                         is_active, max_new, forced, forced_len, self.seed_key,
                         np.array([r.episode for r in self.rows], np.int32),
                         graphdef=self.graphdef, **self._sampling(active),
                         steps=self.decode_steps,
                         stop_ids=self.stop_token_ids, max_len=self.max_len, top_n=self.top_n,
                         window=self._window(int(length[active].max()) + self.decode_steps + 1))
        self.cache = out.cache
        toks, lps, length, n_gen2, still, stop = map(np.asarray, (
            out.tokens, out.logprobs, out.length, out.n_gen, out.active, out.stop))
        tops = None if out.top is None else tuple(np.asarray(x) for x in out.top)
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
            r.turn_top.extend([None] * k if tops is None else
                              [(tops[0][i, j], tops[1][i, j]) for j in range(k)])
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
        hit = find_stop(r.turn, self.stop_strings, self.decode_text, first_new)
        if hit is not None:
            del r.turn[hit.tokens:], r.turn_lps[hit.tokens:], r.turn_top[hit.tokens:]
            self._finish(row, STOP_STRING)

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
        have_top = bool(r.turn_top) and all(t is not None for t in r.turn_top)
        r.result = Turn(np.asarray(r.turn, np.int32), np.asarray(r.turn_lps, np.float32),
                        STOP_REASONS[reason],
                        np.stack([t[0] for t in r.turn_top]) if have_top else None,
                        np.stack([t[1] for t in r.turn_top]) if have_top else None)
        r.active, r.turn, r.turn_lps, r.turn_top = False, [], [], []

    def end_turn(self, row: int, keep: int | None = None, reason: int = STOP_STRING) -> Turn:
        """Ends an active row's turn on the host after its first `keep` tokens (all when None):
        a stop string the caller matched itself, or a caller that no longer wants the turn
        (reason STOP_CANCELLED). The row stops decoding now instead of running on to
        max_new_tokens; the cache rolls back to the end of what is kept, and the row is free
        for the next append. Returns the (cut) turn."""
        r = self.rows[row]
        if not r.active:
            raise RuntimeError(f"row {row} is not generating; there is no turn to end")
        keep = len(r.turn) if keep is None else int(keep)
        if not 0 <= keep <= len(r.turn):
            raise ValueError(f"end_turn: keep={keep} is outside the turn's {len(r.turn)} tokens")
        del r.turn[keep:], r.turn_lps[keep:], r.turn_top[keep:]
        self._finish(row, reason)
        return r.result

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


__all__ = ["Sampler"]
