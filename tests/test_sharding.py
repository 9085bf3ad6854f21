"""Logical-axis rules -> PartitionSpecs, and the sampler with parameters sharded over 8 fake
CPU devices (fsdp=4 x tensor=2) giving the same tokens as on one device."""
import numpy as np
from jax.sharding import PartitionSpec as P

from seeker_jax.models.chat import Segment
from seeker_jax.models.qwen3_vl import from_pretrained
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams
from seeker_jax.sharding import DEFAULT_RULES, logical_to_pspec, make_mesh, shard_model

RULES = (("embed", "fsdp"), ("mlp", ("tensor", "fsdp")), ("vocab", "tensor"), ("heads", None))


def test_logical_to_pspec_rules():
    assert logical_to_pspec(("embed", "mlp"), RULES) == P("fsdp", "tensor")  # fsdp used once
    assert logical_to_pspec(("mlp",), RULES) == P(("tensor", "fsdp"))
    assert logical_to_pspec(("vocab", "embed"), RULES) == P("tensor", "fsdp")
    assert logical_to_pspec(("heads", "unknown", None), RULES) == P()
    mesh = make_mesh({"fsdp": 4, "tensor": 2})
    # A dimension the mesh axes do not divide is replicated; missing mesh axes are dropped.
    assert logical_to_pspec(("embed", "mlp"), RULES, mesh, (6, 8)) == P(None, ("tensor", "fsdp"))
    assert logical_to_pspec(("mlp",), RULES, mesh, (6,)) == P("tensor")
    assert logical_to_pspec(("batch", "embed"), DEFAULT_RULES, mesh, (8, 64)) == P("fsdp")


def test_sharded_sampler_matches_single_device(tiny_hf):
    mesh = make_mesh({"fsdp": 4, "tensor": 2})
    sharded = shard_model(from_pretrained(tiny_hf.path), mesh)
    gate = sharded.model.language_model.layers[0].mlp.gate_proj.kernel[...]
    assert gate.sharding.spec == P("fsdp", "tensor") and len(gate.sharding.device_set) == 8
    embed = sharded.model.language_model.embed_tokens.embedding[...]
    assert embed.sharding.spec == P("tensor", "fsdp")
    rng = np.random.default_rng(0)
    prompts = [Segment(ids, np.zeros_like(ids), np.zeros_like(ids))
               for ids in (rng.integers(0, 980, n).astype(np.int32) for n in (5, 23, 9, 14))]
    outs = []
    for model, m in ((from_pretrained(tiny_hf.path), None), (sharded, mesh)):
        s = Sampler(model, batch_size=4, max_len=64, params=SamplingParams(0.0), mesh=m,
                    decode_steps=8, max_chunk=32, min_bucket=32)
        outs.append([t.ids for t in s.generate(prompts, max_new_tokens=12)])
        if m is not None:
            assert s.cache[0].key.sharding.spec == P("fsdp", "tensor")  # (B, KVH, S, D)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
