"""Copies model weights into a sampler's own buffers: cast, placed, never aliased.

A GRPO learner's jitted step donates its trainable parameters: after the step, the arrays the
sampler was given are deleted. So the sampler never holds a learner array. It owns a copy
(made when it is built) and refreshes it between rollouts from the learner's current states,
casting each array to the sampler's dtype for that variable (e.g. float32 master weights ->
bfloat16 inference weights) and placing it with the sampler's sharding for it (the learner's
FSDP layout -> the sampler's layout), through a copying `device_put` (may_alias=False),
checked: jax 0.10's device_put of a replicated array onto one of its devices returns that
device's shard itself despite may_alias=False, so such a result is copied again.
"""
from __future__ import annotations

from typing import Any, Iterable

import jax
import jax.numpy as jnp
from flax import nnx

from seeker_jax.models.qwen3_vl.stacking import Slice, match_layout

Path = tuple


def _flat(state: nnx.State) -> dict[Path, nnx.Variable]:
    return {tuple(path): var for path, var in nnx.to_flat_state(state)}


def source_arrays(sources: Iterable[Any]) -> dict[Path, jax.Array]:
    """Every array of the given states by path. A source is an nnx.State, or anything with
    `trainable`, `frozen` and `rest` states (a seeker_jax.training.train_state.TrainState)."""
    out: dict[Path, jax.Array] = {}
    for src in sources:
        parts = ([src.trainable, src.frozen, src.rest] if hasattr(src, "trainable")
                 else [src])
        for part in parts:
            if not isinstance(part, nnx.State):
                raise TypeError(f"load_state takes nnx.State objects or a TrainState, got "
                                f"{type(part).__name__}")
            for path, var in _flat(part).items():
                if path in out:
                    raise ValueError(f"variable {'.'.join(map(str, path))} is given twice; "
                                     "pass disjoint states (trainable, frozen, rest)")
                out[path] = var[...] if isinstance(var, nnx.Variable) else var
    return out


def _copy_one(path: Path, value: jax.Array, like: jax.Array, sharding) -> jax.Array:
    name = ".".join(map(str, path))
    if tuple(value.shape) != tuple(like.shape):
        raise ValueError(f"variable {name}: shape {tuple(value.shape)} does not match the "
                         f"sampler's {tuple(like.shape)}; is it the same model config?")
    if value.dtype != like.dtype:
        if not (jnp.issubdtype(like.dtype, jnp.floating)
                and jnp.issubdtype(value.dtype, jnp.floating)):
            raise ValueError(f"variable {name}: dtype {value.dtype} cannot become the "
                             f"sampler's {like.dtype}")
        value = value.astype(like.dtype)
    placed = jax.device_put(value, sharding, may_alias=False)
    if _buffers(placed) & _buffers(value):  # seen: replicated -> one device reuses a shard
        placed = jnp.copy(placed)
    return placed


def _buffers(x: jax.Array) -> set[int]:
    return {shard.data.unsafe_buffer_pointer() for shard in x.addressable_shards}


def copy_state(target: nnx.State, sources: Iterable[Any], shardings: nnx.State | None = None
               ) -> nnx.State:
    """A new state shaped like `target` (same variables, dtypes, and shardings, or
    `shardings` where given) holding fresh copies of the sources' arrays.

    Every variable of `target` must be in the sources, and nothing else may be. Sources in
    the other layer layout (stacked for a scanned learner, stacking.py) are converted: each
    layer's slice is taken as it is copied, so at most one slice is held beside the copy.
    """
    tgt = _flat(target)
    # A stacked learner -> the sampler's layout, its slices taken one at a time as copied.
    src = match_layout(source_arrays(sources), tgt, consume=True, lazy=True)
    missing = [p for p in tgt if p not in src]
    extra = [p for p in src if p not in tgt]
    if missing or extra:
        show = lambda ps: ", ".join(".".join(map(str, p)) for p in ps[:5]) + (
            f" (+{len(ps) - 5} more)" if len(ps) > 5 else "")
        raise ValueError("load_state: the given states do not match the sampler's model"
                         + (f"; missing {show(missing)}" if missing else "")
                         + (f"; unknown {show(extra)}" if extra else "")
                         + ". Pass the learner's whole model state (trainable, frozen, rest).")
    place = _flat(shardings) if shardings is not None else {}
    new = []
    for path, var in tgt.items():
        like = var[...]
        sharding = place.get(path, like.sharding)
        sharding = sharding[...] if isinstance(sharding, nnx.Variable) else sharding
        value = src.pop(path)
        value = value.take() if isinstance(value, Slice) else value
        new.append((path, var.replace(_copy_one(path, value, like, sharding))))
    return nnx.from_flat_state(new)


__all__ = ["copy_state", "source_arrays"]
