"""SFT trainer: teacher tool trajectories -> sharded jitted steps -> orbax checkpoints.

`seeker-jax sft --config configs/sft.py:tiny_synth --workdir W`. The same command continues a
killed run exactly: the latest checkpoint restores params, optimizer state, the data
iterator's position, the RNG and the step, so the batches and losses after a restart are the
ones an uninterrupted run would have seen. A latest checkpoint that cannot be read (a
damaged disk, a hand-truncated file) is an error naming it, never skipped silently: delete that
step's directory to resume from the one before.

Workdir:
  config.json                 the resolved config
  metrics.jsonl               {"step", "loss", "tokens_per_s", "lr", "grad_norm", "step_time"}
                              per logged step, {"step", "val_loss"} per evaluation
  tb/                         the same as TensorBoard events
  checkpoints/model_config.json, checkpoints/env_config.json (c.env + c.tokenizer),
  checkpoints/<step>/{params,opt_state,data,meta}
                              (seeker_jax.checkpoint's layout: `seeker-jax export --ckpt W`)
  data/                       the synthetic world, when the config asks for one
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from seeker_jax import checkpoint as ckpt
from seeker_jax.config import to_json
from seeker_jax.data.trajectories import TrajectoryConfig, make_loader
from seeker_jax.optim import make_optimizer, make_schedule
from seeker_jax.env.config import EnvConfig
from seeker_jax.models.tokenizer import tokenizer_from_config
from seeker_jax.sharding import make_mesh, rules_from_config
from seeker_jax.train_state import (TrainState, create_train_state, make_eval_step,
                                    make_train_step, place_batch)


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


def build_model(c: ml_collections.ConfigDict):
    """(model, cfg) from a checkpoint (init_from) or random init of a configs/qwen3_vl.py size."""
    from seeker_jax.models.qwen3_vl.config import from_hf_dict
    from seeker_jax.models.qwen3_vl.modeling import Qwen3VLForConditionalGeneration
    from flax import nnx

    compute, param = jnp.dtype(c.compute_dtype), jnp.dtype(c.param_dtype)
    if c.init_from:
        model = ckpt.load_model(c.init_from, dtype=param, compute_dtype=compute, remat=c.remat)
        return model, model.config
    from seeker_jax.config import load_config
    cfg = from_hf_dict(load_config(f"configs/qwen3_vl.py:{c.size}").to_dict())
    model = Qwen3VLForConditionalGeneration(cfg, dtype=compute, param_dtype=param,
                                            rngs=nnx.Rngs(0), remat=c.remat)
    return model, cfg


def prepare_data(config: ml_collections.ConfigDict, workdir: str) -> str:
    """The dataset root: config.data.root, or a synthetic world made once in WORKDIR/data."""
    if config.data.root:
        return config.data.root
    root = os.path.join(workdir, "data")
    if jax.process_index() == 0 and not os.path.isfile(os.path.join(root, "records", "train.array_record")):
        from seeker_jax.config import load_config
        from seeker_jax.data.synth import synthesize
        synthesize(root, config.data.synth_num, config.seed,
                   load_config(f"configs/synth.py:{config.data.synth_preset}"))
    return root


def _checkpoint_args(state: TrainState, model, data_iter, step: int, rng: jax.Array, save: bool):
    """The CheckpointManager items of a training checkpoint (save, or restore into the current
    arrays' shapes and shardings)."""
    opt_leaves = {str(i): x for i, x in enumerate(jax.tree.leaves(state.opt_state))}
    if save:
        return ocp.args.Composite(
            params=ocp.args.StandardSave(ckpt.params_tree(model)),
            opt_state=ocp.args.StandardSave(opt_leaves),
            data=ocp.args.JsonSave(data_iter.get_state()),
            meta=ocp.args.JsonSave({"step": step, "rng": np.asarray(
                jax.random.key_data(rng)).tolist()}))
    abstract = lambda tree: jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)  # noqa: E731
    return ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract(ckpt.params_tree(model))),
        opt_state=ocp.args.StandardRestore(abstract(opt_leaves)),
        data=ocp.args.JsonRestore(), meta=ocp.args.JsonRestore())


def _restore(manager, state: TrainState, data_iter, rng, freeze_vision: bool):
    """Loads the latest checkpoint into `state` and `data_iter`; returns (step, rng)."""
    from flax import nnx

    from seeker_jax.train_state import trainable_filter

    step = manager.latest_step()
    model = state.model()
    try:
        restored = manager.restore(step, args=_checkpoint_args(state, model, data_iter, step, rng,
                                                               False))
    except Exception as e:  # noqa: BLE001 - any failure here means the same to the user
        where = os.path.join(str(manager.directory), str(step))
        earlier = [s for s in manager.all_steps() if s < step]
        reason = " ".join(str(e).split())
        fallback = (f"delete {where} to resume from step {max(earlier)}" if earlier else
                    f"delete {where} to start over")
        raise RuntimeError(f"checkpoint step {step} in {manager.directory} could not be restored "
                           f"({type(e).__name__}: {reason[:200]}); it is damaged or incomplete: "
                           f"{fallback}") from e
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        var.set_value(restored.params[ckpt.param_key(path)])
    _, state.trainable, state.frozen, state.rest = nnx.split(
        model, trainable_filter(freeze_vision), nnx.Param, ...)
    leaves = [restored.opt_state[str(i)] for i in range(len(restored.opt_state))]
    state.opt_state = jax.tree.unflatten(jax.tree.structure(state.opt_state), leaves)
    data_iter.set_state(restored.data)
    state.step = int(restored.meta["step"])
    return state.step, jax.random.wrap_key_data(jnp.asarray(restored.meta["rng"], jnp.uint32))


class MetricsWriter:
    """metrics.jsonl (append) and TensorBoard, written by process 0 only."""

    def __init__(self, workdir: str):
        self.active = jax.process_index() == 0
        if self.active:
            from tensorboardX import SummaryWriter
            self.file = open(os.path.join(workdir, "metrics.jsonl"), "a")
            self.tb = SummaryWriter(os.path.join(workdir, "tb"))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not self.active:
            return
        self.file.write(json.dumps({"step": step, **metrics}) + "\n")
        self.file.flush()
        for k, v in metrics.items():
            self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.active:
            self.file.close()
            self.tb.close()


def evaluate(eval_step, state: TrainState, model, mesh, batches: list[dict],
             rules=None) -> float:
    """Token-weighted mean loss over fixed validation batches."""
    total = count = 0.0
    for batch in batches:
        placed, ig, vg = place_batch(batch, model, mesh, *([rules] if rules else []))
        loss, n = eval_step(state, placed, ig, vg)
        total += float(loss) * float(n)
        count += float(n)
    return total / max(count, 1.0)


def validation_batches(root: str, c: ml_collections.ConfigDict, tcfg: TrajectoryConfig) -> list:
    """The first c.val_batches batches of the val split, fixed for the whole run ([] if none)."""
    import itertools

    from seeker_jax.data.records import split_path
    if c.val_batches <= 0 or not split_path(root, "val").is_file():
        return []
    loader = make_loader(root, "val", c.batch_size, tcfg, shuffle=False, num_epochs=1,
                         prefetch=c.prefetch)
    return list(itertools.islice(iter(loader), c.val_batches))


def train(config: ml_collections.ConfigDict, workdir: str, *, stop_after: int | None = None,
          progress: bool = True) -> list[dict[str, Any]]:
    """Runs (or resumes) SFT; returns the metrics logged by this call.

    stop_after: leave after that many steps of this call (a simulated kill, for tests);
    checkpoints are written as configured, so the next call resumes from the last one.
    """
    from tqdm import tqdm

    maybe_initialize_distributed()
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(to_json(config))
    root = prepare_data(config, workdir)
    mesh = make_mesh(resolve_mesh_shape(config.mesh, jax.device_count()))
    rules = rules_from_config(config.mesh.rules)
    env = EnvConfig.from_config(config.env)
    model_dir = ckpt.find_params(config.model.init_from).config_dir if config.model.init_from else None
    tokenizer_from_config(config.tokenizer, model_dir)  # a missing tokenizer fails before training
    model, cfg = build_model(config.model)
    tx = make_optimizer(config.optimizer)
    schedule = make_schedule(config.optimizer)
    state = create_train_state(model, tx, mesh, config.model.freeze_vision, rules)
    train_step, eval_step = make_train_step(tx), make_eval_step()

    tcfg = TrajectoryConfig(env, tuple(config.data.buckets), config.tokenizer, model_dir)
    data_iter = iter(make_loader(root, "train", config.data.batch_size, tcfg, seed=config.seed,
                                 prefetch=config.data.prefetch))
    val_batches = validation_batches(root, config.data, tcfg)
    rng = jax.random.key(config.seed)

    ckpt_root = os.path.abspath(os.path.join(workdir, "checkpoints"))
    if jax.process_index() == 0:
        ckpt.write_model_config(ckpt_root, cfg, assets_from=model_dir)
        ckpt.write_env_config(ckpt_root, env, config.tokenizer)
    manager = ocp.CheckpointManager(ckpt_root, options=ocp.CheckpointManagerOptions(
        max_to_keep=config.keep_checkpoints, create=True))
    if manager.latest_step() is not None:
        _, rng = _restore(manager, state, data_iter, rng, config.model.freeze_vision)
    writer = MetricsWriter(workdir)
    logged: list[dict[str, Any]] = []
    start = state.step
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    bar = tqdm(total=config.steps, initial=start, desc="sft", disable=not progress)
    while state.step < end:
        batch = next(data_iter)
        rng, _ = jax.random.split(rng)  # kept in the state for stochastic variants (dropout)
        t0 = time.perf_counter()
        placed, ig, vg = place_batch(batch, model, mesh, rules)
        metrics = jax.device_get(train_step(state, placed, ig, vg))
        dt = time.perf_counter() - t0
        step = state.step
        if step % config.log_every == 0 or step == config.steps:
            row = {"loss": float(metrics["loss"]), "grad_norm": float(metrics["grad_norm"]),
                   "lr": float(schedule(max(step - 1, 0) // config.optimizer.accum_steps)),
                   "tokens_per_s": float(batch["attention_mask"].sum()) * jax.process_count() / dt,
                   "step_time": dt}
            writer.write(step, row)
            logged.append({"step": step, **row})
        if val_batches and (step % config.eval_every == 0 or step == config.steps):
            val = evaluate(eval_step, state, model, mesh, val_batches, rules)
            writer.write(step, {"val_loss": val})
            logged.append({"step": step, "val_loss": val})
        if step % config.checkpoint_every == 0 or step == config.steps:
            manager.save(step, args=_checkpoint_args(state, state.model(), data_iter, step, rng, True))
        bar.update(1)
        bar.set_postfix(loss=f"{float(metrics['loss']):.3f}")
    bar.close()
    manager.wait_until_finished()
    manager.close()
    writer.close()
    return logged


__all__ = ["build_model", "evaluate", "maybe_initialize_distributed", "resolve_mesh_shape", "train"]
