"""Will the sampler fit beside the learner? Compile its decode step for a TPU topology on this
CPU and read the compiler's per-chip memory.

`seeker-jax aot --decode --config configs/grpo.py:paper_8b --topology v5p:2x2x1 [--rows 8]`

What is compiled is the sampler's own program, `seeker_jax.generation.decoding.decode` (up to
`decode_steps` tokens in one while_loop), with:

- the sampler's copy of the weights in the compute dtype (bf16 in the real presets), placed
  by the config's logical-axis rules as `Sampler(mesh=...)` places them;
- the decoder unrolled, as the sampler runs it (seeker_jax.generation.sampler.decoding_graph):
  a scanned decoder would carry, and copy, the whole cache through each step;
- a KV cache of `rows` x (max_len + max_chunk) slots per layer (the sampler's layout:
  c.rollout.max_len, c.rollout.max_chunk), rows split over the batch axes like
  `Sampler.reset` splits them.

"Fits beside the training state" adds the learner's persistent state on the same chips (fp32
params, AdamW moments and accumulated gradients, per seeker_jax.aot.fit.abstract_train_state):
during a rollout the learner's temporaries are free, its state is not.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from seeker_jax.aot.fit import (GIB, AotError, _with_sharding, abstract_train_state, hbm_gib,
                                per_chip_bytes, target_model_config, topology_mesh)
from seeker_jax.aot.cost import is_out_of_memory, place_variables
from seeker_jax.generation.decoding import decode
from seeker_jax.generation.sampling import SamplingParams

EOS_IDS = (151645, 151643)  # <|im_end|>, <|endoftext|>: the rollout's stop tokens


def _rollout(c: ml_collections.ConfigDict, name: str, default):
    return c.rollout.get(name, default) if "rollout" in c else default


def compile_decode_step(c: ml_collections.ConfigDict, topology: str, rows: int = 8,
                        max_len: int | None = None, steps: int | None = None) -> dict[str, Any]:
    """Compiles the sampler's decode step of config `c` for `topology`; returns its figures.

    rows: sampler rows (the KV cache's batch); max_len: tokens per row (default
    c.rollout.max_len, 20,480 in the paper's GRPO presets: a 16,384-token prompt budget + 4,096
    response tokens); steps: tokens per call (default c.rollout.decode_steps).
    """
    from seeker_jax.models.qwen3_vl.hf_io import abstract_model
    from seeker_jax.models.qwen3_vl.text import init_cache
    from seeker_jax.training.optim import make_optimizer
    from seeker_jax.generation.rows import bucket, decoding_graph
    from seeker_jax.sharding import array_sharding, rules_from_config

    if rows < 1:
        raise AotError(f"rows must be at least 1, got {rows}")
    max_len = int(max_len or _rollout(c, "max_len", 20_480))
    steps = int(steps or _rollout(c, "decode_steps", 16))
    chunk = bucket(_rollout(c, "max_chunk", 512), 16)
    devices, shape, mesh = topology_mesh(c, topology)
    rules = rules_from_config(c.mesh.rules)
    replicated = NamedSharding(mesh, PartitionSpec())

    # As the learner's: "auto" attention resolved for the target. A decode step reads its KV
    # cache with cache_attention whatever the choice; the sampler's prefill runs the choice.
    cfg = target_model_config(c, mesh, rules)
    dtype = jnp.dtype(c.model.compute_dtype)
    model = abstract_model(cfg, dtype, dtype, "none", bool(c.model.get("scan_layers", False)))
    graphdef, state = nnx.split(decoding_graph(model))
    state = place_variables(state, mesh, rules)
    slots = max_len + chunk
    cache_shape = (rows, cfg.text.num_key_value_heads, slots, cfg.text.head_dim)
    cache_sharding = array_sharding(mesh, ("batch", "kv_heads", None, "head_dim"), cache_shape,
                                    rules)
    cache = jax.tree.map(lambda x: _with_sharding(x, cache_sharding),
                         jax.eval_shape(lambda: init_cache(cfg.text, rows, slots, dtype)))
    vec = lambda dt=jnp.int32: jax.ShapeDtypeStruct((rows,), dt, sharding=replicated)  # noqa: E731
    forced = jax.ShapeDtypeStruct((rows, 16), jnp.int32, sharding=replicated)
    key = jax.eval_shape(lambda: jax.random.key(0))
    key = jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=replicated)
    args = (state, cache, vec(), vec(), vec(), vec(), vec(jnp.bool_), vec(), forced, vec(), key,
            vec())
    lowered = decode.lower(*args, graphdef=graphdef, params=SamplingParams(1.0), steps=steps,
                           stop_ids=EOS_IDS, max_len=max_len, top_n=0)

    tx = make_optimizer(c.optimizer)
    learner = abstract_train_state(c, mesh, tx, rules)[2:]  # trainable, frozen, rest, opt
    figures: dict[str, Any] = {
        "step": "decode", "topology": topology, "chips": len(devices),
        "hbm_gib": hbm_gib(topology), "model": c.model.size, "mesh": shape, "rows": rows,
        "max_len": max_len, "cache_slots": slots, "decode_steps": steps,
        "attention_impl": cfg.attention_impl,
        "dtype": str(dtype), "weights_bytes_per_chip": per_chip_bytes(state),
        "cache_bytes_per_chip": per_chip_bytes(cache),
        "cache_bytes_total": sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(cache)),
        "learner_state_bytes_per_chip": per_chip_bytes(learner),
    }
    try:
        compiled = lowered.compile()
    except Exception as e:  # XlaRuntimeError: RESOURCE_EXHAUSTED
        if not is_out_of_memory(e):
            raise
        figures.update(fits=False, fits_beside_learner=False,
                       error=str(e).strip().splitlines()[0][:500])
        return figures
    mem = compiled.memory_analysis()
    total = (mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
             + mem.temp_size_in_bytes + mem.generated_code_size_in_bytes)
    hbm = hbm_gib(topology) * GIB
    figures.update(
        argument_bytes=mem.argument_size_in_bytes, output_bytes=mem.output_size_in_bytes,
        alias_bytes=mem.alias_size_in_bytes, temp_bytes=mem.temp_size_in_bytes,
        code_bytes=mem.generated_code_size_in_bytes, total_bytes=total, fits=total <= hbm,
        beside_learner_bytes=total + figures["learner_state_bytes_per_chip"])
    figures["fits_beside_learner"] = figures["beside_learner_bytes"] <= hbm
    return figures


def format_decode_report(f: dict[str, Any]) -> str:
    """Human-readable figures of compile_decode_step."""
    mesh = " x ".join(f"{k}={v}" for k, v in f["mesh"].items())
    g = lambda k: f[k] / GIB  # noqa: E731
    head = (f"{f['model']} sampler decode step on {f['topology']} ({f['chips']} chips, "
            f"{f['hbm_gib']:.0f} GiB HBM each), mesh {mesh}\n"
            f"  KV cache: {f['rows']} rows x {f['cache_slots']} slots ({f['max_len']} tokens + "
            f"the prefill chunk), {f['dtype']}: {g('cache_bytes_total'):.2f} GiB in all, "
            f"{g('cache_bytes_per_chip'):.2f} GiB/chip; weights {g('weights_bytes_per_chip'):.2f}"
            f" GiB/chip; {f['decode_steps']} tokens per call\n"
            f"  attention: the KV cache read by cache_attention; prefill on this target: "
            f"{f['attention_impl']}\n")
    if "error" in f:
        return head + f"  DOES NOT FIT\n  compiler: {f['error']}"
    return head + (
        f"  per chip: arguments {g('argument_bytes'):.2f} GiB, temporaries {g('temp_bytes'):.2f},"
        f" code {g('code_bytes'):.3f}; total {g('total_bytes'):.2f} GiB of {f['hbm_gib']:.0f}: "
        f"{'FITS' if f['fits'] else 'DOES NOT FIT'}\n"
        f"  beside the learner's state ({g('learner_state_bytes_per_chip'):.2f} GiB/chip: params,"
        f" optimizer moments, accumulated gradients): {g('beside_learner_bytes'):.2f} GiB: "
        f"{'FITS' if f['fits_beside_learner'] else 'DOES NOT FIT'}"
        + ("" if f["fits_beside_learner"] else
           " (grow the fsdp axis, or give the sampler its own chips)"))


__all__ = ["compile_decode_step", "format_decode_report"]
