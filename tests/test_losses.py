"""seeker_jax.training.losses: chunked per-token log-probs (custom VJP) against dense autodiff, the fused
weighted sum against the per-token path, and the loss registry.

Dense reference: jax.nn.log_softmax of the whole (B, K, V) logits, differentiated by jax.grad.
fp32 throughout; tolerance 1e-5 (largest absolute errors seen: 9.5e-7 on log-probs of size ~4,
3.8e-6 on gradients, K = 37, V = 50, chunk 8).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seeker_jax.training.losses import (get_loss, register_loss, registered_losses, sft_loss,
                               token_logprob_sum, token_logprobs,
                               token_logprobs_with_entropy)

B, K, D, V = 2, 37, 8, 50  # K = 37 with chunk 8 leaves a padded last chunk


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    h = jnp.asarray(rng.normal(size=(B, K, D)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(D, V)), jnp.float32)
    y = jnp.asarray(rng.integers(0, V, (B, K)), jnp.int32)
    g = jnp.asarray(rng.normal(size=(B, K)), jnp.float32)  # an arbitrary per-token cotangent
    return h, w, y, g


def _dense(h, w, y, temperature):
    logp = jax.nn.log_softmax((h @ w) / temperature, axis=-1)
    return jnp.take_along_axis(logp, y[..., None], -1)[..., 0]


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_logprobs_value_and_vjp_equal_dense(transposed, temperature):
    h, w, y, g = _inputs()

    def chunked(h, w):
        return token_logprobs(h, w.T if transposed else w, transposed, y, chunk=8,
                              temperature=temperature)

    got, vjp = jax.vjp(jax.jit(chunked), h, w)
    ref, ref_vjp = jax.vjp(lambda h, w: _dense(h, w, y, temperature), h, w)
    assert got.shape == (B, K) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    for a, b in zip(vjp(g), ref_vjp(g)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
        assert float(jnp.abs(b).max()) > 1e-2  # the gradients compared are not all ~0


@pytest.mark.parametrize("transposed", [False, True])
def test_token_logprobs_with_entropy(transposed):
    """The entropy from the log-probs' own chunk logits equals the dense entropy; the log-probs
    and their VJP are token_logprobs' (the entropy, a metric, adds no gradient)."""
    h, w, y, g = _inputs(2)
    wt = w.T if transposed else w
    lp, ent = jax.jit(lambda h, w: token_logprobs_with_entropy(h, w, transposed, y, chunk=8,
                                                               temperature=0.7))(h, wt)
    dense = jax.nn.log_softmax((h @ w) / 0.7, axis=-1)
    np.testing.assert_allclose(ent, -jnp.sum(jnp.exp(dense) * dense, -1), atol=1e-5, rtol=0)
    np.testing.assert_allclose(lp, _dense(h, w, y, 0.7), atol=1e-5, rtol=0)

    def with_ent(h, w):  # the entropy in the objective must not move the gradient
        lp, ent = token_logprobs_with_entropy(h, w, transposed, y, chunk=8, temperature=0.7)
        return jnp.sum(lp * g) + 3.0 * jnp.sum(ent)

    got = jax.grad(with_ent, (0, 1))(h, wt)
    ref = jax.grad(lambda h, w: jnp.sum(token_logprobs(h, w, transposed, y, chunk=8,
                                                       temperature=0.7) * g), (0, 1))(h, wt)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


def test_token_logprobs_second_use_of_output():
    """A nonlinear function of the log-probs (a GRPO-like ratio * advantage) differentiates the
    same through the chunked VJP as through dense autodiff."""
    h, w, y, g = _inputs(1)
    old = _dense(h, w, y, 1.0) - 0.1

    def objective(lp):
        ratio = jnp.exp(lp - old)
        return -jnp.sum(jnp.minimum(ratio * g, jnp.clip(ratio, 0.8, 1.2) * g))

    got = jax.grad(lambda h, w: objective(token_logprobs(h, w, False, y, chunk=16)), (0, 1))(h, w)
    ref = jax.grad(lambda h, w: objective(_dense(h, w, y, 1.0)), (0, 1))(h, w)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("transposed", [False, True])
def test_fused_sum_equals_weighted_token_logprobs(transposed):
    h, w, y, _ = _inputs(2)
    m = jnp.asarray(np.random.default_rng(3).integers(0, 2, (B, K)), jnp.float32)
    w_in = w.T if transposed else w

    def fused(h, w_in):
        return token_logprob_sum(h, w_in, transposed, y, m, chunk=8, temperature=0.9)

    def per_token(h, w_in):
        return jnp.sum(token_logprobs(h, w_in, transposed, y, chunk=8, temperature=0.9) * m)

    np.testing.assert_allclose(fused(h, w_in), per_token(h, w_in), rtol=1e-6)
    for a, b in zip(jax.grad(fused, (0, 1))(h, w_in), jax.grad(per_token, (0, 1))(h, w_in)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_bf16_operands_keep_fp32_logprobs():
    h, w, y, _ = _inputs(4)
    lp = token_logprobs(h.astype(jnp.bfloat16), w, False, y, chunk=8)
    assert lp.dtype == jnp.float32
    np.testing.assert_allclose(lp, _dense(h, w, y, 1.0), atol=0.1)  # bf16 operand rounding


def test_registry_and_errors():
    assert "sft" in registered_losses() and get_loss("sft") is sft_loss
    with pytest.raises(KeyError, match="unknown loss 'nope'.*sft"):
        get_loss("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_loss("sft")(lambda model, batch: (0.0, {}))
    h, w, y, _ = _inputs()
    with pytest.raises(ValueError, match="temperature must be > 0"):
        token_logprobs(h, w, False, y, temperature=0.0)


@pytest.mark.parametrize("transposed", [False, True])
def test_suppressed_ids_leave_the_softmax_like_the_sampler(transposed):
    """suppress_ids: log-probs over the vocabulary without those columns (the sampler's
    learner_logits mask, column for column), their VJP against dense autodiff of the masked
    softmax, and the entropy of the masked distribution."""
    from seeker_jax.generation.sampling import learner_logprobs

    h, w, y, g = _inputs(3)
    suppress = (3, 17, 41, 49)
    y = jnp.where(jnp.isin(y, jnp.asarray(suppress)), 0, y)  # policy tokens are never suppressed
    wt = w.T if transposed else w
    keep = np.ones(V, bool)
    keep[list(suppress)] = False

    def dense(h, w):
        logits = (h @ w[:, keep]) / 0.7
        index = jnp.cumsum(jnp.asarray(keep)) - 1                # vocab id -> kept column
        return jnp.take_along_axis(jax.nn.log_softmax(logits, -1), index[y][..., None], -1)[..., 0]

    got, vjp = jax.vjp(jax.jit(lambda h, w: token_logprobs(
        h, w, transposed, y, chunk=8, temperature=0.7, suppress_ids=suppress)), h, wt)
    ref, ref_vjp = jax.vjp(dense, h, w)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    dh, dw = vjp(g)
    rdh, rdw = ref_vjp(g)
    np.testing.assert_allclose(dh, rdh, atol=1e-5, rtol=1e-5)
    full_dw = np.zeros((D, V), np.float32)
    full_dw[:, keep] = rdw[:, keep]                               # masked columns: no gradient
    np.testing.assert_allclose(dw.T if transposed else dw, full_dw, atol=1e-5, rtol=1e-5)
    # the sampler's own log-prob of the same tokens under the same mask
    sampler = learner_logprobs(h @ w, y, 0.7, suppress)
    np.testing.assert_allclose(got, sampler, atol=1e-5, rtol=0)
    # and unmasked the two distributions differ by far more than the tolerance
    unmasked = token_logprobs(h, wt, transposed, y, chunk=8, temperature=0.7)
    assert float(jnp.abs(unmasked - sampler).max()) > 1e-2
    _, ent = token_logprobs_with_entropy(h, wt, transposed, y, chunk=8, temperature=0.7,
                                         suppress_ids=suppress)
    p = jax.nn.softmax((h @ w[:, keep]) / 0.7, -1)
    np.testing.assert_allclose(ent, -jnp.sum(p * jnp.log(p), -1), atol=1e-5)
    with pytest.raises(ValueError, match="suppress_ids"):
        token_logprobs(h, wt, transposed, y, suppress_ids=(V,))
