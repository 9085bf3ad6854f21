"""Train state and the jitted SFT step, sharded over a (data, fsdp, tensor) mesh.

The model is split once into a graph definition and three states:
  trainable  Params that get gradients (all of them, or all but `model.visual` when frozen)
  frozen     the other Params (no gradients, no optimizer state)
  rest       every non-Param variable
Only `trainable` and its optimizer state change in a step. Every array is placed by the
logical-axis rules of seeker_jax.sharding; the batch is sharded over ("data", "fsdp").

Loss: next-token cross entropy on tokens whose loss_mask is 1, averaged over those tokens.
The vocabulary projection runs in sequence chunks, so (B, L, vocab) logits never exist at
once (151,936 columns make them the largest tensor of a small model), and its gradients are
formed in the same pass (a fused cross entropy): no recomputed logits in backward.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

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


def _lm_head_weight(model) -> tuple[jax.Array, bool]:
    """(weight, transposed): logits = h @ W (untied, (D, V)) or h @ W.T (tied, (V, D))."""
    if model.lm_head is None:
        return model.model.language_model.embed_tokens.embedding[...], True
    return model.lm_head.kernel[...], False


def _chunk_nll(h, w, transposed, y):
    """(B, c, V) float32 logits, their logsumexp and the NLL of labels y (B, c)."""
    logits = jnp.einsum("bcd,vd->bcv" if transposed else "bcd,dv->bcv", h, w,
                        preferred_element_type=jnp.float32)
    lse = jax.nn.logsumexp(logits, -1)
    return logits, lse, lse - jnp.take_along_axis(logits, y[..., None], -1)[..., 0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _fused_nll_sum(hs, w, transposed, ys, ms):
    """Sum over chunks of masked NLL; hs (n, B, c, D), ys / ms (n, B, c)."""
    return jax.lax.map(lambda a: jnp.sum(_chunk_nll(a[0], w, transposed, a[1])[2] * a[2]),
                       (hs, ys, ms)).sum()


def _fused_fwd(hs, w, transposed, ys, ms):
    """Forward that also forms both gradients, chunk by chunk: d(sum)/dlogits is
    (softmax - onehot) * mask, known as soon as the chunk's logits are; so backward needs no
    logits (no (n, B, c, V) residual) and no second vocabulary projection."""
    V = w.shape[0] if transposed else w.shape[1]

    def one(dw, args):
        h, y, m = args
        logits, lse, nll = _chunk_nll(h, w, transposed, y)
        d = jnp.exp(logits - lse[..., None]) - (jnp.arange(V) == y[..., None])
        d = (d * m[..., None]).astype(h.dtype)
        dh = jnp.einsum("bcv,vd->bcd" if transposed else "bcv,dv->bcd", d, w)
        dw = dw + jnp.einsum("bcv,bcd->vd" if transposed else "bcd,bcv->dv",
                             *((d, h) if transposed else (h, d)),
                             preferred_element_type=jnp.float32)
        return dw, (jnp.sum(nll * m), dh)

    dw, (totals, dhs) = jax.lax.scan(one, jnp.zeros(w.shape, jnp.float32), (hs, ys, ms))
    return totals.sum(), (dhs, dw.astype(w.dtype))


def _fused_bwd(transposed, res, g):
    dhs, dw = res
    return (g * dhs).astype(dhs.dtype), (g * dw).astype(dw.dtype), None, None


_fused_nll_sum.defvjp(_fused_fwd, _fused_bwd)


def chunked_token_loss(hidden: jax.Array, weight: jax.Array, transposed: bool, labels: jax.Array,
                       mask: jax.Array, chunk: int = 256) -> tuple[jax.Array, jax.Array]:
    """Sum of masked next-token NLL and the count of masked tokens.

    hidden (B, L, D) predicts labels (B, L); mask (B, L) in {0, 1} (not differentiated).
    Logits are fp32-accumulated products of `hidden.dtype` operands, `chunk` positions at a
    time. Under differentiation the gradients are formed in the forward pass (a fused
    cross entropy): three vocabulary-sized matmuls per step, like an unchunked loss, with
    only one chunk's logits alive at once.
    """
    B, L, D = hidden.shape
    chunk = min(chunk, L)
    pad = (-L) % chunk
    if pad:
        hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
        labels, mask = jnp.pad(labels, ((0, 0), (0, pad))), jnp.pad(mask, ((0, 0), (0, pad)))
    n = hidden.shape[1] // chunk
    hs = hidden.reshape(B, n, chunk, D).swapaxes(0, 1)
    ys, ms = (a.reshape(B, n, chunk).swapaxes(0, 1) for a in (labels, mask))
    total = _fused_nll_sum(hs, weight.astype(hidden.dtype), transposed, ys,
                           jax.lax.stop_gradient(ms.astype(jnp.float32)))
    return total, jnp.sum(mask)


def sft_loss(model, batch: dict[str, jax.Array], image_grid, video_grid) -> tuple[jax.Array, jax.Array]:
    """(mean masked NLL, masked token count) of one batch.

    batch["loss_index"] (B, K) lists the positions t whose next token t+1 is learned (its
    loss_mask is 1), padded with weight 0 (batch["loss_weight"]); only those K positions go
    through the vocabulary projection.
    """
    out = model(batch["input_ids"], batch["attention_mask"], batch["position_ids"],
                batch.get("pixel_values"), image_grid, batch.get("pixel_values_videos"),
                video_grid, compute_logits=False)
    index = batch["loss_index"]
    hidden = jnp.take_along_axis(out.last_hidden_state, index[..., None], axis=1)
    labels = jnp.take_along_axis(batch["input_ids"], index + 1, axis=1)
    weight, transposed = _lm_head_weight(model)
    total, count = chunked_token_loss(hidden, weight, transposed, labels,
                                      batch["loss_weight"].astype(jnp.float32))
    return total / jnp.maximum(count, 1.0), count


def loss_positions(loss_mask: np.ndarray, attention_mask: np.ndarray, multiple: int = 128
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Host side of sft_loss: (B, K) positions predicting a learned token, and their weights.

    K is the largest count in the batch rounded up to `multiple` (few compile signatures).
    """
    learned = (loss_mask[:, 1:] * attention_mask[:, 1:]) > 0
    counts = learned.sum(1)
    K = max(multiple, -(-int(counts.max()) // multiple) * multiple)
    index = np.zeros((len(learned), K), np.int32)
    weight = np.zeros((len(learned), K), np.float32)
    for b, row in enumerate(learned):
        pos = np.flatnonzero(row)
        index[b, :len(pos)], weight[b, :len(pos)] = pos, 1.0
    return index, weight


def train_step_fn(tx: optax.GradientTransformation) -> Callable:
    """The un-jitted SFT step(graphdef, trainable, frozen, rest, opt_state, batch, image_grid,
    video_grid) -> (trainable, opt_state, metrics); make_train_step jits it, seeker_jax.aot
    compiles it ahead of time for TPU topologies. graphdef and the grids are static."""
    def step(graphdef, trainable, frozen, rest, opt_state, batch, image_grid, video_grid):
        image_grid = None if image_grid is None else np.array(image_grid)
        video_grid = None if video_grid is None else np.array(video_grid)

        def loss_fn(params):
            model = nnx.merge(graphdef, params, frozen, rest)
            return sft_loss(model, batch, image_grid, video_grid)

        (loss, count), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
        updates, opt_state = tx.update(grads, opt_state, trainable)
        trainable = optax.apply_updates(trainable, updates)
        metrics = {"loss": loss, "loss_tokens": count, "grad_norm": optax.global_norm(grads)}
        return trainable, opt_state, metrics

    return step


def jit_train_step(tx: optax.GradientTransformation, trainable_shardings, opt_shardings):
    """train_step_fn(tx) under jax.jit as training runs it: graphdef and grids static, old
    trainable params and optimizer state donated, outputs placed like the inputs."""
    return jax.jit(train_step_fn(tx), static_argnums=(0, 6, 7), donate_argnums=(1, 4),
                   out_shardings=(trainable_shardings, opt_shardings, None))


def make_train_step(tx: optax.GradientTransformation):
    """A jitted step(state_arrays, batch, grids) -> (new arrays, metrics).

    Grids are static (host tuples): one compile per vision-grid signature. Donates the old
    trainable params and optimizer state.
    """
    compiled: dict[str, Callable] = {}

    def run(state: TrainState, batch: dict[str, jax.Array], image_grid, video_grid):
        if "step" not in compiled:  # outputs keep the inputs' shardings: one executable
            shardings = jax.tree.map(lambda x: x.sharding, (state.trainable, state.opt_state))
            compiled["step"] = jit_train_step(tx, *shardings)
        trainable, opt_state, metrics = compiled["step"](
            state.graphdef, state.trainable, state.frozen, state.rest, state.opt_state, batch,
            image_grid, video_grid)
        state.trainable, state.opt_state, state.step = trainable, opt_state, state.step + 1
        return metrics

    return run


def make_eval_step():
    """A jitted (mean loss, token count) on one batch, no gradients."""
    def ev(graphdef, trainable, frozen, rest, batch, image_grid, video_grid):
        model = nnx.merge(graphdef, trainable, frozen, rest)
        return sft_loss(model, batch, None if image_grid is None else np.array(image_grid),
                        None if video_grid is None else np.array(video_grid))

    jitted = jax.jit(ev, static_argnums=(0, 5, 6))
    return lambda state, batch, ig, vg: jitted(state.graphdef, state.trainable, state.frozen,
                                               state.rest, batch, ig, vg)


def place_batch(batch: dict[str, np.ndarray], model, mesh: Mesh | None,
                rules: Rules = DEFAULT_RULES) -> tuple[dict[str, jax.Array], tuple | None, tuple | None]:
    """Host batch -> (global device arrays, image grids, video grids).

    Adds MRoPE position_ids (3, B, L), computed on the host. Token arrays are sharded over the
    "batch" logical axis; each process passes its own rows (jax.make_array_from_process_local_data).
    Pixel rows are sharded the same way when every device gets whole rows, else replicated.
    Grids are the process's own, repeated per process: multi-host runs need the same grid
    signature on every process (true when a bucket holds one signature).
    """
    positions, _ = model.get_rope_index(batch["input_ids"], batch["mm_token_type_ids"],
                                        batch.get("image_grid_thw"), batch.get("video_grid_thw"),
                                        batch["attention_mask"])
    host = {k: v for k, v in batch.items() if k not in ("image_grid_thw", "video_grid_thw")}
    host["position_ids"] = positions.astype(np.int32)
    host["loss_index"], host["loss_weight"] = loss_positions(batch["loss_mask"],
                                                             batch["attention_mask"])
    nproc = jax.process_count()
    grids = tuple(None if batch.get(k) is None else grid_key(np.tile(batch[k], (nproc, 1)))
                  for k in ("image_grid_thw", "video_grid_thw"))
    if mesh is None:
        return {k: jnp.asarray(v) for k, v in host.items()}, *grids
    out = {}
    for k, v in host.items():
        shape = list(v.shape)
        batch_dim = 1 if k == "position_ids" else 0
        shape[batch_dim] *= nproc
        axes = [None] * len(shape)
        axes[batch_dim] = "batch"
        sharding = array_sharding(mesh, axes, shape, rules)
        out[k] = jax.make_array_from_process_local_data(sharding, v, tuple(shape))
    return out, *grids


__all__ = ["TrainState", "chunked_token_loss", "loss_positions", "create_train_state", "make_eval_step",
           "jit_train_step", "make_train_step", "place_batch", "sft_loss", "train_step_fn",
           "trainable_filter"]
