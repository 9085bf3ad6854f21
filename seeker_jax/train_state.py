"""Train state and the jitted train step for any loss, sharded over a (data, fsdp, tensor) mesh.

The model is split once into a graph definition and three states:
  trainable  Params that get gradients (all of them, or all but `model.visual` when frozen)
  frozen     the other Params (no gradients, no optimizer state)
  rest       every non-Param variable
Only `trainable` and its optimizer state change in a step. Every array is placed by the
logical-axis rules of seeker_jax.sharding; the batch is sharded over ("data", "fsdp").

Loss: any registered `loss_fn(model, batch) -> (loss, aux)` of seeker_jax.losses ("sft" is
next-token cross entropy on learned tokens); the batch is a seeker_jax.data.batch.Batch placed
by place_batch, which also returns the vision metadata (Vision) the step is specialized on.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from seeker_jax.data.batch import Batch, batch_dim, from_arrays, pad_to
from seeker_jax.losses import LossFn, get_loss
from seeker_jax.models.qwen3_vl.modeling import grid_key
from seeker_jax.sharding import DEFAULT_RULES, Rules, array_sharding, model_shardings

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
    """The vision metadata a step is specialized on: hashable (t, h, w) grid rows per modality
    (None when the batch has none). place_batch makes it and with_vision hands it to the loss:
    the only two places that know how grids travel (static jit arguments today)."""

    image_grid: tuple | None = None
    video_grid: tuple | None = None


def with_vision(batch: dict[str, jax.Array], vision: Vision) -> dict[str, Any]:
    """The batch a loss reads: the placed arrays plus the grids as (n, 3) host arrays."""
    return {**batch,
            "image_grid_thw": None if vision.image_grid is None else np.array(vision.image_grid),
            "video_grid_thw": None if vision.video_grid is None else np.array(vision.video_grid)}


def train_step_fn(tx: optax.GradientTransformation, loss_fn: str | LossFn = "sft") -> Callable:
    """The un-jitted step(graphdef, trainable, frozen, rest, opt_state, batch, vision) ->
    (trainable, opt_state, metrics) for any registered loss (seeker_jax.losses).

    metrics: "loss", the loss's aux metrics, "grad_norm". jit_train_step jits it,
    seeker_jax.aot compiles it ahead of time for TPU topologies; graphdef and vision are static.
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
    """train_step_fn(tx, loss_fn) under jax.jit as training runs it: graphdef and vision
    static, old trainable params and optimizer state donated, outputs placed like the inputs."""
    return jax.jit(train_step_fn(tx, loss_fn), static_argnums=(0, 6), donate_argnums=(1, 4),
                   out_shardings=(trainable_shardings, opt_shardings, None))


def make_train_step(tx: optax.GradientTransformation, loss_fn: str | LossFn = "sft"):
    """A jitted step(state, batch, vision) -> metrics that updates `state` in place.

    One compile per (shapes, vision) signature. Donates the old trainable params and
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

    jitted = jax.jit(ev, static_argnums=(0, 5))
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


def place_batch(batch: Batch | Mapping[str, np.ndarray], model, mesh: Mesh | None,
                rules: Rules = DEFAULT_RULES) -> tuple[dict[str, jax.Array], Vision]:
    """Host batch (a Batch, or padded token arrays for from_arrays) -> (global device arrays,
    Vision).

    Adds MRoPE position_ids (3, B, L), computed on the host. Arrays are sharded over the
    "batch" logical axis on the dimension seeker_jax.data.batch.batch_dim names; each process
    passes its own rows (jax.make_array_from_process_local_data). Pixel rows are sharded the
    same way when every device gets whole rows, else replicated. With several processes the
    token length and loss positions are padded to the largest any process has (one small
    all-gather), since a global array needs one shape. Grids are the process's own,
    repeated per process: multi-host runs need the same grid signature on every process (true
    when a bucket holds one signature).
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
    nproc = jax.process_count()
    vision = Vision(*(None if batch[k] is None else grid_key(np.tile(batch[k], (nproc, 1)))
                      for k in ("image_grid_thw", "video_grid_thw")))
    if mesh is None:
        return {k: jnp.asarray(v) for k, v in host.items()}, vision
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


__all__ = ["TrainState", "Vision", "agree_across_processes", "create_train_state", "jit_train_step", "make_eval_step",
           "make_train_step", "place_batch", "train_step_fn", "trainable_filter", "with_vision"]
