"""What XLA's cost_analysis misses in a step with scanned layers, measured per layer.

cost_analysis counts a while-loop body once, so a step whose decoder (or vision tower) is a
`lax.scan` reports it as if it had one layer. The probes here compile one decoder layer (fwd +
bwd) or one vision block (fwd, or fwd + bwd when the tower trains) alone, on the step's mesh
with the same parameter shardings, dtypes and remat policy; seeker_jax.aot.fit adds the other
n - 1 copies of their counts (`scan_costs` runs every probe a step needs, while the step
itself compiles).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from seeker_jax.sharding import mesh_axes_of


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


# Compiler options of the decoder-layer probes: jax's lowest exec-time optimization effort. XLA then skips
# most of its search for a fast schedule, which is most of a large layer's compile time, and
# the FLOPs it counts do not depend on that search (tests/test_aot.py compares the two counts
# on the tiny test layer). The bytes accessed change with fusion (the 8B online-softmax layer
# at 16,384 tokens: 2.3% fewer than at the default effort; the tiny test layer: 11% to 55%
# more), a trade taken for a fifth of the compile time (docs/pods.md).
LOW_EFFORT = {"exec_time_optimization_effort": -1.0}

# The short lengths whose counts fix a decoder layer's FLOPs at any length (decoder_layer_flops).
FIT_LENGTHS = (1024, 2048, 3072)


def decoder_layer_cost(c: ml_collections.ConfigDict, cfg, mesh, rules, batch: int,
                       seq_len: int, attention_impl: str = "reference",
                       compiler_options: dict | None = None) -> tuple[float, float] | None:
    """Per-chip (FLOPs, bytes accessed) of one decoder layer's forward + backward, as the scan
    body runs it, with `attention_impl`: "reference" counts every attention FLOP (the full
    L x L scores; a causal kernel skips about half) but its bytes include the dense score
    matrix; "chunked" (online softmax over key blocks, a loop whose body XLA counts once)
    gives a fused kernel's HBM traffic but undercounts attention FLOPs. A Pallas kernel
    (splash) has no cost model at all, so scan_costs takes FLOPs from the first and, for a
    splash step, bytes from the second.

    XLA's cost_analysis counts a while-loop body once, so a step whose decoder is a
    `lax.scan` (model.scan_layers) reports the decoder as if it had one layer. This compiles
    that layer alone, on the same mesh, with the same parameter shardings (logical-axis
    rules), batch sharding, dtypes and remat policy: forward then the VJP with respect to the
    parameters and the input, which is what the forward and backward scan bodies hold. The
    DeepStack add and loop bookkeeping are left out (elementwise, negligible).
    compiler_options: passed to `compile` (scan_costs passes LOW_EFFORT).
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
        return compiled_cost(lowered.compile(compiler_options=compiler_options))
    except Exception as e:  # XlaRuntimeError: this layer alone may not fit the chip
        # (the step itself may use splash): the count is then unknown, never a wrong number
        if not is_out_of_memory(e):
            raise
        return None


def quadratic_at(lengths: tuple[int, ...], counts: list[float], length: int) -> float:
    """The quadratic through three (length, count) points, evaluated at `length` (Lagrange
    form)."""
    total = 0.0
    for i, (li, yi) in enumerate(zip(lengths, counts)):
        weight = 1.0
        for j, lj in enumerate(lengths):
            if j != i:
                weight *= (length - lj) / (li - lj)
        total += yi * weight
    return total


def decoder_layer_flops(c: ml_collections.ConfigDict, cfg, mesh, rules, batch: int,
                        seq_len: int) -> tuple[float | None, str]:
    """FLOPs per chip of one decoder layer's forward + backward at seq_len with every attention
    FLOP counted (the dense reference: the L x L scores), and how they were counted.

    "compiled": the layer compiled at seq_len with LOW_EFFORT (the default effort's count,
    see LOW_EFFORT, in a sixth of the compile time). "quadratic fit": where the dense scores
    do not fit one chip (16,384 tokens on a 32 GiB v6e), the layer compiled at FIT_LENGTHS and
    the count's quadratic in L (projections and norms grow with L, scores and softmax with L^2)
    evaluated at seq_len: for the 8B layer at 14,848 tokens on v5p it is within 8.6e-7 of the
    compiled count (tests/test_aot.py checks the fit on the tiny model's layer). None when
    even the short layer does not fit: the count is then unknown, never a wrong number.
    """
    cost = decoder_layer_cost(c, cfg, mesh, rules, batch, seq_len, "reference", LOW_EFFORT)
    if cost is not None:
        return cost[0], "compiled"
    counts = []
    for length in FIT_LENGTHS:
        short = decoder_layer_cost(c, cfg, mesh, rules, batch, length, "reference", LOW_EFFORT)
        if short is None:
            return None, f"not measured: one layer at {length} tokens does not fit a chip"
        counts.append(short[0])
    return quadratic_at(FIT_LENGTHS, counts, seq_len), "quadratic fit"


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


@dataclasses.dataclass(frozen=True)
class ScanCosts:
    """Per-chip counts of one scanned body, what the step's cost_analysis counted once.

    layer_flops: one decoder layer's fwd + bwd with every attention FLOP (None: not measured);
    layer_flops_counted: how ("compiled", "quadratic fit", or why not);
    layer_bytes: its HBM bytes accessed, with a fused kernel's traffic where the step runs
    splash (None: the layer alone does not fit a chip); vision_block: one vision block's
    (FLOPs, bytes)."""

    layer_flops: float | None
    layer_flops_counted: str
    layer_bytes: float | None
    vision_block: tuple[float, float]


def chip_share(mesh, rules, rows: int) -> tuple[Any, int]:
    """(mesh, rows) a probe compiles on: one chip and its share of the rows where the batch
    axes are the only mesh axes wider than one and split the rows evenly, else the step's
    own mesh and rows.

    There each chip runs the whole layer on its own rows (the batch split over data and fsdp;
    fsdp's parameter shards are gathered whole before use), so its FLOPs are those of one chip
    holding rows / chips rows; the probe then skips SPMD partitioning and the collectives,
    about 40% of its compile. The gathers' own HBM writes are left out of the bytes. Measured
    against the partitioned layer: the 8B layer at 16,384 tokens on v5p-8, FLOPs within 2e-5,
    bytes within 0.1%; the tiny test layer, 2.7e-4 and 2.2% (tests/test_aot.py). A tensor or
    other split of the heads keeps the real mesh."""
    batch_axes = set(mesh_axes_of("batch", rules))
    split = {axis: size for axis, size in mesh.shape.items() if size > 1}
    chips = math.prod(split.values())
    if not set(split) <= batch_axes or rows % chips:
        return mesh, rows
    one = jax.make_mesh((1,) * len(mesh.axis_names), mesh.axis_names,
                        devices=mesh.devices.flat[:1],
                        axis_types=(jax.sharding.AxisType.Auto,) * len(mesh.axis_names))
    return one, rows // chips


def scan_costs(c: ml_collections.ConfigDict, cfg, mesh, rules, batch: int, seq_len: int,
               splash: bool, vision_blocks: tuple[int, int],
               stop: Callable[[], bool] = lambda: False) -> ScanCosts | None:
    """Every probe a step with scanned layers needs, each compiled once, on one chip's share
    where that gives the same per-chip counts (chip_share).

    A splash step (a Pallas kernel has no cost model) takes its layer bytes from the
    online-softmax ("chunked") layer, a fused kernel's traffic, and its FLOPs from the dense
    reference (decoder_layer_flops); a reference step takes both from its one dense probe.
    The decoder-layer probes compile at the lowest effort (LOW_EFFORT): their bytes then come
    from a less-fused program (the 8B layer's 2.3% below the default effort's), at a fifth of
    the compile time. The vision block, a few seconds, keeps the default effort.
    stop() is asked before each compile (compile_train_step passes "the step's own compile
    has failed"): then None, the counts no longer being needed.
    """
    if stop():
        return None
    layer_mesh, rows = chip_share(mesh, rules, batch)
    traffic = decoder_layer_cost(c, cfg, layer_mesh, rules, rows, seq_len,
                                 "chunked" if splash else "reference", LOW_EFFORT)
    if stop():
        return None
    if splash or traffic is None:
        layer_flops, counted = decoder_layer_flops(c, cfg, layer_mesh, rules, rows, seq_len)
    else:  # that probe was the dense reference already: every attention FLOP counted
        layer_flops, counted = traffic[0], "compiled"
    if stop():
        return None
    n, size = vision_blocks
    vision_mesh, n_share = chip_share(mesh, rules, n)
    block = vision_block_cost(c, cfg, vision_mesh, rules, (n_share, size))
    return ScanCosts(layer_flops, counted, None if traffic is None else traffic[1], block)


__all__ = ["FIT_LENGTHS", "LOW_EFFORT", "ScanCosts", "chip_share", "compiled_cost",
           "decoder_layer_cost", "decoder_layer_flops", "is_out_of_memory", "place_variables", "quadratic_at",
           "scan_costs", "vision_block_cost"]
