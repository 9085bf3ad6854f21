"""Pure sampling functions: logits (B, V) -> tokens, and the log-probs a learner trains on.

Two distributions, on purpose:

- The *draw* (`policy_logits`): logits / temperature, then top-k, then top-p (nucleus), then
  softmax. This is what tokens are sampled from.
- The *learner log-prob* (`learner_logprobs`): log_softmax(logits / temperature), with no
  top-k / top-p truncation. This is what the sampler records and what the learner recomputes
  (verl's and vLLM's convention for RL: the log-probs of the tempered, untruncated
  distribution). Truncation is a property of the sampler, not of the policy being trained:
  the learner's ratio pi_new / pi_old must be finite for every sampled token, and a forced
  (scripted) token outside the nucleus would otherwise get log(0) (-1e30 before this rule).
  Recording the same quantity the learner computes keeps the sampler-learner gap measurable
  (near zero: one JAX graph) instead of hidden in a truncation renormalisation.

Greedy is temperature 0: argmax for the draw, and the *untempered* softmax (T = 1) for the
log-prob, since a T -> 0 distribution is one-hot and its log-probs carry no gradient signal.
`suppress_ids` (e.g. vision placeholders, which would need pixels) are excluded from both: the
policy can never emit them, so they are outside its action space, not truncated tails.
Sampling keys are per row: (B,) keys, one per row, so a row's draw never depends on which
other rows share the call.

Parameters are data: each row has its own temperature, top-k and top-p, as (B,) arrays
(`RowSampling`) inside one compiled program, so a new value never compiles anything (a server
mixes requests with any values in one batch). What is static is only which code the program
holds (`SamplingPlan`): argmax for greedy rows, the draw for sampled ones, a top-k of a
bucketed bound, the sort for top-p, and the suppressed ids. `sample` takes a `SamplingParams`
(one value for every row, as before) or a plan with its rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

import jax
import jax.numpy as jnp

NEG_INF = -1e30


@dataclass(frozen=True)
class SamplingParams:
    """temperature 0 = greedy; top_k 0 = off; top_p 1.0 = off; suppress_ids: tokens the
    policy never emits (e.g. vision placeholders). Hashable: static under jit."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    suppress_ids: tuple[int, ...] = ()

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature < MIN_TEMPERATURE


# A temperature under this samples as greedy: logits / T overflows float32 long before T
# reaches float32's smallest numbers (and a draw from an overflowed row is NaN).
MIN_TEMPERATURE = 1e-6


class RowSampling(NamedTuple):
    """Each row's sampling parameters as data: temperature (B,) float32 (0 = greedy), top_k
    (B,) int32 (0 = off), top_p (B,) float32 (1 = off)."""

    temperature: jax.Array
    top_k: jax.Array
    top_p: jax.Array

    @classmethod
    def of(cls, params: Sequence[SamplingParams]) -> "RowSampling":
        """Host arrays for one SamplingParams per row."""
        return cls(np.array([0.0 if p.greedy else p.temperature for p in params], np.float32),
                   np.array([p.top_k for p in params], np.int32),
                   np.array([p.top_p for p in params], np.float32))


def _pow2(n: int) -> int:
    return 1 << (max(int(n), 1) - 1).bit_length()


@dataclass(frozen=True)
class SamplingPlan:
    """The static half of a batch's sampling (hashable: a jit static argument): which code
    the program holds. greedy: some row takes the argmax; sampled: some row draws; top_k: a
    bound >= every row's top_k (a power of two, or the vocabulary), 0 when no row truncates by
    top-k; nucleus: some row has top_p < 1 (a sort per row); suppress_ids: never emitted."""

    greedy: bool = True
    sampled: bool = False
    top_k: int = 0
    nucleus: bool = False
    suppress_ids: tuple[int, ...] = ()

    @classmethod
    def of(cls, params: Sequence[SamplingParams], vocab: int,
           suppress_ids: Sequence[int] = ()) -> "SamplingPlan":
        """The plan that serves every row's params (the suppressed ids are the batch's)."""
        drawn = [p for p in params if not p.greedy]
        ks = [p.top_k for p in drawn if 0 < p.top_k < vocab]
        return cls(greedy=len(drawn) < len(params), sampled=bool(drawn),
                   top_k=min(_pow2(max(ks)), vocab) if ks else 0,
                   nucleus=any(p.top_p < 1.0 for p in drawn),
                   suppress_ids=tuple(suppress_ids))

    @property
    def truncates(self) -> bool:
        return bool(self.top_k) or self.nucleus


def as_plan(params: "SamplingParams | SamplingPlan", rows: RowSampling | None, batch: int,
            vocab: int) -> tuple[SamplingPlan, RowSampling]:
    """(plan, rows) from either form: a SamplingParams is one value for every row."""
    if isinstance(params, SamplingPlan):
        if rows is None:
            raise ValueError("a SamplingPlan needs its rows' RowSampling")
        return params, rows
    plan = SamplingPlan.of([params], vocab, params.suppress_ids)
    t, k, p = RowSampling.of([params])
    return plan, RowSampling(jnp.full((batch,), t[0]), jnp.full((batch,), k[0]),
                             jnp.full((batch,), p[0]))


def top_k_mask(logits: jax.Array, k: int) -> jax.Array:
    """Keeps the k largest logits of each row (ties at the k-th value kept), others -> -inf."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = jax.lax.top_k(logits, k)[0][..., -1:]
    return jnp.where(logits >= kth, logits, NEG_INF)


def top_k_mask_rows(logits: jax.Array, k: jax.Array, bound: int) -> jax.Array:
    """top_k_mask with each row's own k (B,) (0 or >= V: off), k <= bound (static): logits
    (B, V) -> (B, V)."""
    V = logits.shape[-1]
    if bound <= 0:
        return logits
    values = jax.lax.top_k(logits, min(bound, V))[0]
    kth = jnp.take_along_axis(values, jnp.clip(k - 1, 0, values.shape[-1] - 1)[:, None], -1)
    keep = ((k <= 0) | (k >= V))[:, None] | (logits >= kth)
    return jnp.where(keep, logits, NEG_INF)


def top_p_mask(logits: jax.Array, p: "float | jax.Array") -> jax.Array:
    """Keeps the smallest set of top tokens whose probability reaches p (at least one). p: one
    value, or each row's (B,) (>= 1: that row untouched)."""
    if isinstance(p, (int, float)) and p >= 1.0:
        return logits
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    probs = jax.nn.softmax(sorted_logits.astype(jnp.float32), axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # mass of strictly better tokens
    p = jnp.asarray(p, jnp.float32)
    p = p[:, None] if p.ndim == 1 else p
    keep_sorted = (before < p) | (p >= 1.0)
    keep = jnp.zeros_like(keep_sorted).at[
        jnp.arange(logits.shape[0])[:, None], order].set(keep_sorted)
    return jnp.where(keep, logits, NEG_INF)


def learner_logits(logits: jax.Array, temperature: "float | jax.Array",
                   suppress_ids: Sequence[int] = ()) -> jax.Array:
    """logits / temperature in float32 (T = 0 -> 1, see the module doc), suppressed ids at
    -inf, nothing truncated. (..., V) -> (..., V). temperature: one value, or one per row
    (the logits' leading shape)."""
    x = jnp.asarray(logits, jnp.float32)
    if suppress_ids:
        x = x.at[..., jnp.asarray(tuple(suppress_ids))].set(NEG_INF)
    if isinstance(temperature, (int, float)):
        return x / temperature if temperature >= MIN_TEMPERATURE else x
    t = jnp.asarray(temperature, jnp.float32)
    t = jnp.where(t >= MIN_TEMPERATURE, t, 1.0)
    return x / t.reshape(t.shape + (1,) * (x.ndim - t.ndim))


def learner_logprobs(logits: jax.Array, tokens: jax.Array, temperature: "float | jax.Array",
                     suppress_ids: Sequence[int] = ()) -> jax.Array:
    """log softmax(logits / T)[token], untruncated: logits (..., V), tokens (...) -> (...).

    What the sampler records and the learner recomputes (GRPO's old / new log-probs).
    """
    logp = jax.nn.log_softmax(learner_logits(logits, temperature, suppress_ids), axis=-1)
    return jnp.take_along_axis(logp, tokens[..., None].astype(jnp.int32), axis=-1)[..., 0]


def top_logprobs(logits: jax.Array, n: int, temperature: "float | jax.Array",
                 suppress_ids: Sequence[int] = ()) -> tuple[jax.Array, jax.Array]:
    """The n most likely tokens of the learner distribution and their log-probs, best first:
    logits (..., V) -> ids (..., n) int32, log-probs (..., n) float32.

    The same distribution `learner_logprobs` records (tempered, untruncated, suppressed ids
    excluded), so a token's own log-prob and its entry here agree (OpenAI's top_logprobs).
    """
    logp = jax.nn.log_softmax(learner_logits(logits, temperature, suppress_ids), axis=-1)
    values, ids = jax.lax.top_k(logp, n)
    return ids.astype(jnp.int32), values


def policy_logits(logits: jax.Array, params: SamplingParams) -> jax.Array:
    """The logits tokens are drawn from: (..., V) float32, filtered tokens at -inf."""
    x = learner_logits(logits, params.temperature, params.suppress_ids)
    if params.greedy:
        return x
    shape = x.shape
    x = x.reshape(-1, shape[-1])
    x = top_p_mask(top_k_mask(x, params.top_k), params.top_p)
    return x.reshape(shape)


def _truncated(x: jax.Array, plan: SamplingPlan, rows: RowSampling) -> jax.Array:
    """Each row's top-k, then top-p, of its tempered logits x (B, V) (policy_logits per row)."""
    x = top_k_mask_rows(x, rows.top_k, plan.top_k)
    return top_p_mask(x, rows.top_p) if plan.nucleus else x


def policy_logprobs(logits: jax.Array, tokens: jax.Array, params: SamplingParams) -> jax.Array:
    """log-prob under the truncated draw distribution (the sampler's true behaviour
    probability): logits (..., V), tokens (...) -> (...). Not what a learner trains on."""
    logp = jax.nn.log_softmax(policy_logits(logits, params), axis=-1)
    return jnp.take_along_axis(logp, tokens[..., None].astype(jnp.int32), axis=-1)[..., 0]


def vocab_chunks(vocab: int, target: int = 1024) -> tuple[int, int]:
    """How argmax_and_max and draw cut a vocabulary: (chunks, chunk length), chunks x length
    >= vocab. Under 4 * target: one chunk. Else equal chunks from the divisor of `vocab` whose
    length is nearest `target` (151,936 -> 128 x 1,187), or, with no divisor giving lengths
    of target / 4 to 4 * target, chunks of `target` with the last padded at -inf (one copy of
    the logits)."""
    if vocab < 4 * target:
        return 1, vocab
    fits = [n for n in range(2, vocab // (target // 4) + 1)
            if vocab % n == 0 and target // 4 <= vocab // n <= 4 * target]
    if not fits:
        return -(-vocab // target), target
    n = min(fits, key=lambda n: abs(vocab // n - target))
    return n, vocab // n


def _chunked(x: jax.Array) -> tuple[jax.Array, int, int]:
    """x (B, V) -> x as (B, chunks x length) (padded at -inf where vocab_chunks says), chunks,
    length."""
    n, size = vocab_chunks(x.shape[-1])
    if n * size > x.shape[-1]:
        x = jnp.pad(x, ((0, 0), (0, n * size - x.shape[-1])), constant_values=-jnp.inf)
    return x, n, size


def argmax_and_max(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The first index of each row's maximum and the maximum: (..., V) -> (...) int32,
    (...) float. jnp.argmax without its variadic (value, index) reduction, which XLA:CPU runs
    unvectorized: at a real vocabulary a large share of a greedy decode step. A row with NaN
    logits gets some index in [0, V): XLA:CPU's max reduction skips NaN over large rows;
    `sample`'s log-prob for such a row is NaN, which is what shows it.

    A large vocabulary is cut into chunks (`vocab_chunks`): one pass takes each chunk's
    max, the first chunk holding the row's max is found among those few values, and only that
    chunk is searched for the index. The plain form (max, then the least index equal to it)
    reads the row twice and writes an index array the size of the logits, which a greedy
    decode step at a real vocabulary pays for (bench/generate.py)."""
    shape, V = x.shape[:-1], x.shape[-1]
    x, n, size = _chunked(x.reshape(-1, V))
    if n == 1:
        top = x.max(axis=-1)
        index = _first_index_equal(x, top)
    else:
        chunk_max = x.reshape(-1, n, size).max(axis=-1)  # (rows, n)
        top = chunk_max.max(axis=-1)
        start = _first_index_equal(chunk_max, top) * size
        index = start + _first_index_equal(_row_slices(x, start, size), top)
    return jnp.minimum(index, V - 1).reshape(shape), top.reshape(shape)


def _row_slices(x: jax.Array, start: jax.Array, size: int) -> jax.Array:
    """x[b, start[b]:start[b] + size] for each row: x (B, V), start (B,) -> (B, size)."""
    return jax.vmap(lambda row, s: jax.lax.dynamic_slice_in_dim(row, s, size))(x, start)


def _first_index_equal(x: jax.Array, value: jax.Array) -> jax.Array:
    """The least index along the last axis where x equals value (...,), else the last."""
    index = jnp.arange(x.shape[-1], dtype=jnp.int32)
    return jnp.min(jnp.where(x == value[..., None], index, x.shape[-1] - 1), axis=-1)


def first_argmax(x: jax.Array) -> jax.Array:
    """jnp.argmax over the last axis, (..., V) -> (...) int32: see argmax_and_max."""
    return argmax_and_max(x)[0]


def row_keys(seed_key: jax.Array, episode: jax.Array, token_index: jax.Array) -> jax.Array:
    """The key of each row's next token: fold_in(fold_in(seed_key, episode), token_index).

    episode, token_index (B,) int32 -> (B,) keys. token_index is the token's index in its
    conversation, so a draw depends only on (seed, episode, where it is), never on which rows
    are active or on how many tokens a call decodes.
    """
    return jax.vmap(lambda e, t: jax.random.fold_in(jax.random.fold_in(seed_key, e), t))(
        episode, token_index)


def sample(logits: jax.Array, keys: jax.Array, params: "SamplingParams | SamplingPlan",
           forced: jax.Array | None = None, rows: RowSampling | None = None
           ) -> tuple[jax.Array, jax.Array]:
    """One token per row: logits (B, V), keys (B,) -> tokens (B,) int32, log-probs (B,) f32.

    params: one SamplingParams for every row, or a SamplingPlan with each row's values in
    `rows` (data: any values, one program). forced (B,) int32: where >= 0, that token replaces
    the draw (a scripted turn). Log-probs are `learner_logprobs` (tempered, untruncated), for
    drawn and forced tokens alike; a greedy row's are untempered (module doc).
    """
    plan, rows = as_plan(params, rows, logits.shape[0], logits.shape[-1])
    x = learner_logits(logits, rows.temperature, plan.suppress_ids)  # greedy rows: T = 1
    greedy_row = rows.temperature < MIN_TEMPERATURE
    if plan.greedy:
        best, best_value = argmax_and_max(x)
    if plan.sampled:
        drawn, top, total = draw(_truncated(x, plan, rows) if plan.truncates else x, keys)
    tokens = (best if not plan.sampled else drawn if not plan.greedy
              else jnp.where(greedy_row, best, drawn))
    if forced is not None:
        tokens = jnp.where(forced >= 0, forced.astype(jnp.int32), tokens)
    if not plan.sampled:  # one max for the token and its log-prob
        return tokens, logprobs_given_max(x, tokens, best_value)
    if plan.truncates:  # the draw's softmax was another one: the learner's, over all of x
        peak = best_value if plan.greedy else x.max(axis=-1)
        return tokens, logprobs_given_max(x, tokens, peak)
    picked = jnp.take_along_axis(x, tokens[:, None], axis=-1)[:, 0]
    drawn_lp = (picked - top) - jnp.log(total)
    if not plan.greedy:
        return tokens, drawn_lp
    return tokens, jnp.where(greedy_row, logprobs_given_max(x, tokens, best_value), drawn_lp)


def draw(x: jax.Array, keys: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One token per row from softmax(x) by inverse CDF: x (B, V) float32, keys (B,) ->
    tokens (B,) int32, each row's max logit and sum(exp(x - max)) (B,), from which a drawn
    token's log-prob is (x[token] - max) - log(sum) with no further pass over the vocabulary.

    Each row spends one uniform u from its key: the token is the first whose cumulative
    probability exceeds u. The vocabulary is cut into chunks (`vocab_chunks`): one pass
    takes the chunk maxima and one the chunk sums of exp(x - max); the chunk is found among
    those sums, and only its ~1k probabilities are accumulated. jax.random.categorical (the
    Gumbel-max trick) instead draws V random numbers and takes two logs of each, which at a
    real vocabulary dominates a sampled decode step on a CPU. The
    distribution is the same, a token of probability 0 is never drawn; the draws for a given
    key differ from categorical's.
    """
    B, V = x.shape
    x, n, size = _chunked(x)
    top = x.reshape(B, n, size).max(axis=-1).max(axis=-1)
    sums = jnp.exp(x - top[:, None]).reshape(B, n, size).sum(axis=-1)  # (B, n)
    cum = jnp.cumsum(sums, axis=-1)
    total = cum[:, -1]
    target = jax.vmap(jax.random.uniform)(keys) * total  # in [0, total)
    chunk = jnp.minimum(jnp.sum(cum <= target[:, None], axis=-1), n - 1).astype(jnp.int32)
    before = jnp.where(chunk > 0, jnp.take_along_axis(cum, jnp.maximum(chunk - 1, 0)[:, None],
                                                      axis=-1)[:, 0], 0.0)
    start = chunk * size
    p = jnp.exp(_row_slices(x, start, size) - top[:, None])
    inside = jnp.sum(jnp.cumsum(p, axis=-1) <= (target - before)[:, None], axis=-1)
    # rounding can leave the chunk's own running sum short of the target: its last token of
    # nonzero probability then (the chunk holds one, since its sum covered the target)
    last = jnp.max(jnp.where(p > 0, jnp.arange(size), 0), axis=-1)
    return (start + jnp.minimum(inside, last)).astype(jnp.int32), top, total


def logprobs_given_max(x: jax.Array, tokens: jax.Array, top: jax.Array) -> jax.Array:
    """log_softmax(x)[token] with each row's maximum `top` (...,) already known: the same
    operations as jax.nn.log_softmax in the same order, without a second pass for the
    maximum. x (..., V), tokens (...) -> (...)."""
    picked = jnp.take_along_axis(x, tokens[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return (picked - top) - jnp.log(jnp.exp(x - top[..., None]).sum(axis=-1))


__all__ = ["MIN_TEMPERATURE", "RowSampling", "SamplingParams", "SamplingPlan", "argmax_and_max",
           "as_plan", "first_argmax", "top_k_mask_rows",
           "draw", "logprobs_given_max", "learner_logits", "learner_logprobs", "policy_logits",
           "policy_logprobs", "row_keys", "sample", "top_k_mask", "top_logprobs", "top_p_mask",
           "vocab_chunks"]
