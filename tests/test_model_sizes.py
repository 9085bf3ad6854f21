"""Model-size configs: parameter counts equal transformers' for the same config.json.

transformers builds each size on the meta device (no memory); ours is an abstract
nnx.eval_shape model. Both count a tied embedding once.
"""
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from seeker_jax.config import load_config
from seeker_jax.models.qwen3_vl import from_hf_dict
from seeker_jax.models.qwen3_vl.hf_io import abstract_model

PUBLISHED = {"4b": 4.44e9, "8b": 8.77e9}  # Qwen3-VL-4B / 8B model cards


def flax_count(hf_dict) -> int:
    model = abstract_model(from_hf_dict(hf_dict))
    return sum(int(np.prod(v.shape)) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))


def torch_count(hf_dict) -> int:
    cfg = transformers.Qwen3VLConfig(**{k: v for k, v in hf_dict.items() if k != "model_type"})
    with torch.device("meta"):
        model = transformers.Qwen3VLForConditionalGeneration(cfg)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("size", ["tiny", "4b", "8b", pytest.param("small", marks=pytest.mark.slow),
                                  pytest.param("2b", marks=pytest.mark.slow),
                                  pytest.param("32b", marks=pytest.mark.slow)])
def test_parameter_count_matches_transformers(size):
    hf_dict = load_config(f"configs/qwen3_vl.py:{size}").to_dict()
    ours, theirs = flax_count(hf_dict), torch_count(hf_dict)
    print(f"\n{size}: {ours / 1e9:.3f}B parameters (transformers: {theirs / 1e9:.3f}B)")
    assert ours == theirs
    if size in PUBLISHED:
        assert abs(ours - PUBLISHED[size]) / PUBLISHED[size] < 0.005
