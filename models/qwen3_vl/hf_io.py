"""Hugging Face folders in and out: `from_pretrained` and `save_pretrained`.

Reading streams one tensor at a time from the safetensors files (single `model.safetensors`
or sharded with `model.safetensors.index.json`), through the mapping table in params.py.
bf16 tensors are read with `framework="flax"` (numpy cannot hold bf16).
"""
from __future__ import annotations

import json
import os
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
from flax import nnx
from safetensors import SafetensorError, safe_open

from seeker_jax.models.qwen3_vl import params as P
from seeker_jax.models.qwen3_vl.config import Qwen3VLConfig, load_hf_config, to_hf_dict
from seeker_jax.models.qwen3_vl.modeling import Qwen3VLForConditionalGeneration

SINGLE, INDEX = "model.safetensors", "model.safetensors.index.json"


class CheckpointError(ValueError):
    """A checkpoint whose tensors do not fit the model: named, with what was expected."""


def weight_files(hf_dir: str) -> dict[str, str]:
    """Maps every tensor name to the safetensors file that holds it."""
    index = os.path.join(hf_dir, INDEX)
    if os.path.isfile(index):
        try:
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"{index} is not a valid safetensors index: {e}") from e
        files = {name: os.path.join(hf_dir, fn) for name, fn in weight_map.items()}
        for fn in sorted(set(files.values())):
            if not os.path.isfile(fn):
                raise CheckpointError(f"the index names {os.path.basename(fn)}, which is missing "
                                      f"from {hf_dir}")
        return files
    single = os.path.join(hf_dir, SINGLE)
    if not os.path.isfile(single):
        raise CheckpointError(f"{hf_dir} has neither {SINGLE} nor {INDEX}")
    with _open(single) as f:
        return {name: single for name in f.keys()}


def _open(path: str):
    try:
        return safe_open(path, framework="flax")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {path}: {e} (truncated or corrupt safetensors?)") from e


def iter_hf_tensors(files: dict[str, str], names: list[str]) -> Iterator[tuple[str, jax.Array]]:
    """Yields (name, tensor) grouped by file, so one file is open at a time."""
    by_file: dict[str, list[str]] = {}
    for name in names:
        by_file.setdefault(files[name], []).append(name)
    for path, group in by_file.items():
        with _open(path) as f:
            for name in group:
                try:
                    yield name, f.get_tensor(name)
                except (SafetensorError, OSError, ValueError) as e:
                    raise CheckpointError(f"cannot read tensor {name} from {path}: {e}") from e


def check_names(expected: list[str], found: set[str], cfg: Qwen3VLConfig, where: str) -> None:
    missing = [n for n in expected if n not in found]
    unexpected = sorted(found - set(expected) - ({P.TIED_EXTRA} if cfg.tie_word_embeddings
                                                  else set()))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s): {', '.join(missing[:5])}"
                         + (" ..." if len(missing) > 5 else ""))
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensor(s): {', '.join(unexpected[:5])}"
                         + (" ..." if len(unexpected) > 5 else ""))
        raise CheckpointError(f"{where}: " + "; ".join(parts))


def abstract_model(cfg: Qwen3VLConfig, dtype=jnp.float32, param_dtype=jnp.float32,
                   remat: str = "none") -> Qwen3VLForConditionalGeneration:
    """The model with ShapeDtypeStruct leaves: shapes without allocating."""
    return nnx.eval_shape(lambda: Qwen3VLForConditionalGeneration(
        cfg, dtype=dtype, param_dtype=param_dtype, rngs=nnx.Rngs(0), remat=remat))


def load_into(model: Qwen3VLForConditionalGeneration, hf_dir: str, cfg: Qwen3VLConfig,
              place: Callable[[tuple, jax.Array], jax.Array] | None = None,
              progress: Callable[[str, int], None] | None = None) -> None:
    """Fills an (abstract) model's parameters from an HF folder, tensor by tensor."""
    entries = P.expand(cfg)
    files = weight_files(hf_dir)
    check_names([e.hf_name for e in entries], set(files), cfg, hf_dir)
    flat = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    by_name = {e.hf_name: e for e in entries}
    for name, tensor in iter_hf_tensors(files, [e.hf_name for e in entries]):
        entry = by_name[name]
        var = flat[entry.flax_path]
        want = P.hf_shape(entry, tuple(var.shape), cfg)
        if tuple(tensor.shape) != want:
            raise CheckpointError(f"{name}: shape {tuple(tensor.shape)} in the checkpoint, the "
                                  f"config expects {want}")
        value = P.to_flax(entry, tensor, cfg).astype(var.dtype)
        var.set_value(place(entry.flax_path, value) if place else value)
        if progress:
            progress(name, int(tensor.size * tensor.dtype.itemsize))


def from_pretrained(hf_dir: str, dtype=jnp.float32, *, compute_dtype=None, remat: str = "none",
                    place: Callable[[tuple, jax.Array], jax.Array] | None = None
                    ) -> Qwen3VLForConditionalGeneration:
    """Loads an HF Qwen3-VL folder. `dtype` is the parameter dtype; compute_dtype defaults to it.

    `place(flax_path, array)` may put each parameter on devices (e.g. with a sharding) as it
    is read, so the whole model never sits on one host device.
    """
    cfg = load_hf_config(hf_dir)
    model = abstract_model(cfg, compute_dtype or dtype, dtype, remat)
    load_into(model, hf_dir, cfg, place)
    return model


def flax_param_getter(model: Qwen3VLForConditionalGeneration) -> Callable[[tuple], jax.Array]:
    flat = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    return lambda path: flat[path][...]


def save_pretrained(model: Qwen3VLForConditionalGeneration, out_dir: str, dtype=None) -> None:
    """Writes an HF folder (config.json + model.safetensors) that transformers loads.

    dtype: the tensor dtype written (default: the parameters' own).
    """
    from safetensors.flax import save_file

    cfg = model.config
    get = flax_param_getter(model)
    tensors = {}
    for name, tensor in P.iter_flax_to_hf(get, cfg):
        tensors[name] = jnp.asarray(tensor if dtype is None else tensor.astype(dtype))
    os.makedirs(out_dir, exist_ok=True)
    some = next(iter(tensors.values()))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(to_hf_dict(cfg, str(jnp.dtype(some.dtype))), f, indent=2)
    save_file(tensors, os.path.join(out_dir, SINGLE), metadata={"format": "pt"})
