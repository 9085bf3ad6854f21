"""What XLA's cost_analysis misses in a step with scanned layers, measured per layer.

cost_analysis counts a while-loop body once, so a step whose decoder (or vision tower) is a
`lax.scan` reports it as if it had one layer. The probes here compile one decoder layer (fwd +
bwd) or one vision block (fwd, or fwd + bwd when the tower trains) alone, on the step's mesh
with the same parameter shardings, dtypes and remat policy; seeker_jax.aot adds the other
n - 1 copies of their counts.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec


def compiled_cost(compiled) -> tuple[float, float]:
    """(FLOPs, bytes accessed) per chip from XLA's cost_analysis (a loop body counted once)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    if not cost:
        return 0.0, 0.0
    return float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))


def is_out_of_memory(error: Exception) -> bool:
    """Whether a compile failed because the program does not fit the chip's HBM."""
    return "Ran out of memory" in str(error) or "RESOURCE_EXHAUSTED" in str(error)


def place_variables(state, mesh, rules):
    """An abstract nnx.State's variables as ShapeDtypeStructs placed by the logical-axis rules
    (as sharding.model_shardings places real ones; variables without axes replicated)."""
    from seeker_jax.sharding import array_sharding

    replicated = NamedSharding(mesh, PartitionSpec())

    def place(var: nnx.Variable) -> jax.ShapeDtypeStruct:
        x, axes = var.get_value(), getattr(var, "logical_axes", None)
        sharding = replicated if axes is None else array_sharding(mesh, axes, x.shape, rules)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree.map(place, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def _placed(build: Callable[[], nnx.Module], mesh, rules):
    """(graphdef, abstract state) of a module, each parameter placed by the logical rules."""
    graphdef, state = nnx.split(nnx.eval_shape(build))
    return graphdef, place_variables(state, mesh, rules)


def _batched(mesh, rules, dtype):
    """A ShapeDtypeStruct maker whose leading dimension is split over the "batch" axes."""
    from seeker_jax.sharding import array_sharding

    def batched(*shape, dt=dtype):
        axes = ("batch",) + (None,) * (len(shape) - 1)
        return jax.ShapeDtypeStruct(shape, dt, sharding=array_sharding(mesh, axes, shape, rules))
    return batched


def decoder_layer_cost(c: ml_collections.ConfigDict, cfg, mesh, rules, batch: int,
                       seq_len: int, attention_impl: str = "reference"
                       ) -> tuple[float, float] | None:
    """Per-chip (FLOPs, bytes accessed) of one decoder layer's forward + backward, as the scan
    body runs it, with `attention_impl`: "reference" counts every attention FLOP (the full
    L x L scores; a causal kernel skips about half) but its bytes include the dense score
    matrix; "chunked" (online softmax over key blocks, a loop whose body XLA counts once)
    gives a fused kernel's HBM traffic but undercounts attention FLOPs. A Pallas kernel
    (splash) has no cost model at all, so seeker_jax.aot takes FLOPs from the first and, for
    a splash step, bytes from the second.

    XLA's cost_analysis counts a while-loop body once, so a step whose decoder is a
    `lax.scan` (model.scan_layers) reports the decoder as if it had one layer. This compiles
    that layer alone, on the same mesh, with the same parameter shardings (logical-axis
    rules), batch sharding, dtypes and remat policy: forward then the VJP with respect to the
    parameters and the input, which is what the forward and backward scan bodies hold. The
    DeepStack add and loop bookkeeping are left out (elementwise, negligible).
    """
    from seeker_jax.models.qwen3_vl.attention import AttentionMask
    from seeker_jax.models.qwen3_vl.text import REMAT_POLICIES, Qwen3VLTextDecoderLayer

    dtype, param_dtype = jnp.dtype(c.model.compute_dtype), jnp.dtype(c.model.param_dtype)
    graphdef, state = _placed(lambda: Qwen3VLTextDecoderLayer(
        cfg.text, dtype=dtype, param_dtype=param_dtype, rngs=nnx.Rngs(0),
        attention_impl=attention_impl), mesh, rules)
    batched = _batched(mesh, rules, dtype)
    B, L, D, hd = batch, seq_len, cfg.text.hidden_size, cfg.text.head_dim
    policy = REMAT_POLICIES[c.model.remat]

    def forward(state, x, cos, sin, valid):
        mask = AttentionMask(kv_valid=valid, causal=True)  # causal with padding, as training
        return nnx.merge(graphdef, state)(x, cos, sin, mask)[0]

    if policy is not None:
        forward = jax.checkpoint(forward, policy=policy, prevent_cse=False)

    def fwd_bwd(state, x, cos, sin, valid, dy):
        y, vjp = jax.vjp(lambda s, h: forward(s, h, cos, sin, valid), state, x)
        return y, vjp(dy)

    lowered = jax.jit(fwd_bwd).lower(state, batched(B, L, D), batched(B, L, hd),
                                     batched(B, L, hd), batched(B, L, dt=jnp.bool_),
                                     batched(B, L, D))
    try:
        return compiled_cost(lowered.compile())
    except Exception as e:  # XlaRuntimeError: this layer alone may not fit the chip
        # (the step itself may use splash): the count is then unknown, never a wrong number
        if not is_out_of_memory(e):
            raise
        return None


def vision_block_cost(c: ml_collections.ConfigDict, cfg, mesh, rules,
                      blocks: tuple[int, int]) -> tuple[float, float]:
    """Per-chip (FLOPs, bytes accessed) of one vision block on the step's (attention blocks,
    slots) layout: its forward when the tower is frozen (c.model.freeze_vision), forward +
    VJP otherwise. Segment attention per frame group runs the reference here (a dense
    per-block mask); the step's own splash kernel has no cost model anyway."""
    from seeker_jax.models.qwen3_vl.vision import Qwen3VLVisionBlock

    dtype, param_dtype = jnp.dtype(c.model.compute_dtype), jnp.dtype(c.model.param_dtype)
    graphdef, state = _placed(lambda: Qwen3VLVisionBlock(
        cfg.vision, dtype=dtype, param_dtype=param_dtype, rngs=nnx.Rngs(0),
        attention_impl="reference"), mesh, rules)
    batched = _batched(mesh, rules, dtype)
    n, S = blocks
    C, hd = cfg.vision.hidden_size, cfg.vision.head_dim

    def forward(state, x, cos, sin, seg):
        return nnx.merge(graphdef, state)(x, cos, sin, seg)

    def fwd_bwd(state, x, cos, sin, seg, dy):
        y, vjp = jax.vjp(lambda s, h: forward(s, h, cos, sin, seg), state, x)
        return y, vjp(dy)

    args = (state, batched(n, S, C), batched(n, S, hd), batched(n, S, hd),
            batched(n, S, dt=jnp.int32))
    if c.model.freeze_vision:
        return compiled_cost(jax.jit(forward).lower(*args).compile())
    return compiled_cost(jax.jit(fwd_bwd).lower(*args, batched(n, S, C)).compile())


__all__ = ["compiled_cost", "decoder_layer_cost", "is_out_of_memory", "place_variables",
           "vision_block_cost"]
