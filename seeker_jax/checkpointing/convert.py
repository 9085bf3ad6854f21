"""`seeker-jax convert` (HF folder -> orbax checkpoint) and `export` (checkpoint -> HF folder).

Both walk the one mapping table (models/qwen3_vl/params.py) and stream: convert reads one
tensor at a time into the output parameters (memory: the parameters plus one tensor, plus
orbax's bounded write buffer); export restores one output shard at a time and writes one
tensor at a time (memory: about one shard). Both
write into a staged folder renamed into place at the end, and return a one-line summary
(tensors, bytes, seconds, peak RSS).
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from seeker_jax.checkpointing import checkpoint as C
from seeker_jax.models.qwen3_vl import params as P
from seeker_jax.models.qwen3_vl.config import ConfigError, load_hf_config
from seeker_jax.models.qwen3_vl.hf_io import (CheckpointError, IOStats, abstract_model,
                                              load_into, release_freed_memory, staged_dir,
                                              stored_dtype, write_hf_dir)


def convert(hf_dir: str, out: str, dtype=None, *, overwrite: bool = False,
            place: Callable[[tuple, jax.Array], jax.Array] | None = None,
            progress: bool = True) -> str:
    """HF Qwen3-VL folder -> checkpoint at `out` (layout in seeker_jax/checkpointing/checkpoint.py).

    dtype: the parameter dtype (default: the dtype stored in the HF files). place(path, array)
    may shard each parameter as it is read. Returns the summary line.
    """
    cfg = load_hf_config(hf_dir)
    with open(os.path.join(hf_dir, "config.json")) as f:
        config_dict = json.load(f)
    dtype = jnp.dtype(dtype if dtype is not None else stored_dtype(hf_dir))
    model = abstract_model(cfg, dtype, dtype)
    abstract = C.abstract_params(cfg, dtype)
    nbytes = {e.hf_name: abstract[C.param_key(e.flax_path)].size * dtype.itemsize
              for e in P.expand(cfg)}
    stats = IOStats(sum(nbytes.values()), "convert", progress)
    with staged_dir(out, overwrite, protect=(hf_dir,)) as tmp:
        def tick(name: str, _) -> None:
            stats.add(nbytes[name])
            if nbytes[name] > 16 << 20:
                release_freed_memory()  # the input tensor and its transpose just went

        load_into(model, hf_dir, cfg, place, progress=tick)
        C.save_params(tmp, model, cfg, config_dict=config_dict, assets_from=hf_dir)
    return stats.summary(out)


def export(ckpt: str, out: str, dtype=None, *, max_shard_size: int | str = "5GB",
           overwrite: bool = False, progress: bool = True) -> str:
    """Checkpoint (converted, step folder or training root) -> HF folder transformers loads.

    dtype: the tensor dtype written (default: as stored); the cast happens on restore.
    Parameters are restored one output shard at a time, so memory stays near one shard.
    Returns the summary line.
    """
    started = time.perf_counter()
    loc = C.find_params(ckpt)
    cfg, config_dict = C.read_model_config(loc.config_dir)
    stats = write_hf_dir(C.params_source(ckpt, cfg, dtype), cfg, out, config_dict=config_dict,
                         max_shard_size=max_shard_size, overwrite=overwrite,
                         assets_dir=loc.config_dir, progress=progress,
                         protect=(loc.config_dir, loc.params_dir))
    stats.started = started  # the summary counts the restore too
    return stats.summary(out)


def parse_mesh(spec: str) -> dict[str, int]:
    """"fsdp=4,tensor=2" -> {"fsdp": 4, "tensor": 2}; a clear error for anything else."""
    shape = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, size = item.partition("=")
        if not name or not size.isdigit() or int(size) < 1:
            raise ValueError(f"--mesh {spec!r}: expected AXIS=SIZE[,AXIS=SIZE...], e.g. fsdp=4,tensor=2")
        shape[name] = int(size)
    if not shape:
        raise ValueError(f"--mesh {spec!r} names no axis")
    return shape


def mesh_placer(hf_dir: str, mesh_shape: dict[str, int]) -> Callable[[tuple, jax.Array], jax.Array]:
    """place(flax_path, array) putting each parameter on a mesh by its logical axes.

    Uses the project's rule table (seeker_jax/sharding.py), so parameters land the way the
    trainers and the sampler shard them.
    """
    from flax import nnx
    from jax.sharding import NamedSharding

    from seeker_jax.sharding import DEFAULT_RULES, logical_to_pspec, make_mesh

    devices = int(np.prod(list(mesh_shape.values())))
    if devices != jax.device_count():
        raise ValueError(f"--mesh {mesh_shape} has {devices} devices; this host has "
                         f"{jax.device_count()}")
    mesh = make_mesh(mesh_shape)
    model = abstract_model(load_hf_config(hf_dir))
    axes = {path: var.get_metadata()["logical_axes"]
            for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param))}

    def place(path: tuple, array: jax.Array) -> jax.Array:
        spec = logical_to_pspec(axes[path], DEFAULT_RULES, mesh, array.shape)
        return jax.device_put(array, NamedSharding(mesh, spec))

    return place


def run_reporting_errors(work: Callable[[], str]) -> int:
    """For the CLI: prints the summary line, or the error (no traceback) and returns 2."""
    try:
        print(work())
    except (CheckpointError, ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
