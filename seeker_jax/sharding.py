"""Logical axis names -> mesh shardings: one small rule table, used by the sampler and trainers.

Every parameter carries `logical_axes` metadata (one name per dimension, e.g. ("embed", "mlp")).
A rule table maps each logical name to a mesh axis (or a tuple of mesh axes, or None for
replicated). The first rule for a name wins; names with no rule are replicated. A mesh axis is
used at most once per array, and a dimension that the mesh axes do not divide is replicated
instead of failing, so one table serves every model size.
"""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from seeker_jax.models.qwen3_vl.attention import AttentionAxes

MeshAxes = str | tuple[str, ...] | None
Rules = Sequence[tuple[str, MeshAxes]]

# FSDP over the model width, tensor parallelism over heads / MLP / vocab.
DEFAULT_RULES: tuple[tuple[str, MeshAxes], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("vocab", "tensor"),
    ("mlp", "tensor"),
    ("q_heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("vision_embed", "fsdp"),
    ("vision_mlp", "tensor"),
    ("vision_qkv", "tensor"),
    ("vision_merged", "fsdp"),
)


MESH_AXES = ("data", "fsdp", "tensor")


def mesh_axes_of(logical: str, rules: Rules) -> tuple[str, ...]:
    """The mesh axes a logical name maps to under `rules` (the first rule wins; none: ())."""
    for name, axes in rules:
        if name == logical:
            return _as_tuple(axes)
    return ()


def attention_axes(rules: Rules) -> AttentionAxes:
    """The mesh axes of the batch and the heads for attention kernels run under shard_map
    (splash), read from the same rules that shard the arrays: override `mesh.rules` and the
    kernel's sharding follows."""
    return AttentionAxes(batch=mesh_axes_of("batch", rules), heads=mesh_axes_of("q_heads", rules))


def rules_from_config(rules: Sequence) -> tuple[tuple[str, MeshAxes], ...]:
    """A config's `c.mesh.rules` (pairs of logical name and mesh axes) as a checked Rules.

    Why checked: a typo in a mesh axis ("fdsp") would otherwise replicate that dimension
    silently, and the run would just be slower or out of memory.
    """
    out = []
    for i, rule in enumerate(rules):
        if not (isinstance(rule, (tuple, list)) and len(rule) == 2 and isinstance(rule[0], str)):
            raise ValueError(f"mesh.rules[{i}] = {rule!r}: a rule is (logical_name, mesh_axes), "
                             "e.g. ('embed', 'fsdp') or ('batch', ('data', 'fsdp'))")
        name, axes = rule
        axes = tuple(axes) if isinstance(axes, list) else axes
        bad = [a for a in _as_tuple(axes) if a not in MESH_AXES]
        if bad:
            raise ValueError(f"mesh.rules[{i}] ({name!r}): unknown mesh axis {bad}; the mesh "
                             f"axes are {MESH_AXES}")
        out.append((name, axes))
    return tuple(out)


def make_mesh(shape: dict[str, int]) -> Mesh:
    """A mesh with Auto (GSPMD-style) axes, e.g. make_mesh({"fsdp": 4, "tensor": 2})."""
    names = tuple(shape)
    return jax.make_mesh(tuple(shape.values()), names,
                         axis_types=(jax.sharding.AxisType.Auto,) * len(names))


def _as_tuple(axes: MeshAxes) -> tuple[str, ...]:
    if axes is None:
        return ()
    return (axes,) if isinstance(axes, str) else tuple(axes)


def logical_to_pspec(logical_axes: Sequence[str | None], rules: Rules, mesh: Mesh | None = None,
                     shape: Sequence[int] | None = None) -> PartitionSpec:
    """PartitionSpec for one array whose dimensions have these logical names.

    With `mesh`, mesh axes it lacks are dropped; with `mesh` and `shape`, a dimension is
    sharded only over the mesh axes whose product divides it.
    """
    table: dict[str, tuple[str, ...]] = {}
    for name, axes in rules:
        table.setdefault(name, _as_tuple(axes))
    used: set[str] = set()
    spec: list[MeshAxes] = []
    for dim, name in enumerate(logical_axes):
        chosen: list[str] = []
        for axis in table.get(name, ()) if name is not None else ():
            if axis in used or (mesh is not None and axis not in mesh.shape):
                continue
            if mesh is not None and shape is not None:
                size = int(np.prod([mesh.shape[a] for a in chosen + [axis]]))
                if shape[dim] % size:
                    continue
            chosen.append(axis)
        used.update(chosen)
        spec.append(None if not chosen else chosen[0] if len(chosen) == 1 else tuple(chosen))
    while spec and spec[-1] is None:
        spec.pop()
    return PartitionSpec(*spec)


def _param_sharding(var: nnx.Variable, mesh: Mesh, rules: Rules) -> NamedSharding:
    axes = getattr(var, "logical_axes", None)
    shape = var[...].shape
    if axes is None:
        return NamedSharding(mesh, PartitionSpec())
    return NamedSharding(mesh, logical_to_pspec(axes, rules, mesh, shape))


def model_shardings(model: nnx.Module, mesh: Mesh, rules: Rules = DEFAULT_RULES) -> nnx.State:
    """The NamedSharding of every variable of `model` (an nnx.State of the same structure)."""
    state = nnx.state(model)
    return jax.tree.map(lambda v: _param_sharding(v, mesh, rules), state,
                        is_leaf=lambda x: isinstance(x, nnx.Variable))


def shard_model(model: nnx.Module, mesh: Mesh, rules: Rules = DEFAULT_RULES) -> nnx.Module:
    """Moves every parameter of `model` onto `mesh` per `rules`, in place; returns the model."""
    state = nnx.state(model)
    shardings = model_shardings(model, mesh, rules)
    values = jax.tree.map(lambda v: v[...], state, is_leaf=lambda x: isinstance(x, nnx.Variable))
    placed = jax.tree.map(lambda v, s: jax.device_put(v, s), values, shardings,
                          is_leaf=lambda x: isinstance(x, NamedSharding))
    nnx.update(model, placed)
    return model


def array_sharding(mesh: Mesh | None, logical_axes: Sequence[str | None], shape: Sequence[int],
                   rules: Rules = DEFAULT_RULES) -> NamedSharding | None:
    """Sharding of a non-parameter array (a KV cache, a batch); None without a mesh."""
    if mesh is None:
        return None
    return NamedSharding(mesh, logical_to_pspec(logical_axes, rules, mesh, shape))


__all__ = ["DEFAULT_RULES", "MESH_AXES", "Rules", "rules_from_config", "array_sharding",
           "attention_axes", "logical_to_pspec", "make_mesh", "mesh_axes_of", "model_shardings",
           "shard_model"]
