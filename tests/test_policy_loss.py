"""seeker_jax.rl.policy_loss: the clipped surrogate, the four aggregations, KL k1/k2/k3 and TIS
against hand-worked numbers and closed forms; then through a real tiny Qwen3-VL: masked tokens
(prompt, tool output, padding) get exactly zero gradient, the loss at ratio 1 has the plain
policy-gradient gradient, the reference helper is the learner's forward, and a train step runs.

Tolerances: hand-worked values 1e-6 (fp32); ratio-1 gradients: largest absolute difference
from grad of aggregation(-A * logp) <= 2e-5 x the largest gradient entry (seen: at most
5.8e-7 x, e.g. 5.7e-6 on entries up to 9.95 for seq_mean_token_sum; the two gradients are
different jitted graphs, so not bitwise equal);
masked gradients are compared for exact equality (== 0, bitwise-equal parameter gradients).
"""
import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from hf_reference import save_tiny_hf
from seeker_jax.data.batch import collate
from seeker_jax.training.losses import get_loss, lm_head_weight, policy_token_logprobs, token_logprobs
from seeker_jax.models.qwen3_vl import from_pretrained
from seeker_jax.rl.policy_loss import (AGGREGATIONS, KL_ESTIMATORS, TIS, PolicyLossConfig,
                                       clipped_surrogate, grpo_token_terms, make_grpo_loss,
                                       reference_logprobs)
from seeker_jax.training.train_state import (create_train_state, make_train_step, place_batch,
                                    with_vision)

# ---------------------------------------------------------------- hand-worked pieces

VALUES = jnp.array([[1.0, 2, 3, 4], [5, 6, 0, 0], [7, 8, 9, 9]])
WEIGHT = jnp.array([[1.0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])  # row 2 fully masked


@pytest.mark.parametrize("name,expected", [
    ("token_mean", (1 + 2 + 3 + 5) / 4),            # every learned token once
    ("seq_mean_token_mean", (6 / 3 + 5 / 1) / 2),   # rows without tokens do not count
    ("seq_mean_token_sum", (6 + 5) / 2),
    ("seq_mean_token_sum_norm", (6 + 5) / (3 * 8)),  # a constant: B rows * max_len_norm 8
])
def test_aggregations_hand_worked(name, expected):
    cfg = PolicyLossConfig(aggregation=name, max_len_norm=8)
    np.testing.assert_allclose(AGGREGATIONS.get(name)(VALUES, WEIGHT, cfg), expected, atol=1e-6)


def test_clipped_surrogate_hand_worked():
    cfg = PolicyLossConfig(clip_low=0.2, clip_high=0.28)
    ratio = jnp.array([0.5, 1.0, 1.5, 1.5, 0.5])
    adv = jnp.array([1.0, 2.0, 1.0, -1.0, -1.0])
    loss, binds = clipped_surrogate(jnp.log(ratio), adv, cfg)
    # -min(r A, clip(r, 0.8, 1.28) A): 0.5 -> -0.5 (unclipped side is smaller); 1 -> -2;
    # 1.5, A>0 -> -1.28 (clip binds); 1.5, A<0 -> 1.5; 0.5, A<0 -> 0.8 (clip binds)
    np.testing.assert_allclose(loss, [-0.5, -2.0, -1.28, 1.5, 0.8], atol=1e-6)
    np.testing.assert_array_equal(binds, [0, 0, 1, 0, 1])
    g = jax.grad(lambda lr: clipped_surrogate(lr, adv, cfg)[0].sum())(jnp.log(ratio))
    np.testing.assert_allclose(g, [-0.5, -2.0, 0.0, 1.5, 0.0], atol=1e-6)  # -A r, or 0 if cut


def test_kl_estimators_closed_forms():
    logp, ref = jnp.log(jnp.array([0.5])), jnp.log(jnp.array([0.25]))
    l2 = np.log(2.0)
    np.testing.assert_allclose(KL_ESTIMATORS.get("k1")(logp, ref), [l2], atol=1e-6)
    np.testing.assert_allclose(KL_ESTIMATORS.get("k2")(logp, ref), [0.5 * l2 ** 2], atol=1e-6)
    np.testing.assert_allclose(KL_ESTIMATORS.get("k3")(logp, ref), [0.5 - 1 + l2], atol=1e-6)
    # k1 and k3 are unbiased: E_{x~p}[k(x)] = KL(p || q), summed exactly over 5 outcomes
    p = jnp.array([0.1, 0.2, 0.3, 0.15, 0.25])
    q = jnp.array([0.3, 0.1, 0.2, 0.25, 0.15])
    kl = float(jnp.sum(p * jnp.log(p / q)))
    for name in ("k1", "k3"):
        est = float(jnp.sum(p * KL_ESTIMATORS.get(name)(jnp.log(p), jnp.log(q))))
        np.testing.assert_allclose(est, kl, atol=1e-6, err_msg=name)
    assert (KL_ESTIMATORS.get("k3")(jnp.log(p), jnp.log(q)) >= 0).all()
    # k3's gradient at logp == ref is 0 (so KL adds nothing at the start of training)
    g = jax.grad(lambda x: KL_ESTIMATORS.get("k3")(x, jnp.log(q)).sum())(jnp.log(q))
    np.testing.assert_allclose(g, 0.0, atol=1e-7)


def test_tis_hand_worked():
    cfg = PolicyLossConfig(tis_cap=2.0)
    old = jnp.log(jnp.array([[0.5, 0.6, 0.3]]))
    sampler = jnp.log(jnp.array([[0.5, 0.2, 0.2]]))  # ratios 1, 3, 1.5
    w = jnp.ones((1, 3))
    tw, cut = TIS.get("token")(old, sampler, w, cfg)
    np.testing.assert_allclose(tw, [[1.0, 2.0, 1.5]], atol=1e-6)
    np.testing.assert_array_equal(cut, [[0, 1, 0]])
    sw, scut = TIS.get("sequence")(old, sampler, w, cfg)  # prod 4.5 -> capped at 2
    np.testing.assert_allclose(sw, [[2.0, 2.0, 2.0]], atol=1e-6)
    np.testing.assert_array_equal(scut, [[1, 1, 1]])
    sw, _ = TIS.get("sequence")(old, sampler, jnp.array([[1.0, 0, 1]]), cfg)  # masked: 1.5
    np.testing.assert_allclose(sw, [[1.5, 1.5, 1.5]], atol=1e-6)


def test_token_terms_metrics_hand_worked():
    """Two tokens, old = sampler: ratio 2 and 1; kl k1; TIS token."""
    logp = jnp.log(jnp.array([[0.4, 0.1, 0.3]]))
    batch = {"loss_weight": jnp.array([[1.0, 1.0, 0.0]]),
             "advantages": jnp.array([[1.0, -1.0, 5.0]]),
             "old_logprobs": jnp.log(jnp.array([[0.2, 0.1, 0.3]])),
             "sampler_logprobs": jnp.log(jnp.array([[0.25, 0.1, 0.3]])),
             "ref_logprobs": jnp.log(jnp.array([[0.2, 0.2, 0.3]]))}
    cfg = PolicyLossConfig(kl="k1", kl_coef=0.5, tis="token")
    per_token, aux = grpo_token_terms(logp, batch, cfg)
    # token 0: r 2 > 1.2, A 1 -> -1.2 (clip binds), TIS 0.2/0.25 = 0.8 -> -0.96, kl log 2
    # token 1: r 1, A -1 -> 1, TIS 1, kl log 0.5
    l2 = np.log(2.0)
    np.testing.assert_allclose(per_token[0, :2], [-0.96 + 0.5 * l2, 1.0 - 0.5 * l2], atol=1e-6)
    np.testing.assert_allclose(aux["clip_frac"], 0.5, atol=1e-6)
    np.testing.assert_allclose(aux["ratio_mean"], 1.5, atol=1e-6)
    np.testing.assert_allclose(aux["kl"], 0.0, atol=1e-6)  # (log 2 + log 0.5) / 2
    np.testing.assert_allclose(aux["sampler_learner_gap"], np.log(1.25) / 2, atol=1e-6)
    np.testing.assert_allclose(aux["tis_frac"], 0.0, atol=1e-6)
    np.testing.assert_allclose(aux["pg_loss"], (-0.96 + 1.0) / 2, atol=1e-6)


# ---------------------------------------------------------------- config

def test_presets_and_config_errors():
    grpo = PolicyLossConfig.preset("grpo")
    assert (grpo.clip_low, grpo.clip_high, grpo.aggregation, grpo.kl, grpo.kl_coef) == (
        0.2, 0.2, "token_mean", "k3", 0.001) and grpo.needs_reference
    dr = PolicyLossConfig.preset("dr_grpo")
    assert (dr.advantage, dr.aggregation, dr.max_len_norm, dr.needs_reference) == (
        "dr_grpo", "seq_mean_token_sum_norm", 4096, False)
    dapo = PolicyLossConfig.preset("dapo")
    assert (dapo.clip_high, dapo.dynamic_sampling, dapo.overlong_filter) == (0.28, True, True)
    for name in ("grpo", "dr_grpo", "dapo"):
        assert callable(get_loss(name))  # registered in seeker_jax.training.losses: train_step_fn(tx, name)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['clip'\]"):
        PolicyLossConfig.from_config({"clip": 0.2})
    with pytest.raises(ValueError, match="max_len_norm"):
        PolicyLossConfig(aggregation="seq_mean_token_sum_norm")
    with pytest.raises(KeyError, match="loss.kl: unknown KL estimator 'k4'.*k3"):
        PolicyLossConfig(kl="k4")
    with pytest.raises(ValueError, match="unknown loss preset 'ppo'"):
        PolicyLossConfig.preset("ppo")
    w = jnp.ones((1, 2))
    with pytest.raises(ValueError, match="no 'ref_logprobs'.*kl_coef"):
        grpo_token_terms(jnp.zeros((1, 2)), {"loss_weight": w, "advantages": w}, grpo)
    with pytest.raises(ValueError, match="no 'sampler_logprobs'.*tis"):
        grpo_token_terms(jnp.zeros((1, 2)), {"loss_weight": w, "advantages": w},
                         dataclasses.replace(dapo, tis="token"))
    # kl_coef 0: no reference needed, no kl metric
    _, aux = grpo_token_terms(jnp.zeros((1, 2)), {"loss_weight": w, "advantages": w}, dapo)
    assert "kl" not in aux


# ---------------------------------------------------------------- through a real tiny model

P_LEN, BUCKET = 4, 24


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tiny_pl"))
    save_tiny_hf(d, tied=True, seed=3, scale=5.0)
    return from_pretrained(d)


def _conversation(ids, mask):
    return types.SimpleNamespace(input_ids=np.asarray(ids, np.int32),
                                 mm_token_type_ids=np.zeros(len(ids), np.int32),
                                 loss_mask=np.asarray(mask, np.int32))


def _rollout_batch(model, seed=0):
    """Row 0: prompt 4 | policy 3 | tool output 3 | policy 2; row 1: prompt 4 | policy 5;
    both right-padded to 24 tokens (16 loss positions, most padding)."""
    rng = np.random.default_rng(seed)
    masks = [[0] * P_LEN + [1] * 3 + [0] * 3 + [1] * 2, [0] * P_LEN + [1] * 5]
    convs = [_conversation(rng.integers(1, 980, len(m)), m) for m in masks]
    per_token = {name: [rng.normal(scale, size=len(m)) for m in masks]
                 for name, scale in (("advantages", 1.0), ("old_logprobs", 0.0),
                                     ("ref_logprobs", 0.0), ("sampler_logprobs", 0.0))}
    batch = collate(convs, BUCKET, multiple=16, per_token=per_token)
    arrays, vision = place_batch(batch, model, None)
    lp = np.asarray(policy_token_logprobs(model, with_vision(arrays, vision)))
    for name in ("old_logprobs", "ref_logprobs", "sampler_logprobs"):  # near the policy
        arrays[name] = jnp.asarray(lp + 0.2 * np.asarray(arrays[name]))
    return batch, arrays, vision


def _param_grads(model, loss_fn, inputs):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    grad = jax.jit(jax.grad(lambda p: loss_fn(nnx.merge(graphdef, p, rest), inputs)[0]))
    return jax.tree.leaves(grad(params))


CFG = PolicyLossConfig(kl_coef=0.1, tis="token", chunk=16, temperature=0.8)


def test_masked_tokens_get_exactly_zero_gradient(model):
    batch, arrays, vision = _rollout_batch(model)
    inputs = with_vision(arrays, vision)
    learned = batch.loss_index[batch.loss_weight > 0]  # (row, position) pairs below
    rows = np.nonzero(batch.loss_weight > 0)[0]

    def from_hidden(hidden):  # the loss as a function of every position's last hidden state
        index = inputs["loss_index"]
        h = jnp.take_along_axis(hidden, index[..., None], axis=1)
        labels = jnp.take_along_axis(inputs["input_ids"], index + 1, axis=1)
        w, transposed = lm_head_weight(model)
        lp = token_logprobs(h, w, transposed, labels, CFG.chunk, CFG.temperature)
        per_token, _ = grpo_token_terms(lp, inputs, CFG)
        return AGGREGATIONS.get(CFG.aggregation)(per_token, inputs["loss_weight"], CFG)

    out = model(inputs["input_ids"], inputs["attention_mask"], inputs["position_ids"],
                compute_logits=False)
    g = np.asarray(jax.grad(from_hidden)(out.last_hidden_state))
    on = np.zeros(g.shape[:2], bool)
    on[rows, learned] = True  # positions predicting a policy token
    assert (np.abs(g[on]).max(-1) > 0).all()
    assert (g[~on] == 0).all()  # prompt, tool output, padding: exactly 0
    # prompt and tool-output tokens of row 0 are predicted by positions 3-6 (not 3) and 9
    assert on[0].tolist()[:12] == [0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0]

    # The loss positions that are padding (loss_weight 0) may hold anything, even NaN or inf:
    # the parameter gradients stay bitwise equal.
    loss_fn = make_grpo_loss(CFG)
    clean = _param_grads(model, loss_fn, inputs)
    pad = inputs["loss_weight"] == 0
    dirty = dict(inputs)
    for name, junk in (("advantages", 1e6), ("old_logprobs", jnp.nan),
                       ("ref_logprobs", -jnp.inf), ("sampler_logprobs", 50.0)):
        dirty[name] = jnp.where(pad, junk, inputs[name])
    for a, b in zip(clean, _param_grads(model, loss_fn, dirty)):
        np.testing.assert_array_equal(a, b)
    assert max(float(jnp.abs(a).max()) for a in clean) > 1e-3


SLOW = pytest.mark.slow  # each case compiles two gradients (~30 s on a loaded 2-core CPU)


@pytest.mark.parametrize("aggregation,old", [
    pytest.param("token_mean", "given", marks=SLOW), ("token_mean", "absent"),
    ("seq_mean_token_mean", "given"),
    pytest.param("seq_mean_token_sum", "given", marks=SLOW),
    pytest.param("seq_mean_token_sum_norm", "given", marks=SLOW),
    pytest.param("seq_mean_token_mean", "absent", marks=SLOW),
])
def test_ratio_one_is_the_policy_gradient(model, aggregation, old):
    """old == current (given, or absent: the current ones, detached) and ref == current: the
    gradient is grad of aggregation(-A * logp) (the clip never binds at ratio 1 and k3's
    gradient is 0 at ref == logp), for every aggregation."""
    cfg = dataclasses.replace(CFG, aggregation=aggregation, max_len_norm=32, tis="none")
    batch, arrays, vision = _rollout_batch(model, seed=1)
    inputs = with_vision(arrays, vision)
    lp = policy_token_logprobs(model, inputs, cfg.temperature, cfg.chunk)
    inputs["ref_logprobs"] = lp
    if old == "given":
        inputs["old_logprobs"] = lp
    else:
        inputs.pop("old_logprobs")
    aggregate = AGGREGATIONS.get(aggregation)

    def plain_pg(model, batch):
        logp = policy_token_logprobs(model, batch, cfg.temperature, cfg.chunk)
        return aggregate(-batch["advantages"] * logp, batch["loss_weight"], cfg), {}

    got = _param_grads(model, make_grpo_loss(cfg), inputs)
    ref = _param_grads(model, plain_pg, inputs)
    scale = max(float(jnp.abs(b).max()) for b in ref)
    assert scale > 1e-3
    err = max(float(jnp.abs(a - b).max()) for a, b in zip(got, ref))
    assert err <= 2e-5 * scale, (err, scale)


def test_reference_logprobs_and_a_train_step(model):
    batch, arrays, vision = _rollout_batch(model, seed=2)
    tx = optax.sgd(1e-2)
    state = create_train_state(model, tx, None, freeze_vision=False)
    ref = reference_logprobs(state.graphdef, (state.trainable, state.frozen, state.rest), arrays,
                             vision, CFG.temperature)
    direct = policy_token_logprobs(model, with_vision(arrays, vision), CFG.temperature)
    # Chunked (custom VJP) vs dense log_softmax in fp32: a few ulps apart at |logp| ~ 6 (seen
    # 1.4e-6, 2.4e-7 relative), so the bound is relative as well as absolute.
    np.testing.assert_allclose(ref, direct, atol=1e-6, rtol=1e-6)
    arrays["ref_logprobs"] = ref
    step = make_train_step(tx, make_grpo_loss(CFG))
    first = step(state, arrays, vision)
    second = step(state, arrays, vision)
    for k in ("loss", "clip_frac", "kl", "entropy", "ratio_mean", "sampler_learner_gap",
              "tis_frac", "grad_norm"):
        assert np.isfinite(float(first[k])), k
    assert 0 < float(first["entropy"]) <= np.log(1000) + 1e-4  # vocabulary 1000
    assert float(second["loss"]) != float(first["loss"])  # the step changed the policy
