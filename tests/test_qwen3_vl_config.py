"""HF config.json reading (current and legacy layouts), logical axes, dtype handling."""
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hf_reference import hf_logits, make_inputs, tiny_hf_config
from seeker_jax.models.qwen3_vl import (ConfigError, forward, from_hf_dict, from_pretrained,
                                        to_hf_dict)
from seeker_jax.models.qwen3_vl.hf_io import abstract_model


def legacy_dict() -> dict:
    """The layout of the released Qwen3-VL config.json files (rope_scaling + rope_theta)."""
    d = tiny_hf_config(tied=False).to_dict()
    t = d["text_config"]
    rp = t.pop("rope_parameters")
    t["rope_theta"] = 5_000_000.0
    t["rope_scaling"] = {"rope_type": "default", "mrope_section": rp["mrope_section"],
                         "mrope_interleaved": True}
    d.pop("tie_word_embeddings")
    t["tie_word_embeddings"] = True
    d["vision_config"].pop("rope_parameters", None)
    return d


def test_legacy_rope_scaling_and_tie_inside_text_config():
    cfg = from_hf_dict(legacy_dict())
    assert cfg.text.rope_theta == 5_000_000.0
    assert cfg.text.mrope_section == (2, 3, 3)
    assert cfg.tie_word_embeddings is True
    assert cfg.vision.rope_theta == 10000.0


def test_current_layout_round_trips_through_to_hf_dict():
    cfg = from_hf_dict(tiny_hf_config(tied=False).to_dict())
    assert from_hf_dict(to_hf_dict(cfg)) == cfg
    assert cfg.vision.deepstack_visual_indexes == (0, 1) and cfg.text.num_key_value_heads == 2


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(model_type="qwen2_5_vl"), "model_type='qwen2_5_vl'"),
    (lambda d: d["text_config"]["rope_parameters"].update(mrope_section=[2, 2, 2]),
     "must sum to head_dim/2"),
    (lambda d: d.pop("vision_config"), "lacks text_config or vision_config"),
])
def test_bad_configs_are_refused_with_the_reason(change, message):
    d = tiny_hf_config().to_dict()
    change(d)
    with pytest.raises(ConfigError, match=message):
        from_hf_dict(d)


def test_every_parameter_has_one_logical_axis_name_per_dimension():
    model = abstract_model(from_hf_dict(tiny_hf_config(tied=False).to_dict()))
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        axes = var.get_metadata().get("logical_axes")
        assert axes is not None and len(axes) == len(var.shape), path
    flat = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    assert flat[("lm_head", "kernel")].get_metadata()["logical_axes"] == ("embed", "vocab")
    layer = ("model", "language_model", "layers", 0, "mlp", "up_proj", "kernel")
    assert flat[layer].get_metadata()["logical_axes"] == ("embed", "mlp")


def test_float32_params_with_bfloat16_compute(tiny_hf):
    hf = tiny_hf.torch_model
    model = from_pretrained(tiny_hf.path, dtype=jnp.float32, compute_dtype=jnp.bfloat16)
    flat = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    assert all(v.dtype == jnp.float32 for v in flat.values())
    inputs = make_inputs([[("text", 6), ("image", (4, 4)), ("text", 6)]], seed=1)
    out = forward(model, **inputs.arrays()).logits
    assert out.dtype == jnp.bfloat16
    ref = hf_logits(hf, inputs)
    rel = np.linalg.norm(np.asarray(out, np.float32) - ref) / np.linalg.norm(ref)
    assert 0 < rel < 0.05  # bf16 rounding, not a different model
