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
                              (seeker_jax.checkpointing.checkpoint's layout: `seeker-jax export --ckpt W`)
  data/                       the synthetic world, when the config asks for one
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable

import jax
import ml_collections

from seeker_jax.checkpointing import checkpoint as ckpt
from seeker_jax.config import to_json
from seeker_jax.data.synth import prepare_data
from seeker_jax.data.trajectories import TrajectoryConfig, make_loader
from seeker_jax.training.optim import make_optimizer, make_schedule
from seeker_jax.env.config import EnvConfig
from seeker_jax.models.tokenizer import tokenizer_from_config
from seeker_jax.sharding import make_mesh, rules_from_config
from seeker_jax.training.train_state import (TrainState, create_train_state, make_eval_step,
                                    make_train_step, place_batch)
from seeker_jax.training.trainer import (MetricsWriter, build_model, maybe_initialize_distributed,
                                open_manager, resolve_mesh_shape, restore_latest,
                                save_checkpoint, state_items, under_mesh)

LOSS = "sft"  # seeker_jax.training.losses: mean NLL of the learned tokens


def evaluate(eval_step, state: TrainState, model, mesh, batches: list[dict],
             rules=None) -> float:
    """Token-weighted mean loss over fixed validation batches."""
    total = count = 0.0
    for batch in batches:
        placed, vision = place_batch(batch, model, mesh, *([rules] if rules else []))
        loss, aux = eval_step(state, placed, vision)
        n = aux["loss_tokens"]
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


def no_validation_note(root: str, batch_size: int) -> str:
    """Why there is no validation loss: the val split is missing, or holds fewer records than
    one batch (batches are full: the remainder is dropped)."""
    from seeker_jax.data.records import count_records, split_path

    path = split_path(root, "val")
    n = count_records(path) if path.is_file() else 0
    return (f"note: sft: {path} holds {n} record(s), fewer than one batch "
            f"(--config.data.batch_size={batch_size} per process), so there is no validation "
            "loss; give `seeker-jax data import` a larger --val-fraction (docs/data.md), a "
            "smaller batch size, or --config.data.val_batches=0 to silence this")


def train(config: ml_collections.ConfigDict, workdir: str, *, stop_after: int | None = None,
          progress: bool = True, on_step: Callable[[int], None] | None = None
          ) -> list[dict[str, Any]]:
    """Runs (or resumes) SFT; returns the metrics logged by this call.

    stop_after: leave after that many steps of this call (a simulated kill, for tests);
    checkpoints are written as configured, so the next call resumes from the last one.
    on_step(step): called after each step (its metrics written, its checkpoint started).
    """
    from tqdm import tqdm

    maybe_initialize_distributed()
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(to_json(config))
    root = prepare_data(config, workdir, writer=jax.process_index() == 0)
    mesh = make_mesh(resolve_mesh_shape(config.mesh, jax.device_count()))
    rules = rules_from_config(config.mesh.rules)
    env = EnvConfig.from_config(config.env)
    model_dir = ckpt.find_params(config.model.init_from).config_dir if config.model.init_from else None
    tokenizer_from_config(config.tokenizer, model_dir)  # a missing tokenizer fails before training
    model, cfg = build_model(config.model, rules)
    tx = make_optimizer(config.optimizer)
    schedule = make_schedule(config.optimizer)
    state = create_train_state(model, tx, mesh, config.model.freeze_vision, rules)
    train_step = under_mesh(make_train_step(tx, LOSS), mesh, cfg.attention_impl)
    eval_step = under_mesh(make_eval_step(LOSS), mesh, cfg.attention_impl)

    tcfg = TrajectoryConfig(env, tuple(config.data.buckets), config.tokenizer, model_dir)
    data_iter = iter(make_loader(root, "train", config.data.batch_size, tcfg, seed=config.seed,
                                 prefetch=config.data.prefetch))
    val_batches = validation_batches(root, config.data, tcfg)
    if not val_batches and config.data.val_batches > 0 and jax.process_index() == 0:
        print(no_validation_note(root, config.data.batch_size), file=sys.stderr, flush=True)
    rng = jax.random.key(config.seed)

    manager = open_manager(workdir, cfg, config.keep_checkpoints, assets_from=model_dir,
                           env=env, tokenizer=config.tokenizer)
    _, rng, _ = restore_latest(manager, state, data_iter, rng, config.model.freeze_vision)
    writer = MetricsWriter(workdir, resume_step=state.step)
    logged: list[dict[str, Any]] = []
    start = state.step
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    bar = tqdm(total=config.steps, initial=start, desc="sft", disable=not progress)
    while state.step < end:
        batch = next(data_iter)
        rng, _ = jax.random.split(rng)  # kept in the state for stochastic variants (dropout)
        if state.step == start and jax.process_index() == 0:
            print("compiling the train step (first step only)…", flush=True)
        t0 = time.perf_counter()
        placed, vision = place_batch(batch, model, mesh, rules)
        metrics = jax.device_get(train_step(state, placed, vision))
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
            save_checkpoint(manager, step, state_items(state, data_iter, step, rng))
        if on_step is not None:
            on_step(step)
        bar.update(1)
        bar.set_postfix(loss=f"{float(metrics['loss']):.3f}")
    bar.close()
    manager.wait_until_finished()
    manager.close()
    writer.close()
    return logged


# build_model, resolve_mesh_shape and maybe_initialize_distributed live in seeker_jax.training.trainer;
# they stay importable from here for callers of the SFT module.
__all__ = ["build_model", "evaluate", "maybe_initialize_distributed", "no_validation_note",
           "resolve_mesh_shape", "train", "validation_batches"]
