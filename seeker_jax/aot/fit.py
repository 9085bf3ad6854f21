"""Will the SFT (or any loss's) train step fit a TPU pod? Compile it for one, on this CPU, and read
the compiler's figures (rl.aot gives it the GRPO step).

`seeker-jax aot --config configs/sft.py:qwen3_vl_8b --topology v5p:2x2x1`

With `jax[tpu]` installed, `jax.experimental.topologies.get_topology_desc` gives the devices of
a TPU topology without the TPUs. We build the config's (data, fsdp, tensor) mesh on them,
describe params, optimizer state and a batch as ShapeDtypeStructs with their NamedShardings
(nothing real-sized is allocated), and lower + compile the SAME jitted step that training runs
(`train_state.jit_train_step`). XLA's TPU compiler then reports per-chip memory, or refuses
with "Ran out of memory in memory space hbm", which is the answer "does not fit".

The batch is a video SFT batch: per example one `frames`-frame video at <= max_pixels per frame
(Qwen3-VL's smart resize of a 16:9 source), each temporal group of 2 frames written as
`<t seconds><|vision_start|><|video_pad|>*n<|vision_end|>`, plus `text_tokens` of prompt,
tool calls and answers. The global batch is batch_per_chip * data * fsdp examples (tensor
parallel chips share theirs).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import re
import threading
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from seeker_jax.aot.cost import (compiled_cost, is_out_of_memory, place_variables,
                                 scan_costs)
from seeker_jax.aot.report import GIB, format_report
from seeker_jax.aot.roofline import roofline

# HBM per chip, by the topology name's prefix.
HBM_GIB = {"v5p": 95.0, "v5e": 16.0, "v5litepod": 16.0, "v6e": 32.0, "v4": 32.0}


class AotError(ValueError):
    """A request the check cannot answer (no compiler, unknown topology, impossible shapes)."""


@dataclasses.dataclass(frozen=True)
class VideoBatch:
    """Shapes of one video SFT batch. grid: (t, h, w) in 16-px patches, per example."""

    batch: int            # global examples
    seq_len: int          # L, tokens per example (padded)
    loss_len: int         # K, positions through the vocabulary projection per example
    grid: tuple[int, int, int]
    video_tokens: int     # <|video_pad|> tokens per example
    timestamp_tokens: int  # `<t seconds>` and vision start/end tokens per example

    @property
    def patches(self) -> int:
        return int(np.prod(self.grid))


def timestamp_tokens(seconds: float) -> int:
    """Qwen BPE tokens of `<{t:.1f} seconds>`: '<', one per digit, '.', ' seconds', '>'
    (Qwen2's pre-tokenizer splits every digit)."""
    return len(f"{seconds:.1f}".replace(".", "")) + 4


def video_batch(batch: int, frames: int | None = None, height: int = 720, width: int = 1280,
                max_pixels: int | None = None, text_tokens: int = 1024,
                seconds_per_frame: float = 2.0, seq_len: int | None = None, multiple: int = 256,
                env=None, loss_len: int | None = None) -> VideoBatch:
    """The token count of a `frames`-frame video SFT example, computed as the processor does.

    frames / max_pixels None: the prompt video of `env` (an EnvConfig; default the paper's:
    256 frames at <= 112,896 px each), so the check compiles what training will see.
    seq_len None: video + timestamps + text rounded up to `multiple` (a data bucket).
    loss_len None: SFT's, half the text rounded up to 128 (answers and tool calls are learned,
    the prompt is not); a GRPO step learns every response token, so it passes its own K.
    """
    from seeker_jax.env.config import EnvConfig
    from seeker_jax.models.processing import MERGE_SIZE, PATCH_SIZE, smart_resize

    video = (env if env is not None else EnvConfig()).video
    frames = video.max_frames if frames is None else frames
    max_pixels = video.max_frame_pixels if max_pixels is None else max_pixels

    if frames % 2:
        raise AotError(f"frames must be even (2-frame temporal patches), got {frames}")
    h, w = smart_resize(height, width, max_pixels=max_pixels)
    grid = (frames // 2, h // PATCH_SIZE, w // PATCH_SIZE)
    per_group = grid[1] * grid[2] // MERGE_SIZE**2
    stamps = sum(timestamp_tokens((2 * g + 0.5) * seconds_per_frame) + 2 for g in range(grid[0]))
    need = grid[0] * per_group + stamps + text_tokens
    if seq_len is None:
        seq_len = -(-need // multiple) * multiple
    elif seq_len < grid[0] * per_group + stamps + 2:
        raise AotError(f"seq_len {seq_len} is shorter than the video alone "
                         f"({grid[0] * per_group + stamps} tokens): raise it or lower --frames")
    if loss_len is None:
        loss_len = max(128, -(-min(text_tokens, seq_len) // 2 // 128) * 128)
    elif not 0 < loss_len <= seq_len:
        raise AotError(f"loss_len {loss_len} must be in 1..seq_len ({seq_len})")
    return VideoBatch(batch, seq_len, loss_len, grid, grid[0] * per_group, stamps)


def topology_devices(topology: str) -> list:
    """TPU devices of a topology name like "v5p:2x2x1" (needs jax[tpu]: libtpu)."""
    import os

    from jax.experimental import topologies

    # libtpu takes a lock file per process; compiling (no TPU is touched) needs none.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    if not tpu_compiler_available():
        raise AotError("no TPU compiler here: pip install 'jax[tpu]' (libtpu) into this "
                           "environment, the same version as jax")
    try:
        return list(topologies.get_topology_desc(platform="tpu", topology_name=topology).devices)
    except Exception as e:  # a name the compiler does not know
        raise AotError(f"no TPU topology {topology!r}: {e}. Names look like v5p:2x2x1 "
                           "(v5p-8), v5p:2x2x4, v5e:2x2, v6e:4x4") from e


def topology_mesh(c: ml_collections.ConfigDict, topology: str):
    """(devices, mesh shape, mesh) of config c's (data, fsdp, tensor) mesh over a TPU
    topology's devices, Auto axes as training uses."""
    from seeker_jax.training.trainer import resolve_mesh_shape

    devices = topology_devices(topology)
    shape = resolve_mesh_shape(c.mesh, len(devices))
    mesh = jax.make_mesh(tuple(shape.values()), tuple(shape), devices=devices,
                         axis_types=(jax.sharding.AxisType.Auto,) * len(shape))
    return devices, shape, mesh


def tpu_compiler_available() -> bool:
    """Whether libtpu (from jax[tpu]) is importable."""
    import importlib.util

    return importlib.util.find_spec("libtpu") is not None


def hbm_gib(topology: str) -> float:
    prefix = topology.split(":")[0].split("-")[0]
    if prefix not in HBM_GIB:
        raise AotError(f"unknown chip {prefix!r} in {topology!r}; known: {sorted(HBM_GIB)}")
    return HBM_GIB[prefix]


def _with_sharding(x, sharding) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)


def target_model_config(c: ml_collections.ConfigDict, mesh, rules):
    """The model config of c.model.size for a step that runs on `mesh`'s devices: "auto"
    attention resolved for their platform (the target: a TPU topology gets splash, whatever
    host compiles it), the kernel's mesh axes from the logical-axis rules."""
    from seeker_jax.config import load_config
    from seeker_jax.models.qwen3_vl import from_hf_dict
    from seeker_jax.models.qwen3_vl.attention import resolve_impl
    from seeker_jax.sharding import attention_axes

    target = mesh.devices.flat[0].platform
    return from_hf_dict(load_config(f"configs/qwen3_vl.py:{c.model.size}").to_dict()).replace(
        attention_impl=resolve_impl(c.model.get("attention_impl", "auto"), target),
        attention_axes=attention_axes(rules))


def abstract_train_state(c: ml_collections.ConfigDict, mesh, tx, rules=None):
    """(cfg, graphdef, trainable, frozen, rest, opt_state) as sharded ShapeDtypeStructs.

    Params are placed by the logical-axis rules (default the config's c.mesh.rules), as
    create_train_state places real ones. cfg is target_model_config's: "auto" attention
    resolved for the platform the mesh's devices are, not the host's. An
    optimizer leaf whose path ends in a trainable param's path (mu, nu, accumulated grads)
    takes that param's sharding, other leaves (step counts) are replicated.
    """
    from seeker_jax.models.qwen3_vl.hf_io import abstract_model
    from seeker_jax.sharding import rules_from_config
    from seeker_jax.training.train_state import trainable_filter

    rules = rules_from_config(c.mesh.rules) if rules is None else rules
    cfg = target_model_config(c, mesh, rules)
    model = abstract_model(cfg, jnp.dtype(c.model.compute_dtype), jnp.dtype(c.model.param_dtype),
                           c.model.remat, bool(c.model.get("scan_layers", False)))
    replicated = NamedSharding(mesh, PartitionSpec())
    nnx.update(model, place_variables(nnx.state(model), mesh, rules))
    graphdef, trainable, frozen, rest = nnx.split(model, trainable_filter(c.model.freeze_vision),
                                                  nnx.Param, ...)
    by_path = {tuple(str(k) for k in path): x.sharding for path, x in
               jax.tree_util.tree_flatten_with_path(trainable)[0]}

    def opt_sharding(path, x):
        keys = tuple(str(k) for k in path)
        for start in range(len(keys)):
            if keys[start:] in by_path:
                return _with_sharding(x, by_path[keys[start:]])
        return _with_sharding(x, replicated)

    opt_state = jax.tree_util.tree_map_with_path(opt_sharding, jax.eval_shape(tx.init, trainable))
    return cfg, graphdef, trainable, frozen, rest, opt_state


def abstract_vision(b: VideoBatch, vision_config, mesh, rules, processes: int = 1):
    """(video VisionInputs as replicated ShapeDtypeStructs, slot count) of a video batch.

    Built by train_state.host_vision, the function place_batch calls, on the batch's grids
    split over `processes` hosts: the bucket the config's video lands in, so AOT compiles the
    shapes training places and the two cannot drift.
    """
    from seeker_jax.training.train_state import batch_devices, host_vision

    if b.batch % processes:
        raise AotError(f"a global batch of {b.batch} examples does not split over {processes} "
                       "hosts; change batch_per_chip or the mesh")
    per = np.array([b.grid] * (b.batch // processes), np.int64)
    multiple = max(1, batch_devices(mesh, rules) // processes)  # as block_multiple
    _, video = host_vision({"image": [None] * processes, "video": [per] * processes},
                           vision_config, multiple)["video"]
    replicated = NamedSharding(mesh, PartitionSpec())
    return (type(video)(*(jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype,
                                               sharding=replicated) for x in video)),
            video.num_slots)


def abstract_batch(b: VideoBatch, mesh, rules=None, video_slots: int | None = None,
                   per_token: tuple[str, ...] = ()) -> dict[str, jax.ShapeDtypeStruct]:
    """The arrays place_batch makes for a video batch, sharded over the "batch" axis: shapes,
    dtypes and batch dimensions from seeker_jax.data.batch.array_specs, the table place_batch
    itself places by. video_slots: the slot-layout pixel rows (abstract_vision); default the
    batch's patch count (no padding). per_token: names of extra (B, K) float32 arrays the
    loss reads (GRPO: advantages, sampler_logprobs, ref_logprobs, ...)."""
    from seeker_jax.data.batch import array_specs
    from seeker_jax.sharding import DEFAULT_RULES, array_sharding

    rules = DEFAULT_RULES if rules is None else rules
    slots = b.batch * b.patches if video_slots is None else video_slots
    specs = array_specs(b.batch, b.seq_len, b.loss_len, video_patches=slots,
                        per_token=tuple(per_token))
    out = {}
    for k, (shape, dtype, batch_dim) in specs.items():
        axes = [None] * len(shape)
        axes[batch_dim] = "batch"
        out[k] = jax.ShapeDtypeStruct(shape, dtype,
                                      sharding=array_sharding(mesh, axes, shape, rules))
    return out


def per_chip_bytes(tree) -> int:
    """Bytes one chip holds of sharded ShapeDtypeStructs (the largest shard of each)."""
    total = 0
    for x in jax.tree.leaves(tree):
        shard = x.sharding.shard_shape(x.shape)
        total += int(np.prod(shard)) * jnp.dtype(x.dtype).itemsize
    return total


def tiled_bytes(shape: tuple[int, ...], itemsize: int, major_to_minor: tuple[int, ...],
                tile: tuple[int, ...]) -> int:
    """Bytes of one array in a TPU layout: dimensions in major_to_minor order, the minor ones
    padded up to the tile (e.g. (8, 128)); a scalar is one (128,) tile."""
    dims = [shape[d] for d in major_to_minor] or [1]
    for i, t in enumerate(tile[-len(dims):][::-1]):
        dims[-1 - i] = -(-dims[-1 - i] // t) * t
    return int(np.prod(dims)) * itemsize


def argument_bytes_by_hand(compiled, args) -> int:
    """Per-chip bytes of the compiled step's arguments: each kept argument's shard shape
    (from its sharding) in the layout the compiler chose for it. jit drops arguments the step
    never reads (loss_mask, mm_token_type_ids): they cost HBM in training, not here."""
    formats = jax.tree.leaves(compiled.input_formats[0],
                              is_leaf=lambda x: hasattr(x, "layout") and hasattr(x, "sharding"))
    leaves = jax.tree.leaves(args)
    kept = compiled._executable._kept_var_idx  # noqa: SLF001 (which flat arguments survived)
    total = 0
    for i, x in enumerate(leaves):
        if i not in kept:
            continue
        layout = formats[i].layout
        total += tiled_bytes(tuple(x.sharding.shard_shape(x.shape)), jnp.dtype(x.dtype).itemsize,
                             tuple(layout.major_to_minor), tuple(layout.tiling[0]))
    return total


def count_params(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


_SIZE = r"([\d.]+)([KMGT]?)(?:i?B)?"
# The wordings of XLA TPU's refusal, seen in this version and before.
_OOM = [re.compile(p) for p in (
    rf"Used {_SIZE} of {_SIZE} hbm",
    rf"\({_SIZE}\) exceeds available HBM \({_SIZE}\)",
    rf"{_SIZE} > {_SIZE}")]


def _oom_figures(message: str) -> tuple[float | None, float | None]:
    """(used, capacity) in GiB from XLA's "Ran out of memory ... HBM" message."""
    m = next((m for p in _OOM if (m := p.search(message))), None)
    if not m:
        return None, None
    scale = {"": 1 / GIB, "K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}
    return float(m.group(1)) * scale[m.group(2)], float(m.group(3)) * scale[m.group(4)]


def _bucket(length: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket >= length (the learner's padded length), or a clear error."""
    from seeker_jax.data.batch import bucket_length

    padded = bucket_length(length, buckets)
    if padded is None:
        raise AotError(f"an example of {length} tokens is longer than every bucket {tuple(buckets)}"
                       ": raise the config's largest bucket or lower --frames / --text-tokens")
    return padded


def compile_train_step(c: ml_collections.ConfigDict, topology: str, batch_per_chip: int = 1,
                       frames: int | None = None, seq_len: int | None = None,
                       text_tokens: int = 1024, max_pixels: int | None = None,
                       loss_len: int | None = None, loss_fn: str | Callable = "sft",
                       per_token: tuple[str, ...] = (), step: str = "SFT",
                       buckets: tuple[int, ...] | None = None,
                       cost: bool = True) -> dict[str, Any]:
    """Compiles the train step of `loss_fn` (default SFT's) for `topology`; returns its
    figures (see `format_report`).

    The batch: batch_per_chip * data * fsdp examples, each one video + text_tokens of text
    (video_batch), with loss_len (K) loss positions and the (B, K) `per_token` arrays the loss
    reads; buckets: pad the example to the smallest of these lengths holding it, as the
    learner's collate does (None: round up to 256). `step` names it in the report.
    cost False: memory only, no per-layer probes (a scanned step's FLOPs and bytes are then
    not counted, and there is no projection): the step's own compile, nothing more.

    fits False carries the compiler's refusal (used / capacity GiB when it says them).
    """
    from seeker_jax.env.config import EnvConfig
    from seeker_jax.sharding import rules_from_config

    devices, shape, mesh = topology_mesh(c, topology)
    rules = rules_from_config(c.mesh.rules)
    cfg = target_model_config(c, mesh, rules)
    env = EnvConfig.from_config(c.env) if "env" in c else None
    b = video_batch(batch_per_chip * shape["data"] * shape["fsdp"], frames,
                    text_tokens=text_tokens, max_pixels=max_pixels, seq_len=seq_len, env=env,
                    loss_len=loss_len)
    if buckets and seq_len is None:
        b = dataclasses.replace(b, seq_len=_bucket(b.seq_len, buckets))
    hosts = len({getattr(d, "process_index", 0) for d in devices})
    video, slots = abstract_vision(b, cfg.vision, mesh, rules, hosts)
    scan = bool(c.model.get("scan_layers", False))
    # The probes a scanned step needs (cost.scan_costs) trace and compile in a worker thread
    # while this one builds, traces and compiles the step itself (XLA releases the GIL while
    # it compiles): on a host with a core to spare they add no wall time of their own.
    unneeded = threading.Event()  # set: the probes stop before their next compile
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="aot-probes") as pool:
        probes = pool.submit(scan_costs, c, cfg, mesh, rules, b.batch, b.seq_len,
                             cfg.attention_impl == "splash", tuple(video.segment_ids.shape),
                             unneeded.is_set) if scan and cost else None
        try:
            figures, compiled = _compile_step(c, topology, devices, shape, mesh, rules, b,
                                              (video, slots), loss_fn, per_token)
        except BaseException:
            unneeded.set()
            raise
        if compiled is None:  # the compiler refused the step: no counts to scale
            unneeded.set()
        figures.update(step=step, batch_per_chip=batch_per_chip, hosts=hosts, scan_layers=scan,
                       cost_probes=cost)
        costs = None if compiled is None or probes is None else probes.result()
    if compiled is not None:
        _scale_scanned_counts(figures, cfg, costs, counted=cost or not scan)
        figures["projection"] = roofline(figures)
    return figures


def _compile_step(c: ml_collections.ConfigDict, topology: str, devices, shape, mesh, rules,
                  b: VideoBatch, vision: tuple, loss_fn, per_token: tuple[str, ...]):
    """(figures, compiled) of the step on abstract inputs; compiled None where the compiler
    refused it for memory (figures then carry its numbers)."""
    from seeker_jax.training.optim import make_optimizer
    from seeker_jax.training.train_state import Vision, jit_train_step

    tx = make_optimizer(c.optimizer)
    cfg, graphdef, trainable, frozen, rest, opt_state = abstract_train_state(c, mesh, tx, rules)
    video, slots = vision
    batch = abstract_batch(b, mesh, rules, slots, per_token)
    n_trainable = count_params(trainable)
    figures: dict[str, Any] = {
        "per_token": list(per_token), "topology": topology, "chips": len(devices),
        "hbm_gib": hbm_gib(topology), "model": c.model.size, "mesh": shape,
        "global_batch": b.batch, "seq_len": b.seq_len, "frames": b.grid[0] * 2,
        "video_grid": list(b.grid), "video_tokens": b.video_tokens, "loss_positions": b.loss_len,
        "trainable_params": n_trainable, "frozen_params": count_params(frozen),
        "tokens_per_step": b.batch * b.seq_len, "remat": c.model.remat,
        "state_bytes_per_chip": per_chip_bytes((trainable, frozen, rest, opt_state)),
        "batch_bytes_per_chip": per_chip_bytes((batch, video)),  # vision inputs included
        "video_slots": slots, "vision_blocks": list(video.segment_ids.shape),
        "attention_impl": cfg.attention_impl,
        "attention_requested": c.model.get("attention_impl", "auto"),
        "target_platform": devices[0].platform,
    }
    step = jit_train_step(tx, jax.tree.map(lambda x: x.sharding, trainable),
                          jax.tree.map(lambda x: x.sharding, opt_state), loss_fn)
    # Splash (a Mosaic kernel) runs under shard_map over the context mesh; the other
    # implementations are partitioned by GSPMD from the shardings alone.
    splash = cfg.attention_impl == "splash"
    inputs = (trainable, frozen, rest, opt_state, batch, Vision(None, video))
    with jax.set_mesh(mesh) if splash else contextlib.nullcontext():
        lowered = step.lower(graphdef, *inputs)
    start = time.perf_counter()
    try:
        compiled = lowered.compile()
    except Exception as e:  # XlaRuntimeError: RESOURCE_EXHAUSTED
        message = str(e)
        if not is_out_of_memory(e):
            raise
        used, capacity = _oom_figures(message)
        figures.update(fits=False, used_gib=used, capacity_gib=capacity,
                       error=message.strip().splitlines()[0][:500])
        return figures, None
    figures["step_compile_s"] = round(time.perf_counter() - start, 1)
    figures["argument_bytes_by_hand"] = argument_bytes_by_hand(compiled, inputs)
    mem = compiled.memory_analysis()
    args, out = mem.argument_size_in_bytes, mem.output_size_in_bytes
    alias, temp = mem.alias_size_in_bytes, mem.temp_size_in_bytes
    code = mem.generated_code_size_in_bytes
    total = args + out - alias + temp + code
    flops, hbm = compiled_cost(compiled)
    if splash:  # Pallas kernel calls in the compiled step (0 would mean a silent fallback)
        figures["pallas_kernels"] = compiled.as_text().count("tpu_custom_call")
    figures.update(
        fits=total <= hbm_gib(topology) * GIB, argument_bytes=args, output_bytes=out,
        alias_bytes=alias, temp_bytes=temp, code_bytes=code, total_bytes=total,
        flops_per_chip=flops, bytes_accessed_per_chip=hbm, flops_as_compiled=flops,
        bytes_as_compiled=hbm, flops_6nt_per_chip=6.0 * n_trainable * b.batch * b.seq_len
        / len(devices))
    return figures, compiled


def _scale_scanned_counts(figures: dict[str, Any], cfg, costs, counted: bool = True) -> None:
    """FLOPs and bytes of a step whose layers are scanned: cost_analysis counted each scan
    body once, so add the other n - 1 decoder layers (FLOPs with every attention FLOP, the
    dense scores; bytes where, for splash, the online-softmax probe stands in for the
    kernel's: a fused kernel's traffic, not a dense score matrix's) and depth - 1 vision
    blocks. costs None (layers not scanned): the compiler's counts stand; counted False (a
    scanned step without its probes): not counted."""
    if not counted:
        figures.update(flops_per_chip=None, bytes_accessed_per_chip=None)
    elif costs is not None:
        more = cfg.text.num_hidden_layers - 1
        flops, hbm = figures["flops_per_chip"], figures["bytes_accessed_per_chip"]
        flops = None if costs.layer_flops is None else flops + more * costs.layer_flops
        hbm = None if costs.layer_bytes is None else hbm + more * costs.layer_bytes
        block = costs.vision_block
        if flops is not None:  # the vision blocks' scan: its body counted once as well
            flops += (cfg.vision.depth - 1) * block[0]
        if hbm is not None:
            hbm += (cfg.vision.depth - 1) * block[1]
        figures.update(flops_per_chip=flops, bytes_accessed_per_chip=hbm,
                       vision_block_flops_per_chip=block[0],
                       scan_body_flops_per_chip=costs.layer_flops,
                       scan_body_flops_counted=costs.layer_flops_counted,
                       scan_body_bytes_per_chip=costs.layer_bytes)
    flops = figures["flops_per_chip"]
    figures["flops_ratio"] = None if flops is None else flops / figures["flops_6nt_per_chip"]


def run_aot(config: ml_collections.ConfigDict, topology: str, json_out: str | None = None,
            compile_fn: Callable[..., dict[str, Any]] | None = None, **kwargs) -> int:
    """The `aot` command: prints the figures, saves them as JSON; 0 fits, 2 does not fit.

    compile_fn(config, topology, **kwargs) -> figures: default compile_train_step (SFT); the
    CLI passes seeker_jax.rl.aot.compile_grpo_step for a GRPO config."""
    import json

    try:
        figures = (compile_fn or compile_train_step)(config, topology, **kwargs)
    except ValueError as e:  # AotError, or a mesh the topology cannot hold
        print(f"aot: {e}")
        return 1
    if json_out:  # first: the figures survive a report that fails
        with open(json_out, "w") as f:
            json.dump(figures, f, indent=1)
    print(format_report(figures))
    return 0 if figures["fits"] else 2


__all__ = ["AotError", "VideoBatch", "abstract_batch", "abstract_train_state", "abstract_vision",
           "argument_bytes_by_hand", "compile_train_step", "format_report", "per_chip_bytes",
           "run_aot", "target_model_config", "tiled_bytes", "timestamp_tokens",
           "topology_devices", "topology_mesh", "tpu_compiler_available", "video_batch"]
