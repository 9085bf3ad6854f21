"""SFT: loss mask on a hand-worked conversation, loss vs a dense reference, sharded step equals
the unsharded one, exact resume, and export of an SFT checkpoint to transformers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from seeker_jax.config import load_config
from seeker_jax.models.chat import ChatFormatter, concat_segments
from seeker_jax.models.qwen3_vl.config import from_hf_dict
from seeker_jax.models.qwen3_vl.modeling import Qwen3VLForConditionalGeneration
from seeker_jax.sharding import make_mesh
from seeker_jax.data.batch import loss_positions
from seeker_jax.training.losses import token_logprob_sum
from seeker_jax.training.train_state import create_train_state, make_train_step, place_batch


@pytest.fixture(scope="module")
def fm(tok):
    return ChatFormatter(tok, "S")


def test_loss_mask_two_turns(fm):
    """prompt | assistant 'A<im_end>' | tool '\\n<im_start>user...<im_start>assistant\\n' |
    assistant 'B<im_end>': loss exactly on the two assistant turns, including <|im_end|>."""
    segs = [fm.system_and_user_segment(["Q"]), fm.assistant_segment_from_text("<think>a</think>"),
            fm.tool_response_segment([["R"]]), fm.assistant_segment_from_text("<answer>B</answer>")]
    conv = concat_segments(segs)
    text = fm.tokenizer.decode(conv.input_ids)
    assert text == ("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n"
                    "<|im_start|>assistant\n<think>a</think><|im_end|>\n<|im_start|>user\n"
                    "<tool_response>\nR\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
                    "<answer>B</answer><|im_end|>")
    learned = fm.tokenizer.decode(conv.input_ids[conv.loss_mask == 1])
    assert learned == "<think>a</think><|im_end|><answer>B</answer><|im_end|>"
    # positions predicting learned tokens: t such that loss_mask[t + 1] == 1
    index, weight = loss_positions(conv.loss_mask[None], np.ones_like(conv.loss_mask)[None], 8)
    n = int(weight.sum())
    np.testing.assert_array_equal(index[0, :n] + 1, np.flatnonzero(conv.loss_mask))


def _nll_sum(h, w, transposed, y, m, chunk):
    """The SFT loss's masked NLL sum through the fused weighted log-prob sum."""
    return -token_logprob_sum(h, w, transposed, y, m, chunk=chunk)


def test_chunked_loss_matches_dense():
    rng = np.random.default_rng(0)
    h = jnp.asarray(rng.normal(size=(2, 37, 8)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(8, 50)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 50, (2, 37)))
    m = jnp.asarray(rng.integers(0, 2, (2, 37)), jnp.float32)
    total = _nll_sum(h, w, False, y, m, 8)
    ref = optax.softmax_cross_entropy_with_integer_labels(h @ w, y)
    np.testing.assert_allclose(total, jnp.sum(ref * m), rtol=1e-5)
    total_t = _nll_sum(h, w.T, True, y, m, 16)
    np.testing.assert_allclose(total_t, total, rtol=1e-5)


def test_chunked_loss_gradients_match_dense():
    """The fused backward (gradients formed in the forward pass) equals autodiff of the dense
    loss, for both weight layouts, with a padded last chunk and a scaled cotangent."""
    rng = np.random.default_rng(2)
    h = jnp.asarray(rng.normal(size=(2, 37, 8)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(8, 50)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 50, (2, 37)))
    m = jnp.asarray(rng.integers(0, 2, (2, 37)), jnp.float32)
    dense = lambda h, w: 3.0 * jnp.sum(  # noqa: E731
        optax.softmax_cross_entropy_with_integer_labels(h @ w, y) * m)
    ref = jax.grad(dense, (0, 1))(h, w)
    for transposed in (False, True):
        def fused(h, w):
            return 3.0 * _nll_sum(h, w.T if transposed else w, transposed, y, m, 8)
        got = jax.jit(jax.grad(fused, (0, 1)))(h, w)
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def _tiny_model():
    cfg = from_hf_dict(load_config("configs/qwen3_vl.py:tiny").to_dict())
    return Qwen3VLForConditionalGeneration(cfg, rngs=nnx.Rngs(0))


def _text_batch(B=8, L=48):
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 1000, (B, L)).astype(np.int32)
    attn = np.ones((B, L), np.int32)
    attn[1, -5:] = 0
    loss = np.zeros((B, L), np.int32)
    loss[:, L // 2:] = 1
    return {"input_ids": ids, "attention_mask": attn, "mm_token_type_ids": np.zeros_like(ids),
            "loss_mask": loss}


def _one_step(mesh):
    # SGD, so parameter differences are gradient differences (Adam's g / sqrt(v) would blow
    # rounding noise on near-zero gradients up to the learning rate).
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1.0))
    state = create_train_state(_tiny_model(), tx, mesh, freeze_vision=True)
    step = make_train_step(tx)
    batch = _text_batch()
    placed, vision = place_batch(batch, state.model(), mesh)
    metrics = step(state, placed, vision)
    params = {k: np.asarray(v) for k, v in nnx.to_flat_state(state.trainable)}
    return float(metrics["loss"]), params, state


def test_sharded_step_equals_unsharded():
    assert jax.device_count() == 8
    loss1, p1, _ = _one_step(make_mesh({"data": 1, "fsdp": 1, "tensor": 1}))
    loss8, p8, state8 = _one_step(make_mesh({"data": 1, "fsdp": 4, "tensor": 2}))
    assert abs(loss1 - loss8) <= 1e-5
    assert p1.keys() == p8.keys() and not any("visual" in str(k) for k in p1)
    for k in p1:
        np.testing.assert_allclose(p8[k], p1[k], atol=1e-5, err_msg=str(k))
    # the parameters really are sharded
    specs = {str(v.get_value().sharding.spec) for _, v in nnx.to_flat_state(state8.trainable)}
    assert any("fsdp" in s for s in specs) and any("tensor" in s for s in specs)
