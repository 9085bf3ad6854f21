"""Stacked layer storage for scanned models, and conversions to and from the per-layer layout.

With `scan_layers=True` the decoder layers (`model.language_model.layers`) and the vision
blocks (`model.visual.blocks`) are each ONE module whose variables carry a leading layer axis
(logical axis `LAYER_AXIS`, which no rule table shards): the scan reads them as stored, the
optimizer updates one array per weight name instead of one per layer and weight name, and no
stacked copy of the weights is made at each call.

The per-layer ("unrolled") layout, `...layers.<i>.<name>`, stays the canonical one: the HF
mapping table names it and the sampler decodes with it. A path of the stacked layout is the
same path without the index. The functions here convert flat {path: array} dicts between the
two, so a checkpoint or a learner state of either layout feeds a model of either.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

LAYER_AXIS = "layers"
# Where stacks live in Qwen3VLForConditionalGeneration: the module paths of the layer lists.
STACKS: tuple[tuple[str, ...], ...] = (("model", "language_model", "layers"),
                                       ("model", "visual", "blocks"))

Path = tuple


def stack_modules(modules: list[nnx.Module]) -> nnx.Module:
    """n modules of one structure -> one module of that structure whose every variable holds
    the n values stacked along a new leading axis, tagged `LAYER_AXIS` in its logical axes."""
    if not modules:
        raise ValueError("stack_modules needs at least one module")
    graphdef = nnx.graphdef(modules[0])
    flats = [dict(nnx.to_flat_state(nnx.state(m))) for m in modules]
    items = [(path, _retagged(var, jnp.stack([f[path].get_value() for f in flats]),
                              lambda axes: (LAYER_AXIS, *axes)))
             for path, var in flats[0].items()]
    return nnx.merge(graphdef, nnx.from_flat_state(items))


def unstack_module(module: nnx.Module) -> list[nnx.Module]:
    """The inverse of stack_modules: one module per slice of the leading axis (new arrays)."""
    graphdef = nnx.graphdef(module)
    flat = dict(nnx.to_flat_state(nnx.state(module)))
    n = next(iter(flat.values())).shape[0]
    return [nnx.merge(graphdef, nnx.from_flat_state(
        [(path, _retagged(var, _slice(var.get_value(), i), lambda axes: tuple(axes[1:])))
         for path, var in flat.items()])) for i in range(n)]


def _retagged(var: nnx.Variable, value, axes_fn) -> nnx.Variable:
    """A variable of var's type and metadata holding `value`, its logical axes axes_fn(axes)."""
    meta = dict(var.get_metadata())
    if meta.get("logical_axes") is not None:
        meta["logical_axes"] = axes_fn(meta["logical_axes"])
    return type(var)(value, **meta)


def _slice(x, i: int):
    """x[i]; of an abstract array (nnx.eval_shape, AOT), the abstract slice."""
    if isinstance(x, jax.ShapeDtypeStruct):
        return jax.ShapeDtypeStruct(x.shape[1:], x.dtype)
    return x[i]


def _stack_of(path: Path) -> int | None:
    """The length of the STACKS prefix `path` starts with, or None."""
    for prefix in STACKS:
        if tuple(path[:len(prefix)]) == prefix and len(path) > len(prefix):
            return len(prefix)
    return None


def split_index(path: Path) -> tuple[Path, int | None]:
    """A per-layer path -> (its stacked path, the layer index); any other path -> (path, None).

    ("model", "language_model", "layers", 3, "mlp", "up_proj", "kernel") ->
    (("model", "language_model", "layers", "mlp", "up_proj", "kernel"), 3)."""
    at = _stack_of(path)
    if at is None or not isinstance(path[at], int):
        return tuple(path), None
    return tuple(path[:at]) + tuple(path[at + 1:]), int(path[at])


def with_index(path: Path, index: int) -> Path:
    """A stacked path -> the per-layer path of layer `index` (the inverse of split_index)."""
    at = _stack_of(path)
    if at is None:
        raise ValueError(f"{'.'.join(map(str, path))} is not under a layer stack {STACKS}")
    return tuple(path[:at]) + (index,) + tuple(path[at:])


def _stacked_under(paths, prefix: Path) -> bool | None:
    """Whether the paths under one stack prefix are stacked (None: none are under it)."""
    n = len(prefix)
    found = [p for p in paths if tuple(p[:n]) == prefix and len(p) > n]
    if not found:
        return None
    return not isinstance(found[0][n], int)


def is_stacked(paths) -> bool:
    """Whether these paths (of one model) hold a stack in the stacked layout."""
    paths = list(paths)
    return any(_stacked_under(paths, prefix) for prefix in STACKS)


class Slice(NamedTuple):
    """Layer `index` of a stacked array, taken when `take()` is called (a lazy unstack)."""
    stacked: jax.Array
    index: int

    def take(self) -> jax.Array:
        return self.stacked[self.index]


def unstack_flat(flat: Mapping[Path, jax.Array], prefixes: tuple[Path, ...] = STACKS,
                 lazy: bool = False) -> dict[Path, jax.Array]:
    """Stacked layout -> per-layer layout (under `prefixes`): each stacked array becomes its n
    slices; lazy: `Slice`s, so a caller copying them one at a time never holds them all."""
    out = {}
    for path, x in flat.items():
        at = _stack_of(path)
        if at is None or isinstance(path[at], int) or tuple(path[:at]) not in prefixes:
            out[tuple(path)] = x
            continue
        for i in range(x.shape[0]):
            out[with_index(path, i)] = Slice(x, i) if lazy else x[i]
    return out


def stack_flat(flat: dict[Path, jax.Array], prefixes: tuple[Path, ...] = STACKS,
               consume: bool = False) -> dict[Path, jax.Array]:
    """Per-layer layout -> stacked layout (under `prefixes`): the slices of each weight name
    stacked in layer order. consume: empty `flat` and drop each weight name's slices once
    stacked, so a caller holding no other reference has both layouts of one name at a time."""
    out, slices = {}, {}
    for path in list(flat):
        x = flat.pop(path) if consume else flat[path]
        stacked, index = split_index(path)
        if index is None or tuple(path[:_stack_of(path)]) not in prefixes:
            out[tuple(path)] = x
        else:
            slices.setdefault(stacked, {})[index] = x
    for stacked in list(slices):
        by_index = slices.pop(stacked)
        n = len(by_index)
        if sorted(by_index) != list(range(n)):
            raise ValueError(f"{'.'.join(map(str, stacked))}: layers {sorted(by_index)} are not "
                             f"0..{n - 1}")
        out[stacked] = jnp.stack([by_index.pop(i) for i in range(n)])
    return out


def match_layout(flat: dict[Path, jax.Array], want, *, consume: bool = False,
                 lazy: bool = False) -> dict[Path, jax.Array]:
    """`flat` in the layout of the paths `want`, stack by stack (the sampler's model has its
    decoder unrolled and its vision blocks stacked): converted only where the layouts differ.
    consume / lazy: see stack_flat / unstack_flat (lazy slices are `Slice`s)."""
    want, have = list(want), list(flat)
    to_stack, to_unstack = [], []
    for prefix in STACKS:
        w, h = _stacked_under(want, prefix), _stacked_under(have, prefix)
        if w is None or h is None or w == h:
            continue
        (to_stack if w else to_unstack).append(prefix)
    out = flat if consume else dict(flat)
    if to_unstack:
        out = unstack_flat(out, tuple(to_unstack), lazy)
    if to_stack:
        out = stack_flat(out, tuple(to_stack), consume=True)
    return out


__all__ = ["LAYER_AXIS", "STACKS", "Slice", "is_stacked", "match_layout", "split_index", "stack_flat",
           "stack_modules", "unstack_flat", "unstack_module", "with_index"]
