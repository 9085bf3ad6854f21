"""Scanned decoder layers (`scan_layers=True`) against the unrolled stack and transformers.

References: transformers' Qwen3VLForConditionalGeneration on the same tiny random folder
(logits, float32, max |diff| <= 1e-4 on real positions), the unrolled Flax stack (logits
<= 1e-5, gradients <= 1e-5 per parameter), transformers' greedy `generate` through the KV-cache
sampler, and the HF folder's own tensor bytes (export bit-exact). The tiny config has 3 decoder
layers and DeepStack after layers 0 and 1, so both the injected and the plain layers run; the
batch is right-padded, so the padding mask is exercised. Largest errors are printed (-s).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from hf_reference import hf_logits, make_inputs, segment
from seeker_jax.models.qwen3_vl import forward, from_pretrained, save_pretrained
from seeker_jax.models.qwen3_vl.stacking import unstack_flat
from seeker_jax.models.qwen3_vl.text import init_cache
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams
from tensor_files import assert_bit_exact, hf_tensors

TOL_HF, TOL_SELF = 1e-4, 1e-5
BATCH = [[("text", 3), ("image", (4, 4)), ("text", 9)],
         [("text", 4), ("video", (2, 4, 4)), ("text", 2), ("image", (4, 8))]]


@pytest.fixture(scope="module")
def folder(tiny_hf_untied):
    return tiny_hf_untied


def load(folder, **kw):
    return from_pretrained(folder[0], **kw)


def test_scanned_logits_match_unrolled_and_transformers(folder):
    inputs = make_inputs(BATCH, seed=3, padding="right")
    real = inputs.attention_mask.astype(bool)
    ref = hf_logits(folder[1], inputs)
    unrolled = np.asarray(forward(load(folder), **inputs.arrays()).logits)
    scanned = np.asarray(forward(load(folder, scan_layers=True), **inputs.arrays()).logits)
    err_hf = np.abs(scanned - ref)[real].max()
    err_self = np.abs(scanned - unrolled)[real].max()
    print(f"\nscanned vs transformers {err_hf:.2e}, vs unrolled {err_self:.2e}")
    assert scanned.shape == ref.shape
    assert err_hf <= TOL_HF and err_self <= TOL_SELF


def test_scan_is_one_layer_body(folder):
    """One scan over the 3 layers; the layer's 9 matmuls (q k v o, 2 attention, gate up down)
    appear once in its body instead of 3 times."""
    ids = np.arange(1, 9, dtype=np.int32)[None]

    def jaxpr(model):
        graphdef, state = nnx.split(model)
        return jax.make_jaxpr(lambda s: nnx.merge(graphdef, s)(ids).logits)(state)

    scanned, unrolled = jaxpr(load(folder, scan_layers=True)), jaxpr(load(folder))
    assert [e.params["length"] for e in scanned.jaxpr.eqns if e.primitive.name == "scan"] == [3]
    assert str(unrolled).count("dot_general") - str(scanned).count("dot_general") == 2 * 9


def test_scanned_vision_blocks_equal_the_loop(folder):
    """The vision tower as one scan over its 3 blocks: the same merged features and DeepStack
    taps (after blocks 0 and 1) as the loop, and one block body in the program."""
    seg = segment([("image", (4, 6)), ("video", (3, 4, 4))], seed=5)
    outs, jaxprs = [], []
    for scan in (False, True):
        visual = load(folder, scan_layers=scan).model.visual
        graphdef, state = nnx.split(visual)
        run = lambda s: nnx.merge(graphdef, s)(seg.pixel_values, seg.image_grid_thw)  # noqa: E731
        outs.append(run(state))
        jaxprs.append(jax.make_jaxpr(run)(state))
    (a, da), (b, db) = outs
    assert len(da) == len(db) == 2
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=TOL_SELF, rtol=0)
    for x, y in zip(da, db):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), atol=TOL_SELF, rtol=0)
    lengths = [e.params["length"] for e in jaxprs[1].jaxpr.eqns if e.primitive.name == "scan"]
    assert lengths == [3] and "scan" not in str(jaxprs[0])


def _grads(model, inputs, weights):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    arrays = inputs.arrays()
    real = jnp.asarray(inputs.attention_mask, jnp.float32)[..., None]

    def loss(p):
        logits = nnx.merge(graphdef, p, rest)(**arrays).logits
        return jnp.sum(logits * weights * real)

    grads = {p: v.get_value() for p, v in nnx.to_flat_state(jax.grad(loss)(params))}
    return unstack_flat(grads)  # a stacked model's gradients, per layer


# "none" compiles the largest program (~40 s); "full" checks the same equality in the default
# suite, "none" and "dots" in the slow one.
@pytest.mark.parametrize("remat", [pytest.param("none", marks=pytest.mark.slow), "full",
                                   pytest.param("dots", marks=pytest.mark.slow)])
def test_gradients_match_unrolled(folder, remat):
    """d(sum of weighted logits)/d(every parameter), vision tower and DeepStack included."""
    inputs = make_inputs(BATCH, seed=5, padding="right")
    weights = jax.random.normal(jax.random.key(0), (*inputs.input_ids.shape, 1000)) * 0.01
    want = _grads(load(folder), inputs, weights)
    got = _grads(load(folder, scan_layers=True, remat=remat), inputs, weights)
    assert sorted(want) == sorted(got)
    errs = {p: float(jnp.abs(got[p] - want[p]).max()) for p in want}
    scale = max(float(jnp.abs(v).max()) for v in want.values())
    worst = max(errs, key=errs.get)
    print(f"\nremat {remat}: max |grad diff| {errs[worst]:.2e} at {worst} (grad scale {scale:.2f})")
    assert errs[worst] <= TOL_SELF
    layer0 = ("model", "language_model", "layers", 0, "mlp", "down_proj", "kernel")
    assert float(jnp.abs(want[layer0]).max()) > 1e-3  # the check is not vacuous


def test_kv_cache_writes_match_unrolled(folder):
    """Prefill 7 tokens, then append 3, into a 12-slot cache: logits and every cache slot."""
    ids = np.random.default_rng(0).integers(1, 980, (2, 10)).astype(np.int32)
    outs = []
    for scan in (False, True):
        model = load(folder, scan_layers=scan)
        cache = init_cache(model.config.text, 2, 12)
        first = model(ids[:, :7], jnp.ones((2, 12), bool), cache=cache,
                      write_index=jnp.zeros(2, jnp.int32))
        second = model(ids[:, 7:], jnp.ones((2, 12), bool), cache=first.cache,
                       write_index=jnp.full(2, 7, jnp.int32))
        outs.append((first.logits, second.logits, second.cache))
    full = np.asarray(load(folder)(ids).logits)
    np.testing.assert_allclose(np.asarray(outs[1][1]), full[:, 7:], atol=TOL_HF, rtol=0)
    for a, b in zip(outs[0][:2], outs[1][:2]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=TOL_SELF, rtol=0)
    assert len(outs[1][2]) == 3
    for a, b in zip(outs[0][2], outs[1][2]):
        for x, y in zip(a, b):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=TOL_SELF, rtol=0)


def test_sampler_greedy_matches_transformers_generate(folder):
    """The jitted sampler (KV cache, chunked prefill cutting a vision span) on a scanned model."""
    hf = folder[1]
    model = load(folder, scan_layers=True)
    sampler = Sampler(model, batch_size=2, max_len=96, params=SamplingParams(0.0),
                      stop_token_ids=(999,), decode_steps=8, max_chunk=32, min_bucket=32)
    seg = segment([("text", 5), ("image", (4, 6)), ("text", 3), ("video", (3, 4, 4)),
                   ("text", 4)], seed=20)
    turn = sampler.generate([seg], max_new_tokens=8)[0]
    # The sampler runs the decoder unrolled (a scan would stack weights and cache per token);
    # the model it was given keeps its scan.
    assert not sampler.model.model.language_model.scan_layers
    assert model.model.language_model.scan_layers
    jaxpr = jax.make_jaxpr(lambda s: nnx.merge(sampler.graphdef, s)(seg.input_ids[None, :4]))(
        sampler.state)
    assert " scan[" not in str(jaxpr) and "= scan" not in str(jaxpr)
    with torch.no_grad():
        out = hf.generate(
            input_ids=torch.from_numpy(seg.input_ids[None].astype(np.int64)),
            pixel_values=torch.from_numpy(seg.pixel_values),
            image_grid_thw=torch.from_numpy(seg.image_grid_thw),
            pixel_values_videos=torch.from_numpy(seg.pixel_values_videos),
            video_grid_thw=torch.from_numpy(seg.video_grid_thw),
            mm_token_type_ids=torch.from_numpy(seg.mm_token_type_ids[None].astype(np.int64)),
            do_sample=False, max_new_tokens=8, eos_token_id=999, pad_token_id=0)
    np.testing.assert_array_equal(turn.ids, out[0, len(seg.input_ids):].numpy())
    # A learner's stacked state refreshes the sampler's unrolled copy: the same weights, so
    # the same greedy turn; a nudged state changes the copy.
    sampler.load_state(nnx.state(model))
    assert sampler.generate([seg], max_new_tokens=8)[0].ids.tolist() == turn.ids.tolist()
    state = nnx.state(model, nnx.Param)
    down = state["model"]["language_model"]["layers"]["mlp"]["down_proj"]["kernel"]
    down.set_value(down.get_value().at[2].add(1.0))
    sampler.load_state(nnx.state(model))
    got = sampler.model.model.language_model.layers[2].mlp.down_proj.kernel[...]
    np.testing.assert_array_equal(np.asarray(got), np.asarray(down.get_value()[2]))


def test_export_of_a_scanned_model_is_bit_exact(folder, tmp_path):
    model = load(folder, scan_layers=True)
    save_pretrained(model, str(tmp_path / "out"))
    assert_bit_exact(hf_tensors(folder[0]), hf_tensors(str(tmp_path / "out")))


def test_scanned_layers_are_stored_stacked(folder):
    """One (n_layers, ...) array per weight name, its first logical axis "layers", which no
    rule shards: the optimizer sees 11 decoder arrays instead of 33."""
    from seeker_jax.sharding import DEFAULT_RULES, logical_to_pspec

    cfg = load(folder).config
    flat = dict(nnx.to_flat_state(nnx.state(load(folder, scan_layers=True), nnx.Param)))
    layers = {p: v for p, v in flat.items() if p[:3] == ("model", "language_model", "layers")}
    blocks = {p: v for p, v in flat.items() if p[:3] == ("model", "visual", "blocks")}
    assert len(layers) == 11 and len(blocks) == 12
    for p, v in {**layers, **blocks}.items():
        assert not any(isinstance(k, int) for k in p), p
        n = cfg.text.num_hidden_layers if p in layers else cfg.vision.depth
        axes = v.get_metadata()["logical_axes"]
        assert v.shape[0] == n and axes[0] == "layers" and len(axes) == v.ndim
        assert logical_to_pspec(axes, DEFAULT_RULES)[:1] in ((), (None,))
    assert len(flat) == len(dict(nnx.to_flat_state(nnx.state(load(folder), nnx.Param)))) \
        - 2 * 11 - 2 * 12


def test_stack_and_unstack_are_inverse(folder):
    from seeker_jax.models.qwen3_vl.stacking import match_layout, stack_flat

    flat = {p: v.get_value() for p, v in nnx.to_flat_state(nnx.state(load(folder), nnx.Param))}
    stacked = {p: v.get_value() for p, v in
               nnx.to_flat_state(nnx.state(load(folder, scan_layers=True), nnx.Param))}
    for a, b in ((stack_flat(flat), stacked), (unstack_flat(stacked), flat)):
        assert sorted(a) == sorted(b)
        for p in a:
            np.testing.assert_array_equal(np.asarray(a[p]), np.asarray(b[p]))
    # Stack by stack: decoder unrolled, vision stacked (the sampler's layout).
    mixed = match_layout(stacked, [p for p in flat if p[1] == "language_model"]
                         + [p for p in stacked if p[1] == "visual"])
    assert ("model", "language_model", "layers", 2, "mlp", "up_proj", "kernel") in mixed
    assert ("model", "visual", "blocks", "attn", "qkv", "kernel") in mixed


def test_checkpoints_cross_layouts(folder, tmp_path):
    """A scanned model saves its layers stacked; that checkpoint loads into either layout
    (bit-equal weights), exports to the HF folder bit-exact (sharded output: a stacked array
    spans shards); a per-layer checkpoint loads into a scanned model."""
    from seeker_jax.checkpointing import checkpoint as C
    from seeker_jax.checkpointing.convert import convert, export

    scanned = load(folder, scan_layers=True)
    ckpt = str(tmp_path / "stacked")
    C.save_params(ckpt, scanned, scanned.config)
    keys = C.stored_metadata(str(tmp_path / "stacked" / "params"))
    assert "model.language_model.layers.mlp.up_proj.kernel" in keys and C.stored_stacked(keys)
    want = {p: np.asarray(v.get_value())
            for p, v in nnx.to_flat_state(nnx.state(load(folder), nnx.Param))}
    for scan in (False, True):
        got = C.load_model(ckpt, scan_layers=scan)
        assert got.model.language_model.scan_layers is scan
        flat = {p: v.get_value() for p, v in nnx.to_flat_state(nnx.state(got, nnx.Param))}
        flat = unstack_flat(flat) if scan else flat
        assert sorted(flat) == sorted(want)
        for p in want:
            np.testing.assert_array_equal(np.asarray(flat[p]), want[p])
    export(ckpt, str(tmp_path / "hf"), max_shard_size="100KB", progress=False)
    assert_bit_exact(hf_tensors(folder[0]), hf_tensors(str(tmp_path / "hf")))

    per_layer = str(tmp_path / "per_layer")
    convert(folder[0], per_layer, progress=False)
    got = C.load_model(per_layer, scan_layers=True)
    flat = unstack_flat({p: v.get_value()
                         for p, v in nnx.to_flat_state(nnx.state(got, nnx.Param))})
    for p in want:
        np.testing.assert_array_equal(np.asarray(flat[p]), want[p])


def test_presets_turn_scan_on():
    from seeker_jax.config import load_config

    for cfg in ("sft", "grpo"):
        assert load_config(f"configs/{cfg}.py:tiny_synth").model.scan_layers is False
        for size in ("qwen3_vl_4b", "qwen3_vl_8b"):
            assert load_config(f"configs/{cfg}.py:{size}").model.scan_layers is True
