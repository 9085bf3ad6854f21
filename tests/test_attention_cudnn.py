"""models/qwen3_vl/attention.py's cuDNN path: `fused_sdpa` against the dense reference.

Two halves:
- On any backend, `fused_sdpa(..., implementation="xla")` runs the exact call the cuDNN path
  makes (key lengths or a dense mask, picked by `lax.cond`; segments as a dense mask) through
  XLA, so this CPU checks the translation of every `AttentionMask` in float32 to <= 1e-5,
  outputs and gradients.
- On a GPU (skipped elsewhere), the cuDNN kernel itself, in bfloat16, against the reference
  computed in float32 from the same bfloat16 inputs. The bar is the reference's own bfloat16
  error: cuDNN must not be more than twice as far from the float32 answer as the dense path
  run in bfloat16 is. Run there with `JAX_PLATFORMS=cuda python -m pytest
  tests/test_attention_cudnn.py`; what an H200 gave is noted beside each bound.

Rows whose query sees no real key (a fully padded row) are padding: the cuDNN path gives them
length 1 rather than the reference's uniform weights, so they are left out of the comparison,
and the gradients' weights are zero there (as a loss mask makes them).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hf_reference import make_inputs, tiny_hf_config
from seeker_jax.models.qwen3_vl import Qwen3VLForConditionalGeneration, from_hf_dict
from seeker_jax.models.qwen3_vl import attention as A

ON_GPU = jax.default_backend() == "gpu"
needs_gpu = pytest.mark.skipif(not ON_GPU, reason="cuDNN runs on a GPU only (this is "
                               f"{jax.default_backend()!r})")


def qkv(B, L, H, KVH, D, seed=0, dtype=jnp.float32):
    r = np.random.default_rng(seed)
    return tuple(jnp.asarray(r.standard_normal(s), jnp.float32).astype(dtype)
                 for s in ((B, L, H, D), (B, L, KVH, D), (B, L, KVH, D)))


def right_padding(B, L):
    """Row 0 full, row 1 right-padded, row 2 a single token, row 3 fully padded."""
    valid = np.ones((B, L), bool)
    valid[1, L - L // 3:] = False
    valid[2, 1:] = False
    valid[3, :] = False
    return jnp.asarray(valid)


def left_padding(B, L):
    """Row 0 left-padded (its first queries see no key), row 1 holed, the rest full."""
    valid = np.ones((B, L), bool)
    valid[0, :L // 4] = False
    valid[1, L // 2: L // 2 + 3] = False
    return jnp.asarray(valid)


def segments(B, S):
    """Contiguous segments of uneven lengths, the tail padding (-1), as vision blocks pack."""
    seg = np.full((B, S), -1, np.int32)
    for b in range(B):
        cuts = np.cumsum([0] + [S // 4 + 8 * b, S // 3, S // 5])
        for i, (a, z) in enumerate(zip(cuts[:-1], cuts[1:])):
            seg[b, a:z] = i
    return jnp.asarray(seg)


def seen_rows(mask: A.AttentionMask, L: int) -> jax.Array:
    """(B, L) bool: queries that see at least one key (the rows compared)."""
    return mask.dense(L).any(-1)


def out_and_grads(fn, q, k, v, weight):
    """fn's output (float32) and the float32 gradients of sum(fn * weight) w.r.t. q, k, v."""
    out = fn(q, k, v)
    loss = lambda *a: (fn(*a).astype(jnp.float32) * weight).sum()
    grads = jax.grad(loss, argnums=(0, 1, 2))(q, k, v)
    return out.astype(jnp.float32), [g.astype(jnp.float32) for g in grads]


def errors(a, b, rows):
    """Largest |difference| of the outputs (on `rows`) and of each gradient."""
    (oa, ga), (ob, gb) = a, b
    keep = rows[:, :, None, None]
    out = float(jnp.abs(jnp.where(keep, oa - ob, 0.0)).max())
    return [out] + [float(jnp.abs(x - y).max()) for x, y in zip(ga, gb)]


def weights_on(rows, shape, seed=1):
    w = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return jnp.where(rows[:, :, None, None], jnp.asarray(w), 0.0)


MASKS = {
    "causal": lambda B, L: A.causal_mask(None),
    "right_padding": lambda B, L: A.causal_mask(right_padding(B, L)),
    "left_padding": lambda B, L: A.causal_mask(left_padding(B, L)),
    "segments": lambda B, L: A.segment_mask(segments(B, L)),
}


# ------------------------------------------------------------------- the translation (CPU)

@pytest.mark.parametrize("name", list(MASKS))
@pytest.mark.parametrize("heads", [(8, 2), (4, 4)], ids=["gqa_8q_2kv", "mha"])
def test_fused_sdpa_translation_equals_reference(name, heads):
    """Each mask as the cuDNN path says it (lengths, is_causal, dense), run through XLA in
    float32: the reference's outputs and gradients, <= 1e-5 (seen: about 1e-6)."""
    H, KVH = heads
    B, L = 4, 40
    q, k, v = qkv(B, L, H, KVH, 16)
    mask = MASKS[name](B, L)
    rows = seen_rows(mask, L)
    w = weights_on(rows, q.shape)
    with jax.default_matmul_precision("highest"):  # a GPU's default float32 matmul is TF32
        ref = out_and_grads(lambda *a: A._reference(*a, mask), q, k, v, w)
        got = out_and_grads(jax.jit(lambda *a: A.fused_sdpa(*a, mask, "xla")), q, k, v, w)
    errs = errors(ref, got, rows)
    assert max(errs) <= 1e-5, errs


def test_right_padding_is_detected():
    assert bool(A._is_right_padded(right_padding(4, 9)))
    assert not bool(A._is_right_padded(left_padding(4, 9)))


# ------------------------------------------------------------------- the kernel (GPU)

def bf16_bar(mask_name, B, L, H, KVH, D):
    """(cuDNN's errors, the bfloat16 reference's errors), both against the float32 reference
    on the same bfloat16 inputs."""
    q, k, v = qkv(B, L, H, KVH, D, dtype=jnp.bfloat16)
    mask = MASKS[mask_name](B, L)
    rows = seen_rows(mask, L)
    w = weights_on(rows, q.shape)
    up = lambda x: x.astype(jnp.float32)
    truth = out_and_grads(lambda *a: A._reference(*map(up, a), mask), q, k, v, w)
    ref16 = out_and_grads(jax.jit(lambda *a: A._reference(*a, mask)), q, k, v, w)
    cudnn = out_and_grads(jax.jit(lambda *a: A.dot_product_attention(*a, mask, "cudnn")),
                          q, k, v, w)
    return errors(truth, cudnn, rows), errors(truth, ref16, rows)


@needs_gpu
@pytest.mark.parametrize("name", list(MASKS))
def test_cudnn_kernel_within_bfloat16_rounding(name):
    """Qwen3-VL-8B's text attention shape (32 query heads over 8, head_dim 128) for the causal
    masks, its vision tower's (16 heads, head_dim 72) for segments, bfloat16: cuDNN's outputs
    and gradients are no further from float32 than the dense bfloat16 path, within 2x + 2e-3.
    Seen on an H200 (outputs, cuDNN vs bfloat16 reference): causal 0.0100 vs 0.0149, left
    padding 0.0092 vs 0.0172, segments 0.0037 vs 0.0138; gradients equal or smaller but dv
    with left padding (0.0625 vs 0.0313)."""
    H, KVH, D = (16, 16, 72) if name == "segments" else (32, 8, 128)
    got, bar = bf16_bar(name, 4, 512, H, KVH, D)
    print(f"\n{name}: cudnn {got} / bf16 reference {bar}")
    for g, b in zip(got, bar):
        assert np.isfinite(g) and g <= 2 * b + 2e-3, (got, bar)


@needs_gpu
def test_cudnn_refuses_float32_and_auto_runs_chunked():
    q, k, v = qkv(4, 64, 8, 2, 64)
    mask = A.causal_mask(right_padding(4, 64))
    with pytest.raises(ValueError, match="takes bfloat16 or float16"):
        A.dot_product_attention(q, k, v, mask, "cudnn")
    auto = A.dot_product_attention(q, k, v, mask, "auto")
    assert jnp.array_equal(auto, A.dot_product_attention(q, k, v, mask, "chunked"))


@needs_gpu
def test_model_auto_runs_cudnn_and_matches_reference():
    """The tiny model in bfloat16 with images, a video and right padding: attention_impl
    "auto" compiles cuDNN's fused attention into the program, and its logits and parameter
    gradients stay within the bfloat16 reference's own distance from the float32 model (2x + 2e-2
    on logits, relative 5e-2 on gradients). Seen on an H200: logits
    0.0063 off (the bfloat16 reference: 0.0072), gradients 3.2% (4.4%)."""
    base = from_hf_dict(tiny_hf_config().to_dict())
    inputs = make_inputs([[("text", 9), ("image", (4, 4)), ("text", 5),
                           ("video", (2, 4, 4)), ("text", 4)],
                          [("text", 7), ("image", (4, 8)), ("text", 3)]], seed=11)
    kw = {k: v for k, v in inputs.arrays().items() if v is not None}
    valid = jnp.asarray(inputs.attention_mask, bool)

    def build(impl, dtype, seed=0):
        return Qwen3VLForConditionalGeneration(base.replace(attention_impl=impl), dtype=dtype,
                                               rngs=nnx.Rngs(seed))

    f32 = build("reference", jnp.float32)
    models = {"auto": build("auto", jnp.bfloat16, 1), "reference": build("reference",
                                                                          jnp.bfloat16, 2)}
    for m in models.values():
        nnx.update(m, nnx.state(f32, nnx.Param))

    def loss_fn(m):
        logits = m(**kw).logits.astype(jnp.float32)
        return (jnp.where(valid[..., None], logits, 0.0) ** 2).mean(), logits

    step = nnx.jit(lambda m: nnx.value_and_grad(loss_fn, has_aux=True)(m))
    (_, truth), truth_g = step(f32)
    hlo = nnx.jit(loss_fn).lower(models["auto"]).compile().as_text()
    assert "cudnn" in hlo and "fmha" in hlo.lower(), "no cuDNN attention in the program"
    err, rel = {}, {}
    for name, m in models.items():
        (_, logits), grads = step(m)
        err[name] = float(jnp.abs(jnp.where(valid[..., None], logits - truth, 0.0)).max())
        rel[name] = max(jax.tree.leaves(jax.tree.map(
            lambda a, b: float(jnp.abs(a.astype(jnp.float32) - b).max()
                               / (jnp.abs(b).max() + 1e-30)),
            nnx.state(grads), nnx.state(truth_g))))
    print(f"\nlogits vs float32: {err}; worst relative gradient error: {rel}")
    assert err["auto"] <= 2 * err["reference"] + 2e-2, err
    assert rel["auto"] <= 2 * rel["reference"] + 5e-2, rel
