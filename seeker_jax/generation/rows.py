"""The sampler's host side, apart from the Sampler: per-row state, shape buckets, the
unrolled decoding graph, MRoPE positions of an appended segment, and the vision features of a
segment in token order. Pure functions and plain records; the Sampler (sampler.py) owns them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seeker_jax.generation.conversation import Turn
from seeker_jax.generation.sampling import SamplingParams
from seeker_jax.models.chat import Segment
from seeker_jax.models.qwen3_vl.modeling import Qwen3VLForConditionalGeneration
from seeker_jax.models.qwen3_vl.rope import get_rope_index_np
from seeker_jax.models.qwen3_vl.stacking import unstack_module


def bucket(n: int, minimum: int = 16) -> int:
    """The power of two >= max(n, minimum)."""
    n = max(int(n), int(minimum), 1)
    return 1 << (n - 1).bit_length()


def decoding_graph(model: Qwen3VLForConditionalGeneration) -> Qwen3VLForConditionalGeneration:
    """The model as the sampler runs it: the decoder layers unrolled.

    A scanned decoder (a training choice that saves compile time and memory) would carry the
    KV cache through its scan, a copy of the whole cache per token. So a stacked decoder
    (stacking.py) is returned as a model whose language model holds one layer module per
    slice (new arrays: the sampler copies its weights anyway); the vision tower, run once per
    prefill, keeps its scan and shares the given arrays. `model` itself when it does not scan.
    """
    if not getattr(model.model.language_model, "scan_layers", False):
        return model
    unrolled = nnx.merge(*nnx.split(model))
    lm = unrolled.model.language_model
    lm.layers = nnx.List(unstack_module(lm.layers))
    lm.scan_layers = False
    return unrolled


def segment_positions(input_ids: np.ndarray, mm_token_type_ids: np.ndarray,
                      image_grid_thw: np.ndarray | None, video_grid_thw: np.ndarray | None,
                      start: int, spatial_merge_size: int = 2) -> tuple[np.ndarray, int]:
    """MRoPE positions (3, L) of a segment appended where the next text position is `start`.

    get_rope_index numbers every span relative to a running `cur`, so a segment's positions
    are its own index shifted by `start`. Also returns the next `start` (the position a text
    token after the segment would get), read off a dummy text token appended at the end.
    """
    ids = np.append(np.asarray(input_ids), 0)[None]
    types = np.append(np.asarray(mm_token_type_ids), 0)[None]
    pos, _ = get_rope_index_np(ids, types, image_grid_thw, video_grid_thw, None,
                               spatial_merge_size)
    pos = pos[:, 0].astype(np.int64) + start
    return pos[:, :-1].astype(np.int32), int(pos[0, -1])


def features_in_token_order(per_kind: dict[int, tuple[jax.Array, jax.Array, int]],
                            types: np.ndarray) -> tuple[jax.Array, jax.Array] | None:
    """A segment's vision features in token order: per_kind maps a token type (1 image,
    2 video) to the tower's padded outputs (features (N, D), DeepStack (k, N, D)) and how many
    are real; types (L,) are the segment's mm_token_type_ids. None for a text segment.
    A feature count that differs from the token count is an error (a cut or doubled span)."""
    if not per_kind:
        if (types != 0).any():
            raise ValueError("segment has vision tokens but no pixels")
        return None
    for kind, name in ((1, "image"), (2, "video")):
        n = per_kind[kind][2] if kind in per_kind else 0
        if int((types == kind).sum()) != n:
            raise ValueError(f"{name} features and {name} tokens do not match: "
                             f"{int((types == kind).sum())} tokens, {n} features. A vision "
                             "span was cut or duplicated.")
    kinds = sorted(per_kind)
    feats = jnp.concatenate([per_kind[k][0] for k in kinds])
    deep = jnp.concatenate([per_kind[k][1] for k in kinds], axis=1)
    # padded outputs: kind k's real features start where its padded block starts
    base = {k: sum(per_kind[j][0].shape[0] for j in kinds if j < k) for k in kinds}
    visual = types[types != 0]
    order = np.empty(len(visual), np.int64)
    for k in kinds:
        order[visual == k] = base[k] + np.arange(per_kind[k][2])
    return feats[order], deep[:, order]


@dataclass(frozen=True)
class ForkPoint:
    """A row right after a prefill, before its first token joined the conversation."""

    n_ids: int
    n_pieces: int   # entries of `positions`
    cur: int
    max_new: int


@dataclass
class Row:
    episode: int = 0         # folds into the sampling key (with the token index)
    ids: list[int] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    policy: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)  # (3, n) per added piece
    segments: list[Segment] = field(default_factory=list)
    pending_visual: list[tuple[jax.Array, jax.Array]] = field(default_factory=list)
    written: int = 0         # tokens whose keys are in the cache (slots 0..written-1)
    cur: int = 0             # the MRoPE position of the next token after `ids`
    turn: list[int] = field(default_factory=list)
    turn_lps: list[float] = field(default_factory=list)
    turn_top: list[tuple[np.ndarray, np.ndarray] | None] = field(default_factory=list)
    active: bool = False
    max_new: int = 0
    forced: list[int] = field(default_factory=list)
    result: Turn | None = None
    fork_point: ForkPoint | None = None  # set by a prefill, cleared once the row decodes
    params: SamplingParams | None = None  # None: the sampler's


def per_row(top, batch_size: int) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """A program's top alternatives ((B, n) ids, (B, n) log-probs, or None) as one entry per
    row, on the host."""
    if top is None:
        return [None] * batch_size
    ids, lps = np.asarray(top[0]), np.asarray(top[1])
    return [(ids[b], lps[b]) for b in range(ids.shape[0])]


def plan_pieces(r: Row, max_chunk: int) -> list[dict]:
    """A row's unwritten tokens (from r.written on) as pieces of <= max_chunk tokens, each
    with its ids, MRoPE positions (3, n), start slot and the vision features of its tokens."""
    ids = np.asarray(r.ids[r.written:], np.int32)
    types = np.asarray(r.types[r.written:], np.int32)
    positions = np.concatenate(r.positions, axis=1)[:, r.written:]
    feats = deep = None
    if r.pending_visual:
        feats = jnp.concatenate([f for f, _ in r.pending_visual])
        deep = jnp.concatenate([d for _, d in r.pending_visual], axis=1)
    pieces, used = [], 0
    for lo in range(0, len(ids), max_chunk):
        hi = min(lo + max_chunk, len(ids))
        n_vis = int((types[lo:hi] != 0).sum())
        pieces.append(dict(ids=ids[lo:hi], positions=positions[:, lo:hi],
                           start=r.written + lo,
                           feats=feats[used:used + n_vis] if n_vis else None,
                           deep=deep[:, used:used + n_vis] if n_vis else None))
        used += n_vis
    return pieces


@dataclass(frozen=True)
class ExtendInputs:
    """One extend call's batch: ids (B, L), positions (3, B, L), write slots, valid counts and
    forced first tokens (B,), vision features (F, D) / DeepStack (k, F, D) padded to a bucket
    (or None). Rows not in the call write to the scratch slots at max_len."""

    ids: np.ndarray
    positions: np.ndarray
    write: np.ndarray
    n_valid: np.ndarray
    first: np.ndarray
    feats: jax.Array | None
    deep: jax.Array | None


def extend_inputs(part: dict[int, dict], forced: dict, batch_size: int, pad_id: int,
                  max_len: int, min_bucket: int) -> ExtendInputs:
    """The padded batch of one extend call from the rows' pieces (plan_pieces)."""
    B = batch_size
    L = bucket(max(len(p["ids"]) for p in part.values()), min_bucket)
    ids = np.full((B, L), pad_id, np.int32)
    positions = np.zeros((3, B, L), np.int32)
    write = np.full((B,), max_len, np.int32)
    n_valid = np.ones((B,), np.int32)
    first = np.full((B,), -1, np.int32)
    feats, deep = [], []
    for row in sorted(part):
        p = part[row]
        n = len(p["ids"])
        ids[row, :n], positions[:, row, :n] = p["ids"], p["positions"]
        positions[:, row, n:] = p["positions"][:, -1:] + 1 + np.arange(L - n)
        write[row], n_valid[row] = p["start"], n
        if p["feats"] is not None:
            feats.append(p["feats"]), deep.append(p["deep"])
        if forced.get(row):
            first[row] = forced[row][0]
    f = d = None
    if feats:
        f, d = jnp.concatenate(feats), jnp.concatenate(deep, axis=1)
        F = bucket(f.shape[0], min_bucket)
        f = jnp.pad(f, ((0, F - f.shape[0]), (0, 0)))
        d = jnp.pad(d, ((0, 0), (0, F - d.shape[1]), (0, 0)))
    return ExtendInputs(ids, positions, write, n_valid, first, f, d)
