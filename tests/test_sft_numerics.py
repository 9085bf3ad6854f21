"""SFT step numerics: bf16 compute over fp32 master weights, and gradient accumulation.

Both on the tiny model, unsharded, with SGD (Adam's g / sqrt(v) would blow rounding noise on
near-zero gradients up to the learning rate and hide what is compared).
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from seeker_jax.config import load_config
from seeker_jax.models.qwen3_vl.config import from_hf_dict
from seeker_jax.models.qwen3_vl.modeling import Qwen3VLForConditionalGeneration
from seeker_jax.training.train_state import create_train_state, make_train_step, place_batch


def _model(dtype=jnp.float32):
    cfg = from_hf_dict(load_config("configs/qwen3_vl.py:tiny").to_dict())
    return Qwen3VLForConditionalGeneration(cfg, dtype=dtype, param_dtype=jnp.float32,
                                           rngs=nnx.Rngs(0))


def _batch(B: int, L: int = 40, seed: int = 1) -> dict[str, np.ndarray]:
    """Text rows with the same number of learned tokens each (so a mean over 2b rows is the
    mean of two b-row means)."""
    ids = np.random.default_rng(seed).integers(0, 1000, (B, L)).astype(np.int32)
    loss = np.zeros((B, L), np.int32)
    loss[:, L // 2:] = 1
    return {"input_ids": ids, "attention_mask": np.ones((B, L), np.int32),
            "mm_token_type_ids": np.zeros_like(ids), "loss_mask": loss}


def _flat(state) -> dict:
    return {k: np.asarray(v) for k, v in nnx.to_flat_state(state.trainable)}


def _run(model, tx, batches):
    state = create_train_state(model, tx, None, freeze_vision=True)
    before = _flat(state)
    step = make_train_step(tx)
    metrics, after = [], []
    for batch in batches:
        placed, vision = place_batch(batch, model, None)
        metrics.append(jax.device_get(step(state, placed, vision)))
        after.append(_flat(state))
    return before, after[-1], metrics, state, after


def test_bf16_compute_keeps_fp32_master_weights():
    tx = optax.sgd(1.0)
    batch = _batch(2)
    p0, p32, m32, *_ = _run(_model(jnp.float32), tx, [batch])
    p0b, p16, m16, state, _ = _run(_model(jnp.bfloat16), tx, [batch])
    # master weights (and what the optimizer writes into them) stay fp32
    assert all(v.dtype == np.float32 for v in p16.values())
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.trainable))
    # same init; loss within bf16 rounding of the fp32 loss
    for k in p0:
        np.testing.assert_array_equal(p0[k], p0b[k])
    assert abs(float(m16[0]["loss"]) - float(m32[0]["loss"])) < 2e-2 * float(m32[0]["loss"])
    # the update (= -gradient under SGD(1)) points the same way as fp32's
    g32 = np.concatenate([(p0[k] - p32[k]).ravel() for k in p0])
    g16 = np.concatenate([(p0[k] - p16[k]).ravel() for k in p0])
    cos = g16 @ g32 / (np.linalg.norm(g16) * np.linalg.norm(g32))
    assert cos > 0.99, cos
    # and bf16 really changed the arithmetic (the comparison above is not fp32 vs fp32)
    assert float(m16[0]["loss"]) != float(m32[0]["loss"])


def test_gradient_accumulation_equals_large_batch():
    big = _batch(4)
    halves = [{k: v[:2] for k, v in big.items()}, {k: v[2:] for k, v in big.items()}]
    inner = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1.0))
    p0, p_big, m_big, *_ = _run(_model(), inner, [big])
    _, p_acc, m_acc, _, steps = _run(_model(), optax.MultiSteps(inner, every_k_schedule=2),
                                     halves)
    # the loss of the big batch is the mean of the micro-batch losses (equal token counts)
    np.testing.assert_allclose(np.mean([float(m["loss"]) for m in m_acc]),
                               float(m_big[0]["loss"]), rtol=1e-6)
    changed = 0
    for k in p0:  # untouched after the first micro-batch, then the big batch's update
        np.testing.assert_array_equal(steps[0][k], p0[k], err_msg=str(k))
        np.testing.assert_allclose(p_acc[k], p_big[k], atol=2e-6, err_msg=str(k))
        changed += not np.array_equal(p_big[k], p0[k])
    assert changed > 0

