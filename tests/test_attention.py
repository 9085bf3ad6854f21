"""models/qwen3_vl/attention.py: the fused paths against the dense reference.

The reference (today's dense einsum + float32 softmax) is itself checked against transformers
by the parity tests; here the chunked path (pure JAX, custom VJP) and splash (Pallas, in
interpret mode on this CPU) must equal it in float32, outputs and gradients w.r.t. q, k, v,
to <= 1e-5. Largest errors seen are noted beside each bound. Splash also must lower and
compile for a TPU topology (AOT, libtpu's compiler on this CPU).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hf_reference import make_inputs, tiny_hf_config
from seeker_jax.aot import fit as aot
from seeker_jax.models.qwen3_vl import (Qwen3VLForConditionalGeneration, from_hf_dict, to_hf_dict)
from seeker_jax.models.qwen3_vl import attention as A
from seeker_jax.models.qwen3_vl.flash import chunked_attention
from seeker_jax.models.qwen3_vl.modeling import visibility_mask

TOL = 1e-5


def qkv(B, L, H, KVH, D, seed=0, S=None):
    r = np.random.default_rng(seed)
    S = L if S is None else S
    return tuple(jnp.asarray(r.standard_normal(s), jnp.float32)
                 for s in ((B, L, H, D), (B, S, KVH, D), (B, S, KVH, D)))


def out_and_grads(fn, q, k, v, weight):
    """fn's output and the gradients of sum(fn * weight) w.r.t. q, k, v."""
    out = fn(q, k, v)
    grads = jax.grad(lambda *a: (fn(*a) * weight).sum(), argnums=(0, 1, 2))(q, k, v)
    return out, grads


def max_errors(a, b):
    """Largest |difference| of the outputs and of each gradient."""
    (oa, ga), (ob, gb) = a, b
    return [float(jnp.abs(oa - ob).max())] + [float(jnp.abs(x - y).max()) for x, y in zip(ga, gb)]


def padding_cases():
    """(B, L) key validity: row 0 right-padded, row 1 fully padded, row 2 full, row 3 left-
    padded (its first queries see no key at all)."""
    valid = np.ones((4, 37), bool)
    valid[0, 29:] = False
    valid[1, :] = False
    valid[3, :5] = False
    return jnp.asarray(valid)


# ------------------------------------------------------------------------------ chunked

@pytest.mark.parametrize("heads", [(8, 2), (4, 4)], ids=["gqa_8q_2kv", "mha"])
def test_chunked_causal_padding_equals_reference(heads):
    """Causal + padding, GQA without repeating k/v, several query and key chunks with chunk
    padding (37 = 4*8+5 queries, 7*5+2 keys). Every row counts, padded ones included: the
    chunked path gives a query that sees nothing the reference's uniform weights."""
    H, KVH = heads
    q, k, v = qkv(4, 37, H, KVH, 16)
    valid = padding_cases()
    mask = A.causal_mask(valid)
    w = jnp.asarray(np.random.default_rng(1).standard_normal(q.shape), jnp.float32)
    ref = out_and_grads(lambda *a: A.reference_attention(*a, mask.dense(37)), q, k, v, w)
    ch = out_and_grads(lambda *a: chunked_attention(*a, causal=True, kv_valid=valid,
                                                    q_chunk=8, kv_chunk=5), q, k, v, w)
    errors = max_errors(ref, ch)
    assert max(errors) <= TOL, errors  # seen: about 2e-6


def test_chunked_fully_padded_row_is_uniform():
    """Hand-worked: a query that sees no key averages v over all S keys (the reference's
    uniform weights), and gets no gradient into q or k."""
    q, k, v = qkv(1, 9, 2, 1, 4)
    dead = jnp.zeros((1, 9), bool)
    out = chunked_attention(q, k, v, causal=True, kv_valid=dead, q_chunk=4, kv_chunk=4)
    np.testing.assert_allclose(out, jnp.broadcast_to(v.mean(1, keepdims=True), out.shape),
                               atol=1e-6)
    dq, dk = jax.grad(lambda q, k: chunked_attention(q, k, v, causal=True, kv_valid=dead,
                                                     q_chunk=4, kv_chunk=4).sum(), (0, 1))(q, k)
    assert float(jnp.abs(dq).max()) == 0.0 and float(jnp.abs(dk).max()) == 0.0


def vision_segments():
    """Two blocks of 40 slots: frame groups of 12, 12 and 10 then 6 padding (-1); a second
    block with one group of 25 and 15 padding."""
    seg = np.full((2, 40), -1, np.int32)
    seg[0, :12], seg[0, 12:24], seg[0, 24:34] = 0, 1, 2
    seg[1, :25] = 3
    return jnp.asarray(seg)


def test_chunked_vision_segments_equal_reference():
    q, k, v = qkv(2, 40, 4, 4, 8, seed=2)
    seg = vision_segments()
    w = jnp.asarray(np.random.default_rng(3).standard_normal(q.shape), jnp.float32)
    ref = out_and_grads(lambda *a: A.reference_segment_attention(*a, seg), q, k, v, w)
    ch = out_and_grads(lambda *a: chunked_attention(*a, causal=False, q_segment_ids=seg,
                                                    kv_segment_ids=seg, q_chunk=16,
                                                    kv_chunk=7), q, k, v, w)
    errors = max_errors(ref, ch)
    assert max(errors) <= TOL, errors  # seen: about 1e-6


def test_chunked_long_sequence_default_chunks():
    """The default 512-chunks over a sequence that needs three of them (and padding)."""
    q, k, v = qkv(1, 1100, 4, 2, 8, seed=4)
    valid = jnp.arange(1100)[None] < 1000
    mask = A.causal_mask(valid)
    w = jnp.asarray(np.random.default_rng(5).standard_normal(q.shape), jnp.float32)
    ref = out_and_grads(lambda *a: A.reference_attention(*a, mask.dense(1100)), q, k, v, w)
    ch = out_and_grads(lambda *a: A.dot_product_attention(*a, mask, "chunked"), q, k, v, w)
    errors = max_errors(ref, ch)
    assert max(errors) <= TOL, errors  # seen: about 1e-6


# ------------------------------------------------------------------------------ splash

def test_splash_interpret_causal_padding_equals_reference():
    """Splash in Pallas interpret mode on CPU (block 128, L=200 padded to 256, D=16 padded to
    128 lanes, GQA 4/2). A padded query sees the padded keys there (segment 0), not the
    reference's uniform weights, so padded query rows are left out of the comparison and
    the loss; real rows and all gradients must match."""
    q, k, v = qkv(2, 200, 4, 2, 16, seed=6)
    valid = np.ones((2, 200), bool)
    valid[0, 150:] = False
    valid = jnp.asarray(valid)
    mask = A.causal_mask(valid)
    w = (jnp.asarray(np.random.default_rng(7).standard_normal(q.shape), jnp.float32)
         * valid[:, :, None, None])
    ref = out_and_grads(lambda *a: A.reference_attention(*a, mask.dense(200)), q, k, v, w)
    sp = out_and_grads(lambda *a: A.splash(*a, mask, block=128, interpret=True), q, k, v, w)
    keep = valid[:, :, None, None]
    errors = max_errors(((ref[0] * keep), ref[1]), ((sp[0] * keep), sp[1]))
    assert max(errors) <= TOL, errors  # seen: about 1.3e-6


def test_splash_interpret_vision_segments_equal_reference():
    """Segment ids with padding -1: every row is non-empty, so all rows must match."""
    q, k, v = qkv(2, 40, 2, 2, 8, seed=8)
    seg = vision_segments()
    w = jnp.asarray(np.random.default_rng(9).standard_normal(q.shape), jnp.float32)
    ref = out_and_grads(lambda *a: A.reference_segment_attention(*a, seg), q, k, v, w)
    sp = out_and_grads(lambda *a: A.splash(*a, A.segment_mask(seg), interpret=True), q, k, v, w)
    errors = max_errors(ref, sp)
    assert max(errors) <= TOL, errors  # seen: about 1e-6


@pytest.mark.skipif(not aot.tpu_compiler_available(),
                    reason="no TPU compiler: pip install 'jax[tpu]' (libtpu)")
@pytest.mark.parametrize("kind", ["causal", "segments"])
def test_splash_compiles_for_tpu_topology(kind):
    """Forward and gradient lower to the Mosaic kernel and compile for v5p:2x2x1 (4 chips,
    batch over data x fsdp = 2 x 2) inside shard_map; text-like causal GQA 8/2 x 128 with
    L=1000 (padded to the block), and vision-like segments with head_dim 72 (padded to 128)."""
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

    devices = np.array(aot.topology_devices("v5p:2x2x1")).reshape(2, 2, 1)
    mesh = jax.sharding.Mesh(devices, ("data", "fsdp", "tensor"),
                             axis_types=(AxisType.Auto,) * 3)
    B, L, H, KVH, D = (4, 1000, 8, 2, 128) if kind == "causal" else (8, 512, 16, 16, 72)
    xs = NamedSharding(mesh, P(("data", "fsdp"), None, "tensor", None))
    ss = NamedSharding(mesh, P(("data", "fsdp"), None))
    q = jax.ShapeDtypeStruct((B, L, H, D), jnp.bfloat16, sharding=xs)
    k = jax.ShapeDtypeStruct((B, L, KVH, D), jnp.bfloat16, sharding=xs)
    ids = jax.ShapeDtypeStruct((B, L), jnp.bool_ if kind == "causal" else jnp.int32,
                               sharding=ss)
    make = A.causal_mask if kind == "causal" else A.segment_mask

    def fwd(q, k, v, ids):
        return A.dot_product_attention(q, k, v, make(ids), "splash",
                                       A.AttentionAxes(("data", "fsdp"), ("tensor",)))

    grad = jax.grad(lambda *a: fwd(*a).astype(jnp.float32).sum(), argnums=(0, 1, 2))
    for fn in (fwd, grad):
        with jax.set_mesh(mesh):
            compiled = jax.jit(fn).lower(q, k, k, ids).compile()
        assert "tpu_custom_call" in compiled.as_text()  # the Pallas kernel, not a fallback
        assert compiled.memory_analysis().temp_size_in_bytes > 0


# ------------------------------------------------------------------------------ dispatch

def test_unknown_impl_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown attention_impl 'flash'.*'chunked'"):
        A.check_impl("flash")
    with pytest.raises(ValueError, match="unknown attention_impl"):
        from_hf_dict(tiny_hf_config().to_dict()).replace(attention_impl="flash")


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="checks the CPU refusal")
def test_cudnn_on_cpu_is_a_clear_error():
    q, k, v = qkv(1, 8, 2, 1, 4)
    with pytest.raises(ValueError, match="'cudnn' needs a GPU"):
        A.dot_product_attention(q, k, v, A.causal_mask(None), "cudnn")


def test_auto_is_the_reference_on_cpu_and_dense_masks_take_the_reference():
    assert A.resolve_impl("auto") == {"tpu": "splash", "gpu": "cudnn"}.get(
        jax.default_backend(), "reference")
    q, k, v = qkv(2, 6, 4, 2, 8, S=11)  # a cache call: 6 new queries against 11 slots
    dense = jnp.asarray(np.random.default_rng(0).random((2, 6, 11)) < 0.7)
    want = A.reference_attention(q, k, v, dense)
    for impl in ("chunked", "splash", "reference"):
        assert jnp.array_equal(A.dot_product_attention(q, k, v, dense, impl), want)


def test_causal_mask_dense_equals_visibility_mask():
    """The reference path sees exactly the mask the text model built before (bit-exact
    parity unchanged)."""
    valid = padding_cases()
    want = visibility_mask(valid.astype(jnp.int32), 4, 37, None, None)
    assert jnp.array_equal(A.causal_mask(valid.astype(jnp.int32)).dense(37), want)
    assert jnp.array_equal(A.causal_mask(None).dense(37),
                           visibility_mask(None, 4, 37, None, None)[0][None])


def test_config_field_is_not_written_to_hf():
    cfg = from_hf_dict(tiny_hf_config().to_dict())
    assert cfg.attention_impl == "auto"  # a config.json without the field loads
    d = to_hf_dict(cfg.replace(attention_impl="chunked"))
    assert "attention_impl" not in str(d)


# ------------------------------------------------------------------------------ whole model

# Slow (~20 s): the layer-level chunked-vs-reference tests above stay in the default suite.
@pytest.mark.slow
def test_model_chunked_equals_reference_logits_and_grads():
    """A tiny model with images and a video, right padding: attention_impl="chunked" (text
    and vision towers) gives the reference's logits, padded rows included, and the same
    parameter gradients.

    At the HF init (std 0.02) as the parity tests use. A sharper model (weights x4) is
    ill-conditioned in float32: there the reference against itself with the embeddings
    scaled by (1 + 2^-23) already moves logits by 6.6e-5, and chunked differs by 1.7e-4, so
    1e-5 would measure rounding amplification, not the attention. The unit tests above use
    unit-variance q/k, where attention is far from uniform.
    """
    base = from_hf_dict(tiny_hf_config().to_dict())
    inputs = make_inputs([[("text", 9), ("image", (4, 4)), ("text", 5),
                           ("video", (2, 4, 4)), ("text", 4)],
                          [("text", 7), ("image", (4, 8)), ("text", 3)]], seed=11)
    ref_model = Qwen3VLForConditionalGeneration(base.replace(attention_impl="reference"),
                                                rngs=nnx.Rngs(0))
    ch_model = Qwen3VLForConditionalGeneration(base.replace(attention_impl="chunked"),
                                               rngs=nnx.Rngs(1))
    nnx.update(ch_model, nnx.state(ref_model, nnx.Param))
    kw = {k: v for k, v in inputs.arrays().items() if v is not None}
    valid = jnp.asarray(inputs.attention_mask, bool)

    @nnx.jit
    def loss_and_logits(model):
        def loss(m):
            logits = m(**kw).logits
            return (jnp.where(valid[..., None], logits, 0.0) ** 2).mean(), logits
        (_, logits), grads = nnx.value_and_grad(loss, has_aux=True)(model)
        return logits, grads

    ref_logits, ref_grads = loss_and_logits(ref_model)
    ch_logits, ch_grads = loss_and_logits(ch_model)
    logit_err = float(jnp.abs(ref_logits - ch_logits).max())
    assert logit_err <= TOL, logit_err  # seen: 2.4e-7 (logits up to 1.3)
    rel = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max() / (jnp.abs(a).max() + 1e-30)),
                       nnx.state(ref_grads), nnx.state(ch_grads))
    worst = max(jax.tree.leaves(rel))
    assert worst <= TOL, worst  # relative to each gradient's largest entry


@pytest.mark.skipif(not aot.tpu_compiler_available(),
                    reason="no TPU compiler: pip install 'jax[tpu]' (libtpu)")
def test_sft_step_with_splash_compiles_for_tpu():
    """The whole tiny SFT step (vision tower and decoder) with model.attention_impl="splash"
    compiles for v5e:2x2 (4 chips, fsdp=4), the kernel present in the program (about 21 s
    here, on a loaded machine)."""
    from seeker_jax.config import load_config

    c = load_config("configs/sft.py:tiny_synth")
    c.mesh.data, c.mesh.fsdp = 1, -1
    c.model.freeze_vision = True
    c.model.attention_impl = "splash"
    figures = aot.compile_train_step(c, "v5e:2x2", frames=2, text_tokens=128)
    assert figures["fits"] and figures["attention_impl"] == "splash"
    assert figures["pallas_kernels"] > 0
