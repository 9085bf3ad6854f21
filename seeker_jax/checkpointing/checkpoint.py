"""Orbax checkpoints of the Flax model: one layout for converted and for trained weights.

A converted checkpoint (`seeker-jax convert`, `save_params`)::

    CKPT/
      params/             orbax item: flat dict {"model.visual.blocks.0.attn.qkv.kernel": array}
      model_config.json   the Hugging Face config.json dict these parameters belong to
      tokenizer.json ...  HF assets copied from the source folder (tokenizer, processor,
                          chat template, generation config), so export can hand them back

A training run (SFT, GRPO) keeps an orbax CheckpointManager root with the same item in every
step, next to whatever else it needs::

    ROOT/
      model_config.json, assets     written once, by `write_model_config`
      env_config.json               what the model saw ({"env": c.env, "tokenizer": ...}),
                                    by `write_env_config`; episodes replay it (`read_env_config`)
      <step>/params/                `params_tree(model)`, saved as the item named "params"
      <step>/opt_state/, ...        optimizer state, data iterator, rng, ...

The keys of the params item are the Flax parameter paths joined with "." (the paths the
mapping table in models/qwen3_vl/params.py names), so `export` needs only this item and the
config, whoever wrote it. A scanned model (scan_layers) saves its layers stacked, one key per
weight name ("model.language_model.layers.mlp.up_proj.kernel", shape (n_layers, ...); see
models/qwen3_vl/stacking.py); every reader here takes either layout and converts to the one
asked for. `find_params` accepts a converted checkpoint, a step folder, a
manager root (latest step) or a workdir holding `checkpoints/`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import TYPE_CHECKING, Any, Callable, Mapping, Union

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx, traverse_util

from seeker_jax.models.qwen3_vl.attention import AttentionAxes
from seeker_jax.models.qwen3_vl.config import ConfigError, Qwen3VLConfig, from_hf_dict, to_hf_dict
from seeker_jax.models.qwen3_vl.hf_io import (CheckpointError, ParamSource, abstract_model,
                                              copy_assets)
from seeker_jax.models.qwen3_vl.modeling import Qwen3VLForConditionalGeneration
from seeker_jax.models.qwen3_vl.stacking import is_stacked, match_layout, split_index

if TYPE_CHECKING:
    from seeker_jax.env.config import EnvConfig

PARAMS_ITEM = "params"
CONFIG_FILE = "model_config.json"
ENV_CONFIG_FILE = "env_config.json"
# Bytes in flight while orbax writes arrays out (save) or reads them in (restore): without a
# bound, a save first copies every array to host buffers, doubling the process's memory.
SAVE_GB, RESTORE_GB = 0.25, 0.5
_STEP_DIR = re.compile(r"(?:[^.]*_)?(\d+)")

# How restored parameters are placed: one sharding for all, one per key, or a function of the
# Flax path and the parameter's logical axes (what a mesh rule table maps to mesh axes).
Shardings = Union[None, jax.sharding.Sharding, Mapping[str, jax.sharding.Sharding],
                  Callable[[tuple, tuple], jax.sharding.Sharding]]


def param_key(path: tuple) -> str:
    """("model", "visual", "blocks", 0, "attn", "qkv", "kernel") -> "model.visual.blocks.0..."."""
    return ".".join(str(p) for p in path)


def key_path(key: str) -> tuple:
    """The inverse of param_key: "model.visual.blocks.0.attn" -> ("model", ..., 0, "attn")."""
    return tuple(int(p) if p.isdigit() else p for p in key.split("."))


def stored_stacked(keys) -> bool:
    """Whether a params item's keys are in the stacked layout (a scanned model's)."""
    return is_stacked(key_path(k) for k in keys)


def params_tree(source: Any) -> dict[str, jax.Array]:
    """The params item: a model, an nnx.State of its Params, or a (nested or flat) dict.

    Arrays are referenced, not copied.
    """
    if isinstance(source, nnx.Module):
        source = nnx.state(source, nnx.Param)
    if isinstance(source, nnx.State):
        items = [(tuple(p), v) for p, v in nnx.to_flat_state(source)]
    else:
        items = list(traverse_util.flatten_dict(dict(source)).items())
    return {param_key(p): (v.get_value() if isinstance(v, nnx.Variable) else v) for p, v in items}


def write_model_config(directory: str, cfg: Qwen3VLConfig, config_dict: dict | None = None,
                       assets_from: str | None = None) -> None:
    """Writes model_config.json (and copies HF assets) into a checkpoint folder or manager root.

    config_dict is the HF config to keep (e.g. the one converted from, with its extra fields);
    it must describe cfg. Default: the config transformers would write for cfg.
    """
    config_dict = to_hf_dict(cfg) if config_dict is None else config_dict
    if from_hf_dict(config_dict) != cfg.stored():
        raise ConfigError("config_dict does not describe the model config given")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, CONFIG_FILE), "w") as f:
        json.dump(config_dict, f, indent=2)
    copy_assets(assets_from, directory)


def read_model_config(directory: str) -> tuple[Qwen3VLConfig, dict]:
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isfile(path):
        raise CheckpointError(f"{directory} has no {CONFIG_FILE}; write it with "
                              "seeker_jax.checkpointing.checkpoint.write_model_config")
    with open(path) as f:
        d = json.load(f)
    return from_hf_dict(d), d


def write_env_config(directory: str, env: "EnvConfig", tokenizer: str) -> None:
    """Writes env_config.json next to model_config.json: the environment and the tokenizer kind
    (models/tokenizer.py's `tokenizer_from_config`) training saw, so evaluation and serving of
    this checkpoint replay exactly that."""
    from seeker_jax.models.tokenizer import TOKENIZER_KINDS

    if tokenizer not in TOKENIZER_KINDS:
        raise ValueError(f"tokenizer {tokenizer!r}: choose one of {TOKENIZER_KINDS}")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, ENV_CONFIG_FILE), "w") as f:
        json.dump({"env": env.to_dict(), "tokenizer": tokenizer}, f, indent=2, sort_keys=True)


def _env_config_path(path: str) -> str:
    """env_config.json of any folder `find_params` accepts (it sits beside model_config.json)."""
    direct = os.path.join(path, ENV_CONFIG_FILE)
    if os.path.isfile(direct):
        return direct
    found = os.path.join(find_params(path).config_dir, ENV_CONFIG_FILE)
    if not os.path.isfile(found):
        raise CheckpointError(f"{path} has no {ENV_CONFIG_FILE} (checkpoints written before the "
                              "env config was saved, or converted ones, lack it): pass the env "
                              "config explicitly, e.g. EnvConfig.from_config(c.env)")
    return found


def read_env_config(path: str) -> "EnvConfig":
    """The EnvConfig a checkpoint was trained with (a workdir, manager root or step folder)."""
    from seeker_jax.env.config import EnvConfig

    with open(_env_config_path(path)) as f:
        return EnvConfig.from_config(json.load(f)["env"])


def read_tokenizer(path: str):
    """The tokenizer a checkpoint was trained with: its env_config.json's kind, with "model"
    read from the checkpoint's own tokenizer files (copied from the model folder)."""
    from seeker_jax.models.tokenizer import tokenizer_from_config

    env_path = _env_config_path(path)
    with open(env_path) as f:
        kind = json.load(f)["tokenizer"]
    return tokenizer_from_config(kind, os.path.dirname(env_path))


def save_params(directory: str, source: Any, cfg: Qwen3VLConfig, *,
                config_dict: dict | None = None, assets_from: str | None = None) -> None:
    """Writes a converted-style checkpoint: `directory/params` plus model_config.json."""
    tree = params_tree(source)
    expected = set(abstract_params(cfg, jnp.float32, stacked=stored_stacked(tree)))
    if set(tree) != expected:
        raise CheckpointError(f"the parameters do not match the config: "
                              f"{_name_diff(expected, set(tree))}")
    write_model_config(directory, cfg, config_dict, assets_from)
    _checkpointer(tree).save(os.path.abspath(os.path.join(directory, PARAMS_ITEM)),
                         args=ocp.args.PyTreeSave(tree))


def _checkpointer(tree: Mapping[str, Any]) -> ocp.Checkpointer:
    """Synchronous, with bounded memory in flight (the on-disk format StandardSave writes).

    The bound must admit the largest array (orbax refuses one larger than its budget).
    Without compression: zstd holds extra buffers in flight and slows the save, for a modest
    saving of disk on bf16 weights (bench/convert.py compares them). Restore
    reads either, so trainers' default (compressed) StandardSave items load the same way.
    """
    largest = max(int(np.prod(t.shape)) * jnp.dtype(t.dtype).itemsize for t in tree.values())
    save, restore = (max(gb, largest / 1e9 + 0.001) for gb in (SAVE_GB, RESTORE_GB))
    return ocp.Checkpointer(ocp.PyTreeCheckpointHandler(
        save_concurrent_gb=save, save_device_host_concurrent_gb=save,
        restore_concurrent_gb=restore, use_compression=False))


@dataclasses.dataclass(frozen=True)
class ParamsLocation:
    params_dir: str          # the orbax item folder
    config_dir: str          # where model_config.json and the assets are
    step: int | None         # the training step, None for a converted checkpoint


def _steps(root: str) -> dict[int, str]:
    if not os.path.isdir(root):
        return {}
    out = {}
    for name in os.listdir(root):
        m = _STEP_DIR.fullmatch(name)
        if m and os.path.isdir(os.path.join(root, name, PARAMS_ITEM)):
            out[int(m.group(1))] = os.path.join(root, name)
    return out


def find_params(path: str) -> ParamsLocation:
    """Where the params item and its config are, for any of the accepted folder kinds."""
    path = os.path.abspath(path)
    step = None
    if os.path.isdir(os.path.join(path, PARAMS_ITEM)):
        step_dir = path
        m = _STEP_DIR.fullmatch(os.path.basename(path))
        step = int(m.group(1)) if m else None
    else:
        steps = _steps(path) or _steps(os.path.join(path, "checkpoints"))
        if not steps:
            raise CheckpointError(
                f"{path} holds no parameters: expected {PARAMS_ITEM}/ (a converted checkpoint "
                f"or a step folder) or step folders <N>/{PARAMS_ITEM}/ (a CheckpointManager root)")
        step = max(steps)
        step_dir = steps[step]
    for d in (step_dir, os.path.dirname(step_dir), os.path.dirname(os.path.dirname(step_dir))):
        if os.path.isfile(os.path.join(d, CONFIG_FILE)):
            return ParamsLocation(os.path.join(step_dir, PARAMS_ITEM), d, step)
    raise CheckpointError(f"no {CONFIG_FILE} in {step_dir} or the folders above it; a trainer "
                          "writes it with seeker_jax.checkpointing.checkpoint.write_model_config(root, cfg)")


def _name_diff(expected: set[str], found: set[str]) -> str:
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    parts = [f"{label} {len(names)}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
             for label, names in (("missing", missing), ("unexpected", unexpected)) if names]
    return "; ".join(parts)


def _sharding_for(shardings: Shardings, key: str, path: tuple, axes: tuple):
    if shardings is None:
        return jax.sharding.SingleDeviceSharding(jax.devices()[0])
    if isinstance(shardings, jax.sharding.Sharding):
        return shardings
    if isinstance(shardings, Mapping):
        return shardings[key]
    return shardings(path, axes)


def stored_metadata(params_dir: str) -> dict[str, Any]:
    """key -> orbax ArrayMetadata (shape, dtype) of a params item, without reading data.

    Asks the item's handler, not a Checkpointer: a Checkpointer also reads the step's
    _CHECKPOINT_METADATA, which a CheckpointManager writes one level up (in the step folder,
    not in the item), and warns "Metadata file does not exist" for every trained checkpoint.
    """
    meta = ocp.PyTreeCheckpointHandler().metadata(epath.Path(params_dir))
    return dict(getattr(meta, "tree", meta))


def abstract_params(cfg: Qwen3VLConfig, dtype=None, shardings: Shardings = None,
                    stored: Mapping[str, Any] | None = None, stacked: bool = False
                    ) -> dict[str, jax.ShapeDtypeStruct]:
    """The params item as ShapeDtypeStructs with shardings: the target orbax restores into.

    dtype None keeps each stored dtype (needs `stored`, from `stored_metadata`). stacked: the
    keys of a scanned model (stacking.py) instead of one per layer.
    """
    model = abstract_model(cfg, scan_layers=stacked)
    out = {}
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        key = param_key(path)
        dt = dtype if dtype is not None else (stored[key].dtype if stored else var.dtype)
        axes = var.get_metadata().get("logical_axes", (None,) * len(var.shape))
        out[key] = jax.ShapeDtypeStruct(var.shape, jnp.dtype(dt),
                                        sharding=_sharding_for(shardings, key, tuple(path), axes))
    return out


def check_params(loc: ParamsLocation, cfg: Qwen3VLConfig) -> dict[str, Any]:
    """The stored metadata, after checking names and shapes against cfg (nothing is read)."""
    stored = stored_metadata(loc.params_dir)
    expected = abstract_params(cfg, jnp.float32, stacked=stored_stacked(stored))
    if set(stored) != set(expected):
        raise CheckpointError(f"{loc.params_dir} does not fit the config: "
                              f"{_name_diff(set(expected), set(stored))}")
    bad = [f"{k}: stored {tuple(stored[k].shape)}, the config expects {t.shape}"
           for k, t in expected.items() if tuple(stored[k].shape) != tuple(t.shape)]
    if bad:
        raise CheckpointError(f"{loc.params_dir}: shape mismatch for {len(bad)} tensor(s): "
                              + "; ".join(bad[:5]))
    return stored


def restore_params(path: str, cfg: Qwen3VLConfig | None = None, dtype=None,
                   shardings: Shardings = None, keys: list[str] | None = None,
                   scan_layers: bool | None = None) -> dict[str, jax.Array]:
    """Restores the params item (any folder `find_params` accepts) into placed arrays.

    Names and shapes are checked against cfg (default: the checkpoint's own config) before
    anything is read, with the offending tensors named. dtype casts on read; None keeps
    the stored dtypes. keys restores only those parameters (e.g. one export shard), named in
    the stored layout. scan_layers: the layout to return (True: stacked, False: per layer,
    None: as stored); stacking holds both layouts of one weight name at a time, unstacking
    both layouts of the whole stack.
    """
    loc = find_params(path)
    cfg = cfg if cfg is not None else read_model_config(loc.config_dir)[0]
    stored = check_params(loc, cfg)
    stacked = stored_stacked(stored)
    target = abstract_params(cfg, dtype, shardings, stored, stacked)
    got = _restore(loc.params_dir, target if keys is None else {k: target[k] for k in keys})
    if scan_layers is None or bool(scan_layers) == stacked:
        return got
    if keys is not None:
        raise ValueError("restore_params: keys name the stored layout; restore them without "
                         "scan_layers, or all of them with it")
    want = abstract_params(cfg, jnp.float32, shardings, stacked=bool(scan_layers))
    flat = {key_path(k): got.pop(k) for k in list(got)}
    converted = match_layout(flat, [key_path(k) for k in want], consume=True)
    return {param_key(p): (jax.device_put(v, want[param_key(p)].sharding)
                           if shardings is not None else v) for p, v in converted.items()}


def _restore(params_dir: str, target: dict[str, jax.ShapeDtypeStruct], host: bool = False
             ) -> dict[str, Any]:
    """Restores `target`'s keys (all, or a subset) with its dtypes and shardings.

    host=True gives numpy arrays, skipping the copy onto a device (for export).
    """
    args = ({k: ocp.RestoreArgs(restore_type=np.ndarray, dtype=t.dtype) for k, t in target.items()}
            if host else ocp.checkpoint_utils.construct_restore_args(target))
    return _checkpointer(target).restore(params_dir, args=ocp.args.PyTreeRestore(
        item=target, restore_args=args, partial_restore=True))


def params_source(path: str, cfg: Qwen3VLConfig, dtype=None) -> ParamSource:
    """A checkpoint as an export source: restores one shard's parameters at a time (per-layer
    paths; of a stacked item, the stacked arrays a shard touches, sliced on the host)."""
    loc = find_params(path)
    stored = check_params(loc, cfg)
    stacked = stored_stacked(stored)
    target = abstract_params(cfg, dtype, None, stored, stacked)
    where = (lambda p: split_index(p)) if stacked else (lambda p: (p, None))  # noqa: E731

    def shape_dtype(p: tuple):
        key, index = where(p)
        t = target[param_key(key)]
        return tuple(t.shape)[index is not None:], t.dtype

    def fetch(paths: list[tuple]) -> dict[tuple, jax.Array]:
        keys = {param_key(where(p)[0]) for p in paths}
        got = _restore(loc.params_dir, {k: target[k] for k in keys}, host=True)
        out = {}
        for p in paths:
            key, index = where(p)
            out[p] = got[param_key(key)] if index is None else got[param_key(key)][index]
        return out

    return ParamSource(shape_dtype, fetch)


def load_model(path: str, dtype=None, shardings: Shardings = None, compute_dtype=None,
               remat: str = "none", scan_layers: bool = False, attention_impl: str = "auto",
               attention_axes: AttentionAxes | None = None) -> Qwen3VLForConditionalGeneration:
    """A Flax model with the parameters of a checkpoint (converted or trained), in the layout
    scan_layers asks for, whichever the checkpoint was saved in.

    attention_impl and attention_axes (models/qwen3_vl/attention.py) are runtime choices, not
    stored with it."""
    loc = find_params(path)
    cfg, _ = read_model_config(loc.config_dir)
    cfg = cfg.replace(attention_impl=attention_impl, attention_axes=attention_axes)
    flat = restore_params(path, cfg, dtype, shardings, scan_layers=scan_layers)
    param_dtype = next(iter(flat.values())).dtype
    model = abstract_model(cfg, compute_dtype or param_dtype, param_dtype, remat, scan_layers)
    for p, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        var.set_value(flat[param_key(p)])
    return model
