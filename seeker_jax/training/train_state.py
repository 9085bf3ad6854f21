"""Train state and the jitted train step for any loss, sharded over a (data, fsdp, tensor) mesh.

The model is split once into a graph definition and three states:
  trainable  Params that get gradients (all of them, or all but `model.visual` when frozen)
  frozen     the other Params (no gradients, no optimizer state)
  rest       every non-Param variable
Only `trainable` and its optimizer state change in a step. Every array is placed by the
logical-axis rules of seeker_jax.sharding; the batch is sharded over ("data", "fsdp").

Loss: any registered `loss_fn(model, batch) -> (loss, aux)` of seeker_jax.training.losses ("sft" is
next-token cross entropy on learned tokens); the batch is a seeker_jax.data.batch.Batch placed
by place_batch, which also returns its vision inputs (Vision: grids as arrays, traced like the
batch, so the step compiles once per bucket, never per grid mix).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from seeker_jax.data.batch import Batch, batch_dim, from_arrays, pad_to
from seeker_jax.training.losses import LossFn, get_loss
from seeker_jax.models.qwen3_vl.vision_inputs import DEFAULT_BUCKETS, VisionBuckets, VisionInputs
from seeker_jax.sharding import (DEFAULT_RULES, Rules, array_sharding, logical_to_pspec,
                                 model_shardings)
from seeker_jax.training.vision_batch import MODALITIES, global_vision_inputs, slot_pixels

VISION = "visual"


def trainable_filter(freeze_vision: bool):
    """Params that train: everything, or everything outside the vision tower."""
    if freeze_vision:
        return nnx.All(nnx.Param, nnx.Not(nnx.PathContains(VISION)))
    return nnx.Param


@dataclasses.dataclass
class TrainState:
    """Everything a step reads and writes. step counts micro-batches (optimizer calls)."""

    graphdef: Any
    trainable: nnx.State
    frozen: nnx.State
    rest: nnx.State
    opt_state: Any
    step: int = 0

    def model(self) -> nnx.Module:
        return nnx.merge(self.graphdef, self.trainable, self.frozen, self.rest)


def create_train_state(model: nnx.Module, tx: optax.GradientTransformation, mesh: Mesh | None,
                       freeze_vision: bool = True, rules: Rules = DEFAULT_RULES) -> TrainState:
    """Splits `model`, places it on `mesh` (if given) and initializes the optimizer state there."""
    if mesh is not None:
        shardings = model_shardings(model, mesh, rules)
        nnx.update(model, jax.tree.map(lambda v, s: jax.device_put(v[...], s), nnx.state(model),
                                       shardings, is_leaf=lambda x: isinstance(x, nnx.Variable)))
    graphdef, trainable, frozen, rest = nnx.split(model, trainable_filter(freeze_vision),
                                                  nnx.Param, ...)
    opt_state = jax.jit(tx.init)(trainable)  # zeros_like inherits each parameter's sharding
    if mesh is not None:  # scalars (step counts) are made on one device: replicate them
        replicated = NamedSharding(mesh, PartitionSpec())
        opt_state = jax.tree.map(lambda x: x if isinstance(x.sharding, NamedSharding)
                                 else jax.device_put(x, replicated), opt_state)
    return TrainState(graphdef, trainable, frozen, rest, opt_state)


class Vision(NamedTuple):
    """The vision inputs of a placed batch, per modality, as DATA (None when the batch has none):
    `VisionInputs` pytrees of device arrays, traced by the step like the batch, so a new grid
    mix in the same bucket reuses the compiled program. place_batch makes it and with_vision
    hands it to the loss: the only two places that know how vision travels."""

    image: VisionInputs | None = None
    video: VisionInputs | None = None


def with_vision(batch: Mapping[str, Any], vision: Vision) -> dict[str, Any]:
    """The batch a loss reads: the placed arrays (slot-layout pixels) plus the vision inputs."""
    return {**batch, "image_inputs": vision.image, "video_inputs": vision.video}


def train_step_fn(tx: optax.GradientTransformation, loss_fn: str | LossFn = "sft") -> Callable:
    """The un-jitted step(graphdef, trainable, frozen, rest, opt_state, batch, vision) ->
    (trainable, opt_state, metrics) for any registered loss (seeker_jax.training.losses).

    metrics: "loss", the loss's aux metrics, "grad_norm". jit_train_step jits it,
    seeker_jax.aot.fit compiles it ahead of time for TPU topologies; only graphdef is static
    (vision is a pytree of arrays, traced like the batch).
    """
    loss_fn = get_loss(loss_fn)

    def step(graphdef, trainable, frozen, rest, opt_state, batch, vision: Vision):
        inputs = with_vision(batch, vision)

        def objective(params):
            return loss_fn(nnx.merge(graphdef, params, frozen, rest), inputs)

        (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(trainable)
        updates, opt_state = tx.update(grads, opt_state, trainable)
        trainable = optax.apply_updates(trainable, updates)
        metrics = {"loss": loss, **aux, "grad_norm": optax.global_norm(grads)}
        return trainable, opt_state, metrics

    return step


def jit_train_step(tx: optax.GradientTransformation, trainable_shardings, opt_shardings,
                   loss_fn: str | LossFn = "sft"):
    """train_step_fn(tx, loss_fn) under jax.jit as training runs it: graphdef static (one
    compile per token shape and vision bucket, never per grid), old trainable params and
    optimizer state donated, outputs placed like the inputs."""
    return jax.jit(train_step_fn(tx, loss_fn), static_argnums=(0,), donate_argnums=(1, 4),
                   out_shardings=(trainable_shardings, opt_shardings, None))


def make_train_step(tx: optax.GradientTransformation, loss_fn: str | LossFn = "sft"):
    """A jitted step(state, batch, vision) -> metrics that updates `state` in place.

    One compile per signature of shapes (token bucket, vision bucket). Donates the old trainable params and
    optimizer state.
    """
    compiled: dict[str, Callable] = {}

    def run(state: TrainState, batch: dict[str, jax.Array], vision: Vision):
        if "step" not in compiled:  # outputs keep the inputs' shardings: one executable
            shardings = jax.tree.map(lambda x: x.sharding, (state.trainable, state.opt_state))
            compiled["step"] = jit_train_step(tx, *shardings, loss_fn=loss_fn)
        trainable, opt_state, metrics = compiled["step"](
            state.graphdef, state.trainable, state.frozen, state.rest, state.opt_state, batch,
            vision)
        state.trainable, state.opt_state, state.step = trainable, opt_state, state.step + 1
        return metrics

    return run


def make_eval_step(loss_fn: str | LossFn = "sft"):
    """A jitted eval(state, batch, vision) -> (loss, aux) of one batch, no gradients."""
    loss_fn = get_loss(loss_fn)

    def ev(graphdef, trainable, frozen, rest, batch, vision):
        return loss_fn(nnx.merge(graphdef, trainable, frozen, rest), with_vision(batch, vision))

    jitted = jax.jit(ev, static_argnums=(0,))
    return lambda state, batch, vision: jitted(state.graphdef, state.trainable, state.frozen,
                                               state.rest, batch, vision)


def agree_across_processes(batch: Batch) -> Batch:
    """`batch` padded to the largest (L, K) over all processes (they may draw different buckets
    or learned-token counts); every process must call it."""
    from jax.experimental import multihost_utils

    K = batch.loss_index.shape[1]
    sizes = multihost_utils.process_allgather(np.array([batch.shape[1], K], np.int32))
    L_max, K_max = (int(x) for x in np.asarray(sizes).reshape(-1, 2).max(0))
    return batch if (L_max, K_max) == (batch.shape[1], K) else pad_to(batch, L_max, K_max)


def gather_grids(batch: Batch) -> dict[str, list[np.ndarray | None]]:
    """{"image" | "video": every process's (n, 3) grids, process order} (None: a process has
    none): what every process needs to build the global VisionInputs. Every process must call
    it. One process: no communication."""
    local = [None if batch[k] is None else np.asarray(batch[k], np.int32).reshape(-1, 3)
             for _, _, k in MODALITIES]
    nproc = jax.process_count()
    if nproc == 1:
        return {name: [g] for (name, _, _), g in zip(MODALITIES, local)}
    from jax.experimental import multihost_utils

    counts = np.array([0 if g is None else len(g) for g in local], np.int32)
    counts_all = np.asarray(multihost_utils.process_allgather(counts)).reshape(nproc, -1)
    out = {}
    for m, (name, _, _) in enumerate(MODALITIES):
        most = int(counts_all[:, m].max())
        if most == 0:
            out[name] = [None] * nproc
            continue
        padded = np.zeros((most, 3), np.int32)
        padded[:counts[m]] = local[m] if local[m] is not None else padded[:0]
        every = np.asarray(multihost_utils.process_allgather(padded)).reshape(nproc, most, 3)
        out[name] = [every[p, :n] if (n := int(counts_all[p, m])) else None
                     for p in range(nproc)]
    return out


def batch_devices(mesh: Mesh | None, rules: Rules = DEFAULT_RULES) -> int:
    """How many devices the "batch" logical axis spans on `mesh` (1 without one)."""
    if mesh is None:
        return 1
    spec = logical_to_pspec(("batch",), rules, mesh)
    axes = spec[0] if len(spec) else None
    axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
    return int(np.prod([mesh.shape[a] for a in axes], dtype=np.int64))


def block_multiple(mesh: Mesh | None, rules: Rules = DEFAULT_RULES) -> int:
    """Vision blocks per process are a multiple of this, so the slots of all processes split
    evenly over the batch devices (each process's slots on its own devices)."""
    n, nproc = batch_devices(mesh, rules), jax.process_count()
    return max(1, n // nproc) if n % nproc == 0 else n


def host_vision(grids: Mapping[str, Sequence[np.ndarray | None]], vision_config,
                multiple: int = 1, buckets: VisionBuckets = DEFAULT_BUCKETS
                ) -> dict[str, tuple[list[VisionInputs], VisionInputs]]:
    """{modality: (per-process VisionInputs, global VisionInputs)} for the modalities present.

    The one host function that decides vision shapes: place_batch and seeker_jax.aot.fit both call
    it (vision_config: the model's VisionConfig; grids as gather_grids gives them).
    """
    out = {}
    for name, _, _ in MODALITIES:
        built = global_vision_inputs(grids[name], merge=vision_config.spatial_merge_size,
                                     side=vision_config.num_grid_per_side, buckets=buckets,
                                     block_multiple=multiple)
        if built is not None:
            out[name] = built
    return out


def _replicated(x: np.ndarray, mesh: Mesh | None) -> jax.Array:
    """A host array every process holds whole, as a replicated global array."""
    if mesh is None:
        return jax.device_put(x)  # (jnp.asarray would compile a copy per shape)
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def place_batch(batch: Batch | Mapping[str, np.ndarray], model, mesh: Mesh | None,
                rules: Rules = DEFAULT_RULES, buckets: VisionBuckets = DEFAULT_BUCKETS
                ) -> tuple[dict[str, jax.Array], Vision]:
    """Host batch (a Batch, or padded token arrays for from_arrays) -> (global device arrays,
    Vision).

    Adds MRoPE position_ids (3, B, L), computed on the host. Arrays are sharded over the
    "batch" logical axis on the dimension seeker_jax.data.batch.batch_dim names; each process
    passes its own rows (jax.make_array_from_process_local_data). With several processes the
    token length and loss positions are padded to the largest any process has (one small
    all-gather), since a global array needs one shape.

    Vision (seeker_jax.training.vision_batch): the grids of every process are gathered, each process
    packs its own into agreed (S, B) blocks of a bucket, pixel values become slot-layout rows
    (n_procs * B * S, 1536) sharded by process over the block axis, and Vision holds the
    global VisionInputs (replicated device arrays), the same on every process.
    """
    if not isinstance(batch, Batch):
        batch = from_arrays(batch)
    if jax.process_count() > 1:
        batch = agree_across_processes(batch)
    positions, _ = model.get_rope_index(batch.input_ids, batch.mm_token_type_ids,
                                        batch.image_grid_thw, batch.video_grid_thw,
                                        batch.attention_mask)
    host = batch.arrays()
    host["position_ids"] = positions.astype(np.int32)
    vcfg = model.config.vision
    built = host_vision(gather_grids(batch), vcfg, block_multiple(mesh, rules), buckets)
    me = jax.process_index()
    inputs = {}
    for name, pixel_key, _ in MODALITIES:
        if name in built:
            parts, inputs[name] = built[name]
            host[pixel_key] = slot_pixels(batch[pixel_key], parts[me], vcfg.patch_dim)
    vision = Vision(*(None if (x := inputs.get(name)) is None else
                      VisionInputs(*(_replicated(np.asarray(a), mesh) for a in x))
                      for name, _, _ in MODALITIES))
    if mesh is None:
        return jax.device_put(host), vision
    nproc = jax.process_count()
    out = {}
    for k, v in host.items():
        shape = list(v.shape)
        dim = batch_dim(k)
        shape[dim] *= nproc
        axes = [None] * len(shape)
        axes[dim] = "batch"
        sharding = array_sharding(mesh, axes, shape, rules)
        out[k] = jax.make_array_from_process_local_data(sharding, v, tuple(shape))
    return out, vision


__all__ = ["TrainState", "Vision", "agree_across_processes", "batch_devices", "block_multiple",
           "create_train_state", "gather_grids", "host_vision", "jit_train_step",
           "make_eval_step", "make_train_step", "place_batch", "train_step_fn",
           "trainable_filter", "with_vision"]
