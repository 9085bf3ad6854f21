"""Trainer plumbing shared by SFT and GRPO: processes, mesh, model, checkpoints, metrics.

A training checkpoint is a dict of named items in an orbax CheckpointManager step:
  params     the params item of seeker_jax.checkpointing.checkpoint (what `export` reads)
  opt_state  optimizer state leaves
  data       the data iterator's state (Grain get_state())
  meta       {"step", "rng"}
and whatever a trainer adds by name (GRPO: rollout RNG, prompt order, reference params). Each
item is an `ArrayItem` (a pytree of arrays, restored into the shapes and shardings of the
tree given) or a `JsonItem`. `state_items` / `load_state_items` are the four standard items.

metrics.jsonl is rewritten on resume to the rows up to the restored step, so steps replayed
after a kill are logged once, never twice (TensorBoard events are purged the same way).
"""
from __future__ import annotations

import contextlib

import dataclasses
import json
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from seeker_jax.checkpointing import checkpoint as ckpt
from seeker_jax.sharding import Rules, attention_axes
from seeker_jax.training.train_state import TrainState, trainable_filter

METRICS_FILE = "metrics.jsonl"


def maybe_initialize_distributed() -> None:
    """jax.distributed.initialize() when the environment describes a multi-process job."""
    if any(os.environ.get(k) for k in ("JAX_COORDINATOR_ADDRESS", "COORDINATOR_ADDRESS",
                                        "TPU_WORKER_HOSTNAMES", "SLURM_NTASKS")):
        if jax.process_count() == 1 and not jax.distributed.is_initialized():
            jax.distributed.initialize()


def resolve_mesh_shape(c: ml_collections.ConfigDict, num_devices: int) -> dict[str, int]:
    """{"data", "fsdp", "tensor"} sizes; one -1 entry takes the devices the others leave."""
    shape = {"data": int(c.data), "fsdp": int(c.fsdp), "tensor": int(c.tensor)}
    free = [k for k, v in shape.items() if v == -1]
    if len(free) > 1:
        raise ValueError(f"mesh: at most one axis may be -1, got {shape}")
    known = int(np.prod([v for v in shape.values() if v != -1]))
    if free:
        if num_devices % known:
            raise ValueError(f"mesh {shape}: {num_devices} devices are not a multiple of {known}")
        shape[free[0]] = num_devices // known
    if int(np.prod(list(shape.values()))) != num_devices:
        raise ValueError(f"mesh {shape} needs {np.prod(list(shape.values()))} devices; "
                         f"there are {num_devices}: set one axis to -1")
    return shape


def mesh_context(mesh, attention_impl: str):
    """`jax.set_mesh(mesh)` when attention runs as splash (a Mosaic kernel cannot be
    partitioned by GSPMD: it runs under shard_map over the context mesh), else a no-op
    context. attention_impl as in the model config ("auto" resolved for this backend)."""
    from seeker_jax.models.qwen3_vl.attention import resolve_impl

    if mesh is None or resolve_impl(attention_impl) != "splash":
        return contextlib.nullcontext()
    return jax.set_mesh(mesh)


def under_mesh(fn, mesh, attention_impl: str):
    """`fn` run (and so traced) inside mesh_context(mesh, attention_impl)."""
    def call(*args, **kwargs):
        with mesh_context(mesh, attention_impl):
            return fn(*args, **kwargs)

    return call


def build_model(c: ml_collections.ConfigDict, rules: Rules):
    """(model, cfg) from a checkpoint (init_from) or random init of a configs/qwen3_vl.py size.
    rules: the run's sharding rules; attention kernels under shard_map take their mesh axes
    from them (sharding.attention_axes)."""
    from flax import nnx

    from seeker_jax.config import load_config
    from seeker_jax.models.qwen3_vl.config import from_hf_dict
    from seeker_jax.models.qwen3_vl.modeling import Qwen3VLForConditionalGeneration

    compute, param = jnp.dtype(c.compute_dtype), jnp.dtype(c.param_dtype)
    scan = bool(c.get("scan_layers", False))  # configs written before the option lack it
    attention = c.get("attention_impl", "auto")  # likewise
    axes = attention_axes(rules)
    if c.init_from:
        model = ckpt.load_model(c.init_from, dtype=param, compute_dtype=compute, remat=c.remat,
                                scan_layers=scan, attention_impl=attention, attention_axes=axes)
        return model, model.config
    cfg = from_hf_dict(load_config(f"configs/qwen3_vl.py:{c.size}").to_dict()).replace(
        attention_impl=attention, attention_axes=axes)
    model = Qwen3VLForConditionalGeneration(cfg, dtype=compute, param_dtype=param,
                                            rngs=nnx.Rngs(0), remat=c.remat, scan_layers=scan)
    return model, cfg


# ---------------------------------------------------------------- checkpoints

@dataclasses.dataclass
class ArrayItem:
    """A pytree of jax arrays; restore reads into the shapes, dtypes and shardings of `tree`."""

    tree: Any


@dataclasses.dataclass
class JsonItem:
    """A JSON-able value (restore ignores it: the stored one comes back)."""

    value: Any = None


Item = ArrayItem | JsonItem


def _save_args(items: Mapping[str, Item]) -> ocp.args.Composite:
    return ocp.args.Composite(**{
        name: ocp.args.StandardSave(it.tree) if isinstance(it, ArrayItem)
        else ocp.args.JsonSave(it.value) for name, it in items.items()})


def _restore_args(items: Mapping[str, Item]) -> ocp.args.Composite:
    abstract = lambda tree: jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)  # noqa: E731
    return ocp.args.Composite(**{
        name: ocp.args.StandardRestore(abstract(it.tree)) if isinstance(it, ArrayItem)
        else ocp.args.JsonRestore() for name, it in items.items()})


def open_manager(workdir: str, cfg, keep: int, *, assets_from: str | None = None, env=None,
                 tokenizer: str | None = None) -> ocp.CheckpointManager:
    """The run's CheckpointManager at WORKDIR/checkpoints. Beside the steps it writes
    model_config.json (with the HF assets of `assets_from`, e.g. the tokenizer files) and, given
    an EnvConfig, env_config.json: what evaluation and serving replay."""
    root = os.path.abspath(os.path.join(workdir, "checkpoints"))
    if jax.process_index() == 0:
        ckpt.write_model_config(root, cfg, assets_from=assets_from)
        if env is not None:
            ckpt.write_env_config(root, env, tokenizer)
    return ocp.CheckpointManager(root, options=ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True))


def save_checkpoint(manager: ocp.CheckpointManager, step: int, items: Mapping[str, Item]) -> None:
    """Starts an (asynchronous) save of the named items; every process must call it."""
    manager.save(step, args=_save_args(items))


def restore_checkpoint(manager: ocp.CheckpointManager, step: int, like: Mapping[str, Item]
                       ) -> dict[str, Any]:
    """{name: restored value} of step's items named in `like` (targets for the arrays).

    A step that cannot be read (damaged disk, truncated file) is a RuntimeError naming it and
    the fallback, never skipped silently.
    """
    try:
        restored = manager.restore(step, args=_restore_args(like))
    except Exception as e:  # noqa: BLE001 - any failure here means the same to the user
        where = os.path.join(str(manager.directory), str(step))
        earlier = [s for s in manager.all_steps() if s < step]
        reason = " ".join(str(e).split())
        fallback = (f"delete {where} to resume from step {max(earlier)}" if earlier else
                    f"delete {where} to start over")
        raise RuntimeError(f"checkpoint step {step} in {manager.directory} could not be restored "
                           f"({type(e).__name__}: {reason[:200]}); it is damaged or incomplete: "
                           f"{fallback}") from e
    return {name: restored[name] for name in like}


def state_items(state: TrainState, data_iter, step: int, rng: jax.Array) -> dict[str, Item]:
    """The four standard items of a training checkpoint (module docstring)."""
    return {
        "params": ArrayItem(ckpt.params_tree(state.model())),
        "opt_state": ArrayItem({str(i): x for i, x in enumerate(jax.tree.leaves(state.opt_state))}),
        "data": JsonItem(None if data_iter is None else data_iter.get_state()),
        "meta": JsonItem({"step": step, "rng": np.asarray(jax.random.key_data(rng)).tolist()}),
    }


def load_state_items(restored: Mapping[str, Any], state: TrainState, data_iter,
                     freeze_vision: bool) -> tuple[int, jax.Array]:
    """Writes restored standard items into `state` and `data_iter`; returns (step, rng)."""
    from flax import nnx

    model = state.model()
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        var.set_value(restored["params"][ckpt.param_key(path)])
    _, state.trainable, state.frozen, state.rest = nnx.split(
        model, trainable_filter(freeze_vision), nnx.Param, ...)
    opt = restored["opt_state"]
    state.opt_state = jax.tree.unflatten(jax.tree.structure(state.opt_state),
                                         [opt[str(i)] for i in range(len(opt))])
    if data_iter is not None:
        data_iter.set_state(restored["data"])
    state.step = int(restored["meta"]["step"])
    return state.step, jax.random.wrap_key_data(jnp.asarray(restored["meta"]["rng"], jnp.uint32))


def restore_latest(manager: ocp.CheckpointManager, state: TrainState, data_iter, rng: jax.Array,
                   freeze_vision: bool, extra: Mapping[str, Item] | None = None
                   ) -> tuple[int, jax.Array, dict[str, Any]]:
    """Loads the latest step (if any) into state / data_iter: (step, rng, extra items restored).

    No checkpoint: (0, rng, {}) and nothing changes; otherwise it prints "resuming from
    step N".
    """
    step = manager.latest_step()
    if step is None:
        return 0, rng, {}
    like = {**state_items(state, data_iter, step, rng), **(extra or {})}
    restored = restore_checkpoint(manager, step, like)
    step, rng = load_state_items(restored, state, data_iter, freeze_vision)
    if jax.process_index() == 0:
        print(f"resuming from step {step} ({manager.directory})", flush=True)
    return step, rng, {k: restored[k] for k in (extra or {})}


# ---------------------------------------------------------------- metrics

def truncate_metrics(path: str, last_step: int) -> int:
    """Keeps the rows of a metrics.jsonl with step <= last_step (atomic rewrite); returns the
    number of rows dropped. A torn last line (a kill mid-write) is dropped too."""
    if not os.path.isfile(path):
        return 0
    kept, dropped = [], 0
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                dropped += 1
                continue
            if int(row.get("step", 0)) <= last_step:
                kept.append(json.dumps(row))
            else:
                dropped += 1
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("".join(line + "\n" for line in kept))
    os.replace(tmp, path)
    return dropped


class MetricsWriter:
    """metrics.jsonl and TensorBoard, written by process 0 only.

    resume_step: the step the run continues from (0 for a fresh start); rows and events past
    it (logged by a run killed after its last checkpoint) are dropped before writing resumes.
    A row that shows nothing is learned (zero reward, zero gradient) warns once
    (training/silence.py).
    """

    def __init__(self, workdir: str, resume_step: int = 0):
        from seeker_jax.training.silence import SilenceWatch

        self.active = jax.process_index() == 0
        self.watch = SilenceWatch()  # warns once when a row says nothing is learned
        if self.active:
            from tensorboardX import SummaryWriter
            path = os.path.join(workdir, METRICS_FILE)
            truncate_metrics(path, resume_step)
            self.file = open(path, "a")
            self.tb = SummaryWriter(os.path.join(workdir, "tb"), purge_step=resume_step + 1)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not self.active:
            return
        self.file.write(json.dumps({"step": step, **metrics}) + "\n")
        self.file.flush()
        self.watch(step, metrics)
        for k, v in metrics.items():
            self.tb.add_scalar(k, v, step)

    def text(self, step: int, tag: str, text: str) -> None:
        """A text to TensorBoard (its Text tab), shown as written: every line is indented
        four spaces, so Markdown reads it as one preformatted block (model output is never
        rendered as markup)."""
        if self.active:
            self.tb.add_text(tag, "\n".join("    " + line for line in text.splitlines()), step)

    def close(self) -> None:
        if self.active:
            self.file.close()
            self.tb.close()


__all__ = ["ArrayItem", "Item", "JsonItem", "METRICS_FILE", "MetricsWriter", "build_model",
           "load_state_items", "maybe_initialize_distributed", "mesh_context", "open_manager",
           "resolve_mesh_shape", "restore_checkpoint", "restore_latest", "save_checkpoint",
           "state_items", "truncate_metrics", "under_mesh"]
