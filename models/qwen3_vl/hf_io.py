"""Hugging Face folders in and out: `from_pretrained` and `save_pretrained`.

Reading streams one tensor at a time from the safetensors files (single `model.safetensors`
or sharded with `model.safetensors.index.json`), through the mapping table in params.py;
big matrices are read and transposed a block of rows at a time (safetensors_io.py), so
memory holds the parameters read so far plus one block (bf16 via ml_dtypes' numpy dtype).
The table names per-layer paths; a scanned model's stacked arrays (stacking.py) are filled
slot by slot on import and sliced per layer on export.

Writing walks the same table the other way and streams too: each safetensors file's header
is computed from the shapes up front, then tensors are converted and written one at a time,
split into shards by size. Every output folder is staged next to its destination and
renamed into place at the end (`staged_dir`), so a failure never leaves a folder that looks
complete.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import re
import resource
import shutil
import tempfile
import time
from typing import BinaryIO, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from seeker_jax.models.qwen3_vl import params as P
from seeker_jax.models.qwen3_vl.config import (Qwen3VLConfig, from_hf_dict, load_hf_config,
                                               to_hf_dict)
from seeker_jax.models.qwen3_vl.modeling import Qwen3VLForConditionalGeneration
from seeker_jax.models.qwen3_vl.safetensors_io import (BLOCK_BYTES, CheckpointError,
                                                       StoredTensor, TensorSpec, read_header,
                                                       read_rows, write_safetensors)
from seeker_jax.models.qwen3_vl.stacking import is_stacked, split_index

SINGLE, INDEX = "model.safetensors", "model.safetensors.index.json"


def stored_tensors(hf_dir: str) -> dict[str, StoredTensor]:
    """Every tensor of an HF folder (single file or sharded index): file, dtype, shape, offset."""
    index = os.path.join(hf_dir, INDEX)
    if not os.path.isfile(index):
        single = os.path.join(hf_dir, SINGLE)
        if not os.path.isfile(single):
            raise CheckpointError(f"{hf_dir} has neither {SINGLE} nor {INDEX}")
        return read_header(single)
    try:
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
    except (json.JSONDecodeError, KeyError) as e:
        raise CheckpointError(f"{index} is not a valid safetensors index: {e}") from e
    out: dict[str, StoredTensor] = {}
    for fn in sorted(set(weight_map.values())):
        path = os.path.join(hf_dir, fn)
        if not os.path.isfile(path):
            raise CheckpointError(f"the index names {fn}, which is missing from {hf_dir}")
        held = read_header(path)
        listed = {n for n, f in weight_map.items() if f == fn}
        if listed - set(held):
            raise CheckpointError(f"the index puts {sorted(listed - set(held))[:3]} in {fn}, "
                                  "which does not hold them")
        out.update({n: held[n] for n in listed})
    return out


def _read_flax(f: BinaryIO, t: StoredTensor, entry: P.Entry, shape: tuple[int, ...], dtype,
               cfg: Qwen3VLConfig) -> np.ndarray:
    """One HF tensor in Flax layout and `dtype`, read a block of rows at a time.

    A block of HF rows is a slice of the Flax array: along axis 0 as stored, along the last
    axis once a Linear is transposed. So big matrices never exist twice in memory.
    """
    n = t.spec.shape[0] if t.spec.shape else 1
    if entry.transform not in (P.LINEAR, P.IDENTITY) or len(shape) != 2 \
            or t.spec.nbytes <= BLOCK_BYTES:
        return np.asarray(P.to_flax(entry, read_rows(f, t, 0, n), cfg)).astype(dtype)
    out = np.empty(shape, dtype)
    rows = max(1, BLOCK_BYTES * n // t.spec.nbytes)
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        block = P.to_flax(entry, read_rows(f, t, lo, hi), cfg)
        if entry.transform == P.LINEAR:
            out[:, lo:hi] = block
        else:
            out[lo:hi] = block
    return out


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
                   remat: str = "none", scan_layers: bool = False
                   ) -> Qwen3VLForConditionalGeneration:
    """The model with ShapeDtypeStruct leaves: shapes without allocating."""
    return nnx.eval_shape(lambda: Qwen3VLForConditionalGeneration(
        cfg, dtype=dtype, param_dtype=param_dtype, rngs=nnx.Rngs(0), remat=remat,
        scan_layers=scan_layers))


def load_into(model: Qwen3VLForConditionalGeneration, hf_dir: str, cfg: Qwen3VLConfig,
              place: Callable[[tuple, jax.Array], jax.Array] | None = None,
              progress: Callable[[str, int], None] | None = None) -> None:
    """Fills an (abstract) model's parameters from an HF folder, tensor by tensor.

    Names and shapes are all checked (from the headers) before any tensor is read. A stacked
    model (scan_layers, stacking.py) gets each stacked array once all its layers are read:
    until then the layers read so far sit in one host buffer per weight name. `place` is
    called with the model's own path (the stacked one there).
    """
    entries = P.expand(cfg)
    stored = stored_tensors(hf_dir)
    check_names([e.hf_name for e in entries], set(stored), cfg, hf_dir)
    flat, locate = _locate(model)
    where = {e.hf_name: locate(e.flax_path) for e in entries}
    for e in entries:
        path, index = where[e.hf_name]
        shape = tuple(flat[path].shape)[index is not None:]
        want = P.hf_shape(e, shape, cfg)
        if stored[e.hf_name].spec.shape != want:
            raise CheckpointError(f"{e.hf_name}: shape {stored[e.hf_name].spec.shape} in the "
                                  f"checkpoint, the config expects {want}")
    by_file: dict[str, list[P.Entry]] = {}
    for e in entries:
        by_file.setdefault(stored[e.hf_name].path, []).append(e)
    buffers: dict[tuple, tuple[np.ndarray, set[int]]] = {}

    def put(path: tuple, value) -> None:
        value = jnp.asarray(value)
        flat[path].set_value(place(path, value) if place else value)

    for path, group in by_file.items():
        with open(path, "rb") as f:
            for e in group:
                target, index = where[e.hf_name]
                var = flat[target]
                shape = tuple(var.shape)[index is not None:]
                value = _read_flax(f, stored[e.hf_name], e, shape, var.dtype, cfg)
                if index is None:
                    put(target, value)
                else:
                    buf, filled = buffers.setdefault(
                        target, (np.empty(tuple(var.shape), np.dtype(var.dtype)), set()))
                    buf[index] = value
                    filled.add(index)
                    if len(filled) == var.shape[0]:
                        put(target, buffers.pop(target)[0])
                if progress:
                    progress(e.hf_name, stored[e.hf_name].spec.nbytes)


def from_pretrained(hf_dir: str, dtype=jnp.float32, *, compute_dtype=None, remat: str = "none",
                    scan_layers: bool = False,
                    place: Callable[[tuple, jax.Array], jax.Array] | None = None,
                    attention_impl: str = "auto") -> Qwen3VLForConditionalGeneration:
    """Loads an HF Qwen3-VL folder. `dtype` is the parameter dtype; compute_dtype defaults to it.

    attention_impl: how attention runs (attention.IMPLEMENTATIONS; "auto" picks by backend).

    `place(flax_path, array)` may put each parameter on devices (e.g. with a sharding) as it
    is read, so the whole model never sits on one host device.
    """
    cfg = load_hf_config(hf_dir).replace(attention_impl=attention_impl)
    model = abstract_model(cfg, compute_dtype or dtype, dtype, remat, scan_layers)
    load_into(model, hf_dir, cfg, place)
    return model


def _locate(model: Qwen3VLForConditionalGeneration):
    """(the model's Param variables by path, where(path)): where maps a per-layer (canonical,
    params.py) path to (the model's path, layer index or None) in either layout."""
    flat = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    if not is_stacked(flat):
        return flat, lambda path: (path, None)
    return flat, split_index


def flax_param_getter(model: Qwen3VLForConditionalGeneration) -> Callable[[tuple], jax.Array]:
    """get(path) -> the parameter at a per-layer (canonical, params.py) path, from a model of
    either layout: a stacked model hands out the layer's slice."""
    return _getter(*_locate(model))


def _getter(flat: dict, where: Callable) -> Callable[[tuple], jax.Array]:
    def get(path: tuple) -> jax.Array:
        target, index = where(path)
        return flat[target][...] if index is None else flat[target][...][index]

    return get


def stored_dtype(hf_dir: str) -> jnp.dtype:
    """The dtype of the checkpoint's tensors (of the first one; read from a header)."""
    return jnp.dtype(next(iter(stored_tensors(hf_dir).values())).spec.dtype)


# ---------------------------------------------------------------------------------------------
# Writing: safetensors streamed tensor by tensor, sharded by size, into a staged folder.

# Files of an HF model folder that travel with the weights (tokenizer, processor, template).
_ASSET_SUFFIXES = (".json", ".txt", ".jinja", ".model", ".tiktoken")
_NOT_ASSETS = {"config.json", INDEX, "model_config.json"}


def parse_size(size: int | str) -> int:
    """Bytes from an int or "5GB" / "500MB" / "2GiB" (GB = 1e9, GiB = 2**30, as transformers)."""
    if isinstance(size, int):
        return size
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?i?B)?\s*", str(size), re.IGNORECASE)
    if not m:
        raise ValueError(f"cannot read size {size!r}; write e.g. 5GB, 500MB or 2GiB")
    unit = (m.group(2) or "B").upper()
    base = 1024 if "I" in unit else 1000
    return int(float(m.group(1)) * base ** "BKMGT".index(unit[0]))


def plan_shards(specs: list[TensorSpec], max_bytes: int) -> list[list[TensorSpec]]:
    """Greedy split in table order; a tensor larger than max_bytes gets a shard of its own."""
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for s in specs:
        if shards[-1] and size + s.nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(s)
        size += s.nbytes
    return shards


def is_asset(name: str) -> bool:
    return (not name.startswith(".") and name not in _NOT_ASSETS
            and (name.endswith(_ASSET_SUFFIXES) or name.startswith("tokenizer")))


def copy_assets(src_dir: str | None, dst_dir: str) -> list[str]:
    """Copies tokenizer / processor / chat-template / generation files; returns their names."""
    if not src_dir or not os.path.isdir(src_dir):
        return []
    names = sorted(n for n in os.listdir(src_dir)
                   if is_asset(n) and os.path.isfile(os.path.join(src_dir, n)))
    for n in names:
        shutil.copy2(os.path.join(src_dir, n), os.path.join(dst_dir, n))
    return names


@contextlib.contextmanager
def staged_dir(out_dir: str, overwrite: bool = False, protect: tuple[str, ...] = ()):
    """Yields a fresh sibling folder of out_dir; on success it replaces out_dir in one rename.
    The folder gets the mode a plain mkdir would (the umask's), not mkdtemp's private 0700.

    On any error the staged folder is removed, so out_dir never holds a half-written result.
    A non-empty out_dir is refused unless overwrite. `protect` lists folders (the inputs) that
    out_dir must be neither equal to nor inside.
    """
    out = os.path.abspath(out_dir)
    for p in protect:
        p = os.path.abspath(p)
        if out == p or out.startswith(p + os.sep) or p.startswith(out + os.sep):
            raise CheckpointError(f"the output {out} overlaps the input {p}; write elsewhere")
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise CheckpointError(f"{out} exists and is not a folder")
        held = sorted(os.listdir(out))
        if held and not overwrite:
            raise CheckpointError(
                f"{out} already holds files ({', '.join(held[:4])}{' ...' if len(held) > 4 else ''}"
                "); pass --overwrite (overwrite=True) to replace it")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.partial-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would make the result private
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.exists(out):
        old = tmp + ".old"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


def release_freed_memory() -> None:
    """Hands memory freed by the allocator back to the OS (glibc keeps it otherwise).

    Converting big tensors one by one frees a lot of mid-sized blocks; without this the
    process's RSS keeps them, and peak memory grows by about a checkpoint's worth.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclasses.dataclass
class IOStats:
    """Counts what a conversion moved, for the progress bar and the one-line summary."""
    total_bytes: int
    desc: str
    progress: bool = True
    tensors: int = 0
    bytes: int = 0
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def __post_init__(self):
        self._bar = tqdm(total=self.total_bytes, unit="B", unit_scale=True, desc=self.desc,
                         disable=not self.progress, leave=False)

    def add(self, nbytes: int) -> None:
        self.tensors += 1
        self.bytes += nbytes
        self._bar.update(nbytes)

    def summary(self, where: str) -> str:
        self._bar.close()
        secs = time.perf_counter() - self.started
        peak = peak_rss_bytes()
        return (f"{self.desc}: {self.tensors} tensors, {self.bytes / 1e6:.1f} MB in {secs:.1f} s "
                f"({self.bytes / 1e6 / max(secs, 1e-9):.0f} MB/s), peak RSS {peak / 1e6:.0f} MB "
                f"({peak / max(self.bytes, 1):.2f}x the tensors) -> {where}")


def _generation_config(config_dict: dict) -> dict:
    """What transformers derives from the model config when no generation_config.json exists."""
    text = config_dict.get("text_config", {})
    out = {"_from_model_config": True}
    for k in ("bos_token_id", "eos_token_id", "pad_token_id"):
        v = config_dict.get(k, text.get(k))
        if v is not None:
            out[k] = v
    return out


def _with_dtype(config_dict: dict, dtype: str) -> dict:
    d = json.loads(json.dumps(config_dict))
    d["dtype"] = dtype
    for section in (d, d.get("text_config", {}), d.get("vision_config", {})):
        if "torch_dtype" in section:
            section["torch_dtype"] = dtype
    return d


@dataclasses.dataclass(frozen=True)
class ParamSource:
    """Where an export reads Flax parameters: shapes and dtypes up front, values in groups.

    `fetch(paths)` is called once per output shard, so a source backed by a checkpoint needs
    to hold only one shard's worth of parameters at a time.
    """
    shape_dtype: Callable[[tuple], tuple[tuple[int, ...], np.dtype]]
    fetch: Callable[[list[tuple]], dict[tuple, jax.Array]]


def model_source(model: Qwen3VLForConditionalGeneration) -> ParamSource:
    """The parameters of a live model (fetching hands out references, no copies; of a stacked
    model, each layer's slice as its shard is written)."""
    flat, where = _locate(model)
    get = _getter(flat, where)

    def shape_dtype(path: tuple):
        target, index = where(path)
        var = flat[target]
        return tuple(var.shape)[index is not None:], np.dtype(var.dtype)

    return ParamSource(shape_dtype, lambda paths: {p: get(p) for p in paths})


def write_hf_dir(source: ParamSource, cfg: Qwen3VLConfig, out_dir: str, *,
                 config_dict: dict | None = None, dtype=None, max_shard_size: int | str = "5GB",
                 overwrite: bool = False, assets_dir: str | None = None, progress: bool = False,
                 protect: tuple[str, ...] = ()) -> IOStats:
    """Writes an HF folder from Flax parameters, walking the table in params.py.

    Shards are planned from shapes alone; each shard's parameters are fetched, converted one
    tensor at a time (HF layout, cast to `dtype` or kept as stored) and written. Shards above
    max_shard_size come with model.safetensors.index.json. config_dict (e.g. the one a
    checkpoint was converted from) is written back with only its dtype changed; it must
    describe `cfg`.
    """
    by_name = {e.hf_name: e for e in P.expand(cfg)}
    specs = []
    for name, entry in by_name.items():
        shape, stored = source.shape_dtype(entry.flax_path)
        specs.append(TensorSpec(name, P.hf_shape(entry, shape, cfg),
                                np.dtype(jnp.dtype(dtype if dtype is not None else stored))))
    dtypes = {s.dtype.name for s in specs}
    config_dict = to_hf_dict(cfg) if config_dict is None else config_dict
    if from_hf_dict(config_dict) != cfg.stored():
        raise CheckpointError("the config given does not describe these parameters")
    config_dict = _with_dtype(config_dict, dtypes.pop() if len(dtypes) == 1 else "float32")

    shards = plan_shards(specs, parse_size(max_shard_size))
    stats = IOStats(sum(s.nbytes for s in specs), "export", progress)
    names = ([SINGLE] if len(shards) == 1 else
             [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    with staged_dir(out_dir, overwrite, protect) as tmp:
        for fn, shard in zip(names, shards):
            arrays = source.fetch([by_name[s.name].flax_path for s in shard])

            def produce(name: str) -> np.ndarray:
                a = arrays.pop(by_name[name].flax_path)  # dropped once written
                a = a if dtype is None else jnp.asarray(a).astype(dtype)
                return P.to_hf(by_name[name], np.asarray(a), cfg)  # a view where it can be

            write_safetensors(os.path.join(tmp, fn), shard, produce, stats.add)
            release_freed_memory()
        if len(shards) > 1:
            index = {"metadata": {"total_size": stats.bytes},
                     "weight_map": {s.name: fn for fn, shard in zip(names, shards) for s in shard}}
            with open(os.path.join(tmp, INDEX), "w") as f:
                json.dump(index, f, indent=2)
        copied = copy_assets(assets_dir, tmp)
        if "generation_config.json" not in copied:
            with open(os.path.join(tmp, "generation_config.json"), "w") as f:
                json.dump(_generation_config(config_dict), f, indent=2)
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config_dict, f, indent=2)
    return stats


def save_pretrained(model: Qwen3VLForConditionalGeneration, out_dir: str, dtype=None, *,
                    max_shard_size: int | str = "5GB", overwrite: bool = False,
                    config_dict: dict | None = None, assets_dir: str | None = None,
                    progress: bool = False) -> IOStats:
    """Writes an HF folder that `transformers.Qwen3VLForConditionalGeneration` loads.

    dtype: the tensor dtype written (default: the parameters' own). The folder is staged and
    renamed into place at the end; an out_dir that already holds files is refused unless
    overwrite. See `write_hf_dir` for the rest.
    """
    return write_hf_dir(model_source(model), model.config, out_dir,
                        config_dict=config_dict, dtype=dtype, max_shard_size=max_shard_size,
                        overwrite=overwrite, assets_dir=assets_dir, progress=progress)
