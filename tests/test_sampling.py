"""Learner log-probs against a closed-form numpy softmax: tempered, never truncated."""
import jax
import pytest
import jax.numpy as jnp
import numpy as np

from seeker_jax.generation.sampling import SamplingParams, learner_logprobs, policy_logprobs, sample

T, TOP_K, TOP_P, SUPPRESS = 0.7, 10, 0.8, (3,)


def closed_form(logits: np.ndarray, temperature: float, suppress=()) -> np.ndarray:
    """log softmax(logits / T) over the vocabulary, suppressed ids excluded (float64)."""
    x = logits.astype(np.float64) / temperature
    x[..., list(suppress)] = -np.inf
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def nucleus(logits: np.ndarray) -> set[int]:
    """The tokens top-k then top-p keep, worked by hand for one row."""
    x = logits.astype(np.float64) / T
    x[list(SUPPRESS)] = -np.inf
    order = np.argsort(-x)[:TOP_K]
    p = np.exp(x[order] - x[order].max())
    p /= p.sum()
    before = np.cumsum(p) - p
    return {int(t) for t, b in zip(order, before) if b < TOP_P}


def test_learner_logprobs_are_the_untruncated_tempered_softmax():
    logits = np.random.default_rng(0).normal(0, 3, (3, 50)).astype(np.float32)
    want = closed_form(logits, T, SUPPRESS)
    tokens = np.broadcast_to(np.arange(50), (3, 50))
    got = np.asarray(learner_logprobs(np.repeat(logits[:, None], 50, 1), tokens, T, SUPPRESS))
    keep = np.isfinite(want)
    err = np.abs(got[keep] - want[keep]).max()
    assert err <= 1e-5, err
    assert (got[:, 3] < -1e29).all()  # a suppressed id is outside the action space
    # greedy (T = 0) uses the untempered softmax
    np.testing.assert_allclose(np.asarray(learner_logprobs(logits, tokens[:, 0], 0.0)),
                               closed_form(logits, 1.0)[:, 0], atol=1e-5, rtol=0)


def test_sample_records_learner_logprobs_even_outside_the_nucleus():
    logits = np.random.default_rng(1).normal(0, 3, (3, 50)).astype(np.float32)
    params = SamplingParams(T, TOP_K, TOP_P, SUPPRESS)
    want = closed_form(logits, T, SUPPRESS)
    kept = [nucleus(row) for row in logits]
    outside = np.array([min(set(range(4, 50)) - k) for k in kept], np.int32)
    # a forced (scripted) token outside the nucleus: finite, the closed form's value
    tokens, lps = sample(logits, jax.random.split(jax.random.key(0), 3), params, outside)
    np.testing.assert_array_equal(np.asarray(tokens), outside)
    np.testing.assert_allclose(np.asarray(lps), want[np.arange(3), outside], atol=1e-5, rtol=0)
    # ...which the truncated policy would call impossible (the old recorded value)
    assert (np.asarray(policy_logprobs(logits, outside, params)) < -1e29).all()
    # drawn tokens stay inside top-k and top-p; their log-probs are the closed form's
    for seed in range(40):
        tokens, lps = sample(logits, jax.random.split(jax.random.key(seed), 3), params)
        tokens = np.asarray(tokens)
        assert all(int(t) in k for t, k in zip(tokens, kept)), (tokens, kept)
        np.testing.assert_allclose(np.asarray(lps), want[np.arange(3), tokens], atol=1e-5,
                                   rtol=0)


def test_each_row_draws_from_its_own_key():
    """A row's draw depends on its key and logits only, not on the other rows of the call."""
    logits = np.random.default_rng(2).normal(0, 1, (4, 50)).astype(np.float32)
    keys = jax.random.split(jax.random.key(5), 4)
    params = SamplingParams(1.0)
    full = np.asarray(sample(logits, keys, params)[0])
    for i in range(4):
        alone = np.asarray(sample(logits[i:i + 1], keys[i:i + 1], params)[0])
        assert alone[0] == full[i]
    assert len(set(np.asarray(sample(np.repeat(logits[:1], 4, 0), keys, params)[0]))) > 1


def test_first_argmax_equals_argmax_with_ties():
    from seeker_jax.generation.sampling import first_argmax

    x = np.random.default_rng(0).normal(size=(6, 1000)).astype(np.float32)
    x[1, [3, 700]] = 9.0        # a tie: the first index wins, as jnp.argmax
    x[2, :] = 0.0               # all equal
    x[3, -1] = 50.0             # the last index
    np.testing.assert_array_equal(np.asarray(first_argmax(jnp.asarray(x))),
                                  np.argmax(x, axis=-1))
    assert int(first_argmax(jnp.asarray(x))[1]) == 3


@pytest.mark.parametrize("vocab", [151_936, 32_000, 50_257, 151_643])
def test_chunked_first_argmax_equals_argmax(vocab):
    """Vocabularies cut into chunks (151,643 is prime: padded chunks): ties inside a chunk
    and across chunk borders, the first and last index, all-equal and all -inf rows; a NaN
    row gets a valid index (XLA:CPU's max skips NaN over large rows) and a NaN log-prob."""
    from seeker_jax.generation.sampling import argmax_and_max, first_argmax, vocab_chunks

    n, size = vocab_chunks(vocab)
    assert n > 1
    x = np.random.default_rng(1).normal(size=(10, vocab)).astype(np.float32)
    x[1, [5, 7]] = 9.0                      # a tie inside one chunk
    x[2, [size - 1, size]] = 9.0            # a tie across a chunk border
    x[3, [vocab - 1, 3 * size + 2]] = 9.0   # the earlier chunk wins
    x[4, :] = 0.0
    x[5, 0] = 50.0
    x[6, -1] = 50.0
    x[7, :] = -np.inf
    x[8, 2 * size + 1] = 9.0
    want = np.argmax(x, axis=-1)
    x[9, 4 * size] = np.nan                 # NaN: the last index, as the plain form
    got, top = argmax_and_max(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(got)[:9], want[:9])
    assert 0 <= int(got[9]) < vocab
    _, lps = sample(jnp.asarray(x), jax.random.split(jax.random.key(0), 10), SamplingParams(0.0))
    assert np.isnan(np.asarray(lps)[9]) and np.isfinite(np.asarray(lps)[:7]).all()
    np.testing.assert_array_equal(np.asarray(top)[:9], x[:9].max(-1))
    np.testing.assert_array_equal(np.asarray(jax.jit(first_argmax)(jnp.asarray(x))),
                                  np.asarray(got))


def test_vocab_chunks():
    from seeker_jax.generation.sampling import vocab_chunks

    assert vocab_chunks(151_936) == (128, 1187)   # equal chunks
    assert vocab_chunks(1000) == (1, 1000)        # small: one chunk
    assert vocab_chunks(151_643) == (149, 1024)   # a prime: the last chunk padded


@pytest.mark.parametrize("vocab", [1000, 151_936])
def test_greedy_logprobs_equal_learner_logprobs(vocab):
    """Greedy sampling reads the row max once for the token and its log-prob; the log-probs
    are still log_softmax's, forced tokens and suppressed ids included."""
    from seeker_jax.generation.sampling import learner_logprobs

    logits = jnp.asarray(np.random.default_rng(2).normal(size=(4, vocab)).astype(np.float32)
                         * 4)
    params = SamplingParams(0.0, suppress_ids=(3, vocab - 2))
    forced = jnp.asarray([-1, 7, -1, vocab - 1], jnp.int32)
    keys = jax.random.split(jax.random.key(0), 4)
    tokens, lps = jax.jit(sample, static_argnums=2)(logits, keys, params, forced)
    want = learner_logprobs(logits, tokens, 0.0, params.suppress_ids)
    np.testing.assert_allclose(np.asarray(lps), np.asarray(want), rtol=0, atol=1e-6)
    masked = np.asarray(logits).copy()
    masked[:, [3, vocab - 2]] = -np.inf
    np.testing.assert_array_equal(np.asarray(tokens)[[0, 2]], masked[[0, 2]].argmax(-1))
    assert list(np.asarray(tokens)[[1, 3]]) == [7, vocab - 1]


@pytest.mark.parametrize("vocab", [50, 151_936, 151_643])
def test_draw_follows_the_softmax(vocab):
    """Inverse-CDF draws: 8,000 draws (8 rows x 1,000 keys) from a distribution on six tokens
    (among them a chunk's first and last token and the vocabulary's last) land within 5
    standard deviations of their probabilities; a token of probability 0 is never drawn."""
    from seeker_jax.generation.sampling import draw, vocab_chunks

    size = vocab_chunks(vocab)[1]
    support = sorted({0, 5, size - 1, size, vocab - 1, vocab // 2 + 3} - {vocab})
    weights = np.arange(1.0, len(support) + 1)
    x = np.full(vocab, -np.inf, np.float32)
    x[support] = np.log(weights) + 20.0          # large logits: the max is subtracted
    rows = jnp.broadcast_to(jnp.asarray(x), (8, vocab))
    fn = jax.jit(lambda keys: draw(rows, keys)[0])
    drawn = np.concatenate([np.asarray(fn(jax.random.split(jax.random.key(i), 8)))
                            for i in range(1000)])
    assert set(drawn) <= set(support)
    p = weights / weights.sum()
    counts = np.array([(drawn == t).sum() for t in support])
    sigma = np.sqrt(len(drawn) * p * (1 - p))
    assert (np.abs(counts - len(drawn) * p) < 5 * sigma).all(), (counts, len(drawn) * p)


def test_sampled_logprobs_are_learner_logprobs_and_truncation_holds():
    """A sampled token's log-prob equals learner_logprobs (untruncated) to 4e-6, with and
    without top-k / top-p; truncated tokens are never drawn; a row's draw depends only on
    its key."""
    from seeker_jax.generation.sampling import learner_logprobs

    vocab = 151_936
    logits = jnp.asarray(np.random.default_rng(3).normal(0, 2, (8, vocab)).astype(np.float32))
    keys = jax.random.split(jax.random.key(1), 8)
    for params in (SamplingParams(0.8), SamplingParams(1.0, top_k=5),
                   SamplingParams(1.0, top_p=0.05, suppress_ids=(7,))):
        tokens, lps = jax.jit(sample, static_argnums=2)(logits, keys, params)
        want = learner_logprobs(logits, tokens, params.temperature, params.suppress_ids)
        # the draw sums exp in another order than log_softmax: up to an ulp of the
        # log-sum-exp (~2e-6 at 16 to 32), seen 1.9e-6 with logits 2x these
        np.testing.assert_allclose(np.asarray(lps), np.asarray(want), rtol=0, atol=4e-6)
        if params.top_k:
            top5 = np.argsort(-np.asarray(logits), -1)[:, :5]
            assert all(t in row for t, row in zip(np.asarray(tokens), top5))
        alone = np.asarray(sample(logits[2:3], keys[2:3], params)[0])
        assert alone[0] == int(tokens[2])
