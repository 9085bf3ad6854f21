"""Mesh axis names reach attention from the sharding rules, in one place.

The splash kernel runs under `jax.shard_map`, whose specs name mesh axes. Those names are not
written in models/: the core reads them from the run's rules (`sharding.attention_axes`) and
sets them on the model config. These tests override `c.mesh.rules` and check that the
kernel's shard_map specs follow, and that "auto" resolves for the platform a step runs on.
"""
import jax
import numpy as np
import pytest
from jax.sharding import AxisType, PartitionSpec as P

from seeker_jax.aot import fit as aot
from seeker_jax.config import load_config
from seeker_jax.models.qwen3_vl import attention as A
from seeker_jax.sharding import DEFAULT_RULES, attention_axes, rules_from_config
from seeker_jax.training.trainer import build_model

# batch over fsdp only, heads replicated: different from DEFAULT_RULES on both counts
OVERRIDE = [["batch", "fsdp"], ["embed", "fsdp"], ["vocab", "tensor"], ["mlp", "tensor"],
            ["q_heads", None], ["kv_heads", None]]


def test_default_rules_give_the_default_axes():
    assert attention_axes(DEFAULT_RULES) == A.AttentionAxes(("data", "fsdp"), ("tensor",))


def test_overridden_rules_reach_the_model_config():
    c = load_config("configs/sft.py:tiny_synth", [f"--config.mesh.rules={OVERRIDE}"])
    rules = rules_from_config(c.mesh.rules)
    model, cfg = build_model(c.model, rules)
    assert cfg.attention_axes == A.AttentionAxes(("fsdp",), ())
    attn = model.model.language_model.layers[0].self_attn
    assert attn.attention_axes == cfg.attention_axes
    assert model.model.visual.blocks[0].attn.attention_axes == cfg.attention_axes


def _shard_map_specs(fn, *args):
    """in_specs of every shard_map in fn's jaxpr (recursing into closed sub-jaxprs)."""
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "shard_map":
                found.append(tuple(eqn.params["in_specs"]))
            for p in eqn.params.values():
                sub = getattr(p, "jaxpr", None)
                if sub is not None:
                    walk(getattr(sub, "jaxpr", sub))

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


@pytest.mark.skipif(not aot.tpu_compiler_available(),
                    reason="no TPU compiler: pip install 'jax[tpu]' (libtpu)")
@pytest.mark.parametrize("rules, batch, heads", [
    (DEFAULT_RULES, ("data", "fsdp"), ("tensor",)),
    (rules_from_config(OVERRIDE), ("fsdp",), None),
])
def test_splash_shard_map_follows_the_rules(rules, batch, heads):
    """The same splash call traced on a v5p:2x2x2 mesh (data 2, fsdp 2, tensor 2) with the
    axes of two rule tables: the shard_map specs are the rules' axes."""
    import jax.numpy as jnp

    devices = np.array(aot.topology_devices("v5p:2x2x2")).reshape(2, 2, 2)
    mesh = jax.sharding.Mesh(devices, ("data", "fsdp", "tensor"),
                             axis_types=(AxisType.Auto,) * 3)
    B, L, H, KVH, D = 4, 256, 8, 2, 128
    q = jax.ShapeDtypeStruct((B, L, H, D), jnp.bfloat16)
    k = jax.ShapeDtypeStruct((B, L, KVH, D), jnp.bfloat16)
    ids = jax.ShapeDtypeStruct((B, L), jnp.bool_)
    axes = attention_axes(rules)

    def fwd(q, k, v, ids):
        return A.dot_product_attention(q, k, v, A.causal_mask(ids), "splash", axes)

    with jax.set_mesh(mesh):
        specs = _shard_map_specs(fwd, q, k, k, ids)
    assert specs, "splash ran without shard_map"
    q_spec, k_spec, v_spec, seg_spec = specs[0][-4:]  # after the kernel's closed-over masks
    assert q_spec == k_spec == v_spec == P(batch, None, heads, None)
    assert seg_spec == P(batch, None)


def test_splash_under_a_mesh_without_axes_is_a_clear_error():
    devices = np.array(jax.devices()[:2])
    mesh = jax.sharding.Mesh(devices, ("fsdp",), axis_types=(AxisType.Auto,))
    q = np.zeros((2, 128, 2, 128), np.float32)
    with jax.set_mesh(mesh), pytest.raises(ValueError, match="attention_axes"):
        jax.make_jaxpr(lambda q: A.dot_product_attention(q, q, q, A.causal_mask(None),
                                                         "splash"))(q)


@pytest.mark.parametrize("platform, impl", [("tpu", "splash"), ("gpu", "cudnn"),
                                             ("cpu", "reference")])
def test_auto_resolves_for_the_target_platform(platform, impl):
    assert A.resolve_impl("auto", platform) == impl
    assert A.resolve_impl("chunked", platform) == "chunked"  # a named choice is kept


@pytest.mark.skipif(not aot.tpu_compiler_available(),
                    reason="no TPU compiler: pip install 'jax[tpu]' (libtpu)")
def test_aot_resolves_auto_for_the_tpu_it_compiles_for():
    """On this CPU host, the AOT state for a TPU topology uses splash (the preset's "auto"),
    with the rules' axes: what the pod will run, not what the host would."""
    import optax

    c = load_config("configs/sft.py:tiny_synth")
    assert c.model.attention_impl == "auto"
    _, _, mesh = aot.topology_mesh(c, "v5p:2x2x1")
    cfg = aot.abstract_train_state(c, mesh, optax.sgd(1e-3))[0]
    assert cfg.attention_impl == "splash"
    assert cfg.attention_axes == attention_axes(rules_from_config(c.mesh.rules))


def test_runtime_choices_are_not_stored_with_a_checkpoint(tmp_path):
    """A model built for a run (attention impl and axes set) writes the config a checkpoint
    holds; reading it back gives the stored defaults, which the next run sets again."""
    from seeker_jax.checkpointing.checkpoint import read_model_config, write_model_config

    c = load_config("configs/sft.py:tiny_synth", ["--config.model.attention_impl=chunked"])
    _, cfg = build_model(c.model, rules_from_config(c.mesh.rules))
    assert cfg.attention_impl == "chunked" and cfg.attention_axes is not None
    write_model_config(str(tmp_path), cfg)
    back, _ = read_model_config(str(tmp_path))
    assert back == cfg.stored()
    assert back.attention_impl == "auto" and back.attention_axes is None
