"""Attention for the Qwen3-VL towers: one dispatcher over named implementations.

Why: the reference materializes (B, H, Lq, S) float32 scores, most of the per-chip temporaries
at long sequence lengths. The fused implementations compute the same softmax block by block.

Implementations (`IMPLEMENTATIONS`, picked by the model config's `attention_impl`):
- "reference": the dense einsum + float32 softmax. Its numerics are the parity tests' bar.
- "chunked": online softmax over key chunks, pure JAX with a FlashAttention-style custom VJP
  (`flash.py`). Runs anywhere; equals the reference to float32 rounding.
- "splash": the Pallas TPU kernel (`jax.experimental.pallas.ops.tpu.splash_attention`) inside
  `jax.shard_map` over the context mesh (a Mosaic kernel cannot be partitioned automatically).
- "cudnn": `jax.nn.dot_product_attention(implementation="cudnn")`, GPU only, bfloat16 or
  float16 (`fused_sdpa` says how each mask goes in).
- "auto": splash on TPU, cudnn on GPU (chunked for float32, which cuDNN does not take), the
  reference elsewhere (CPU). `resolve_impl(name, platform)` resolves it for the platform the
  step will *run* on: the core passes the target's platform (an AOT compile for a TPU
  topology on a CPU host resolves to splash); without one, `jax.default_backend()`.

Kernels that run under `jax.shard_map` (splash) need to know which mesh axes carry the batch
and the heads: `AttentionAxes`, which the core derives from its sharding rules
(`seeker_jax.sharding.attention_axes`) and sets on the model config. models/ never names a
mesh axis itself.

What a query may see is an `AttentionMask` (causal with key padding, or segment ids), which
every implementation can express. A dense (B, Lq, S) boolean mask (the KV-cache decode path:
queries at per-row offsets write_index) is always run by the reference.

Shapes: q (B, Lq, H, D), k/v (B, S, KVH, D), H a multiple of KVH (GQA; k/v never repeated);
the KV cache is head-major (B, KVH, S, D) and read by `cache_attention`.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from seeker_jax.models.qwen3_vl.flash import chunked_attention

IMPLEMENTATIONS = ("auto", "reference", "chunked", "splash", "cudnn")



@dataclasses.dataclass(frozen=True)
class AttentionAxes:
    """The mesh axes that carry the batch and the attention heads, for a kernel run under
    shard_map (splash). Set by the core from its sharding rules, so a rule override moves the
    kernel's sharding with it."""

    batch: tuple[str, ...] = ()
    heads: tuple[str, ...] = ()


def check_impl(name: str) -> str:
    """The name itself, or a clear error listing the implementations."""
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"unknown attention_impl {name!r}; choose from {list(IMPLEMENTATIONS)}")
    return name


def resolve_impl(name: str, platform: str | None = None) -> str:
    """'auto' -> the implementation for `platform` ("tpu", "gpu", "cpu"; None: the default
    backend, i.e. where this process runs); other names are checked and returned."""
    if check_impl(name) != "auto":
        return name
    return {"tpu": "splash", "gpu": "cudnn"}.get(platform or jax.default_backend(),
                                                 "reference")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class AttentionMask:
    """What each query may see, in the form fused kernels take (never an (Lq, S) array).

    - causal with padding (text training / prefill): query i sees key j when j <= i and
      kv_valid[b, j]; queries and keys are the same sequence (Lq == S).
    - segments (vision blocks): query i sees key j when segment_ids[b, i] ==
      segment_ids[b, j]; padding slots share segment -1 so their rows stay finite.
    """
    kv_valid: jax.Array | None = None      # (B, S) bool
    segment_ids: jax.Array | None = None   # (B, S) int
    causal: bool = dataclasses.field(default=False, metadata=dict(static=True))

    def dense(self, Lq: int) -> jax.Array:
        """The (B, Lq, S) boolean visibility the reference takes (same as the text model's
        `visibility_mask` without a cache)."""
        if self.segment_ids is not None:
            seg = self.segment_ids
            visible = seg[:, :, None] == seg[:, None, :]
            return visible & self.kv_valid[:, None, :] if self.kv_valid is not None else visible
        if not self.causal:
            raise ValueError("an AttentionMask needs causal=True or segment_ids")
        S = Lq if self.kv_valid is None else self.kv_valid.shape[1]
        causal = jnp.tril(jnp.ones((Lq, S), bool))[None]
        if self.kv_valid is None:
            return causal
        return causal & self.kv_valid.astype(bool)[:, None, :]


def causal_mask(attention_mask: jax.Array | None) -> AttentionMask:
    """Causal attention over a (B, L) padding mask (1 real, 0 padding; None: all real)."""
    return AttentionMask(kv_valid=None if attention_mask is None
                         else jnp.asarray(attention_mask).astype(bool), causal=True)


def segment_mask(segment_ids: jax.Array) -> AttentionMask:
    """Bidirectional attention within each segment of (B, S) ids."""
    return AttentionMask(segment_ids=jnp.asarray(segment_ids, jnp.int32))


# ------------------------------------------------------------------------------- reference

def reference_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Grouped-query attention without repeating k/v.

    q (B, Lq, H, D), k/v (B, S, KVH, D), mask (B, Lq, S) bool -> (B, Lq, H, D). Softmax in
    float32; a row with nothing visible (padding) gets uniform weights instead of NaN.
    """
    B, Lq, H, D = q.shape
    kvh = k.shape[2]
    qg = q.reshape(B, Lq, kvh, H // kvh, D)
    scores = jnp.einsum("bqhgd,bkhd->bhgqk", qg, k).astype(jnp.float32) * (D ** -0.5)
    scores = jnp.where(mask[:, None, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bhgqk,bkhd->bqhgd", probs, v)
    return out.reshape(B, Lq, H, D)


def cache_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """reference_attention against a head-major KV cache: q (B, Lq, H, D), k/v
    (B, KVH, S, D), mask (B, Lq, S) bool -> (B, Lq, H, D). The same numbers; the cache is read
    in place by batched matmuls over (B, KVH) instead of being transposed first."""
    B, Lq, H, D = q.shape
    kvh = k.shape[1]
    qg = q.reshape(B, Lq, kvh, H // kvh, D)
    if Lq == 1:  # decode: multiply-reduce, which XLA fuses into one pass over the cache;
        # batched matmuls of one query row each cost more in call overhead than in FLOPs
        qg = jnp.swapaxes(qg, 1, 2)  # (B, KVH, 1, G, D)
        scores = (qg[:, :, 0, :, None, :] * k[:, :, None]).sum(-1)  # (B, KVH, G, S)
        scores = scores[:, :, :, None].astype(jnp.float32) * (D ** -0.5)  # (B, KVH, G, 1, S)
    else:
        scores = jnp.einsum("bqhgd,bhkd->bhgqk", qg, k).astype(jnp.float32) * (D ** -0.5)
    scores = jnp.where(mask[:, None, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    if Lq == 1:
        out = (probs[:, :, :, 0, :, None] * v[:, :, None]).sum(-2)  # (B, KVH, G, D)
        return out.reshape(B, 1, H, D)
    out = jnp.einsum("bhgqk,bhkd->bqhgd", probs, v)
    return out.reshape(B, Lq, H, D)


def reference_segment_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                                segment_ids: jax.Array) -> jax.Array:
    """Segment-masked attention per block, (B, S, H, D) -> (B, S, H, D), float32 softmax.

    A query sees the keys of its own segment only. Padding slots share segment -1, so their
    rows stay finite (no NaN into gradients) and never touch real ones. Memory is
    (B, H, S, S): per group, not per sequence.
    """
    scale = q.shape[-1] ** -0.5
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) * scale
    same = segment_ids[:, None, :, None] == segment_ids[:, None, None, :]
    scores = jnp.where(same, scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", probs, v)


def _reference(q, k, v, mask: AttentionMask) -> jax.Array:
    if mask.segment_ids is not None and mask.kv_valid is None and q.shape[2] == k.shape[2]:
        return reference_segment_attention(q, k, v, mask.segment_ids)
    return reference_attention(q, k, v, mask.dense(q.shape[1]))


def _chunked(q, k, v, mask: AttentionMask, q_chunk: int = 512, kv_chunk: int = 512):
    seg = mask.segment_ids
    return chunked_attention(q, k, v, causal=mask.causal, kv_valid=mask.kv_valid,
                             q_segment_ids=seg, kv_segment_ids=seg, q_chunk=q_chunk,
                             kv_chunk=kv_chunk)


# ------------------------------------------------------------------------------- cuDNN

CUDNN_DTYPES = (jnp.bfloat16, jnp.float16)  # what cuDNN's fused attention takes


def _is_right_padded(kv_valid: jax.Array) -> jax.Array:
    """() bool: every row's valid keys are a prefix (real tokens first, padding after)."""
    lengths = kv_valid.sum(1, dtype=jnp.int32)
    prefix = jnp.arange(kv_valid.shape[1], dtype=jnp.int32)[None] < lengths[:, None]
    return jnp.all(prefix == kv_valid)


def fused_sdpa(q, k, v, mask: AttentionMask, implementation: str = "cudnn") -> jax.Array:
    """`mask` said in `jax.nn.dot_product_attention`'s terms; q (B, L, H, D), k/v
    (B, L, KVH, D). GQA is native (k/v keep their fewer heads).

    - causal, no padding: `is_causal`, no mask array at all.
    - causal with padding: right padding (every training batch here) goes in as key lengths
      (cuDNN's padding-causal mask, no (L, L) array); any other padding as a dense
      (B, 1, L, L) mask, which cuDNN takes as a bias (and returns a bias gradient for). A
      `lax.cond` picks one at run time. A row with no real key at all gets length 1: its
      output (padding, never read by a real token) differs from the reference's uniform
      weights, as splash's does.
    - segments (vision blocks): a dense (B, 1, S, S) mask, per block like the reference.

    implementation="xla" runs the same call through XLA (any backend): what the CPU tests use
    to check this translation against the reference; "cudnn" needs a GPU.
    """
    sdpa = lambda **kw: jax.nn.dot_product_attention(q, k, v, implementation=implementation,
                                                     **kw)
    L = q.shape[1]
    if mask.segment_ids is not None:
        return sdpa(mask=mask.dense(L)[:, None])
    if not mask.causal:
        raise ValueError("an AttentionMask needs causal=True or segment_ids")
    if mask.kv_valid is None:
        return sdpa(is_causal=True)
    valid = mask.kv_valid.astype(bool)
    lengths = jnp.maximum(valid.sum(1, dtype=jnp.int32), 1)
    return jax.lax.cond(_is_right_padded(valid),
                        lambda: sdpa(is_causal=True, key_value_seq_lengths=lengths),
                        lambda: sdpa(mask=mask.dense(L)[:, None]))


def _cudnn(q, k, v, mask: AttentionMask) -> jax.Array:
    """cuDNN fused attention (GPU only, bfloat16 or float16), via `fused_sdpa`."""
    if jax.default_backend() != "gpu":
        raise ValueError(f"attention_impl 'cudnn' needs a GPU; this process runs on "
                         f"{jax.default_backend()!r}. Use 'auto' or 'reference' (or 'chunked').")
    if q.dtype not in CUDNN_DTYPES:
        raise ValueError(f"attention_impl 'cudnn' takes bfloat16 or float16 (cuDNN's fused "
                         f"attention has no {q.dtype} kernel); run the model in bfloat16, or "
                         "use 'auto' (float32 on a GPU runs 'chunked') or 'chunked'.")
    return fused_sdpa(q, k, v, mask, "cudnn")


# ------------------------------------------------------------------------------- splash

_LANES = 128
_PAD_SEGMENT = int(np.iinfo(np.int32).min)  # chunk padding: a segment no real slot uses


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _splash_local(q, k, v, seg, *, causal: bool, block: int, interpret: bool):
    """The kernel on one device's shard. q (B, L, H, D), k/v (B, L, KVH, D), seg (B, L) int32,
    L a multiple of block and D of 128 (padded by the caller)."""
    from jax.experimental.pallas.ops.tpu import splash_attention as sa

    B, L, H, D = q.shape
    kvh = k.shape[2]
    G = H // kvh
    base = sa.CausalMask((L, L)) if causal else sa.FullMask((L, L))
    sizes = sa.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block,
                          block_q_dkv=block, block_kv_dkv=block, block_kv_dkv_compute=block,
                          block_q_dq=block, block_kv_dq=block)
    kernel = sa.make_splash_mqa_single_device(sa.MultiHeadMask([base] * G), block_sizes=sizes,
                                              interpret=interpret)
    qg = jnp.einsum("blhgd->bhgld", q.reshape(B, L, kvh, G, D))      # (B, KVH, G, L, D)
    kt, vt = jnp.einsum("blhd->bhld", k), jnp.einsum("blhd->bhld", v)  # (B, KVH, L, D)

    def one(qh, kh, vh, s):
        return kernel(qh, kh, vh, segment_ids=sa.SegmentIds(q=s, kv=s))

    per_head = jax.vmap(one, in_axes=(0, 0, 0, None))                  # over KVH
    out = jax.vmap(per_head)(qg, kt, vt, seg)                          # over B
    return jnp.einsum("bhgld->blhgd", out).reshape(B, L, H, D)


def _mesh_specs(mesh, B: int, H: int, kvh: int, axes: AttentionAxes):
    """shard_map specs: the batch over axes.batch, heads over axes.heads where they divide
    both H and KVH (else the heads are replicated)."""
    def present(names):
        return [a for a in names if a in mesh.axis_names and mesh.shape[a] > 1]

    batch = present(axes.batch)
    size = int(np.prod([mesh.shape[a] for a in batch])) if batch else 1
    if B % size:
        raise ValueError(f"splash attention: batch {B} is not divisible by the mesh's batch "
                         f"axes {tuple(batch)} ({dict(mesh.shape)}); make the batch a "
                         f"multiple of {size}")
    heads = present(axes.heads)
    t = int(np.prod([mesh.shape[a] for a in heads])) if heads else 1
    h = tuple(heads) if heads and H % t == 0 and kvh % t == 0 else None
    b = tuple(batch) if batch else None
    P = jax.sharding.PartitionSpec
    return P(b, None, h, None), P(b, None)


def splash(q, k, v, mask: AttentionMask, *, block: int = 512, interpret: bool = False,
           axes: AttentionAxes | None = None) -> jax.Array:
    """Splash attention (TPU; `interpret=True` runs the Pallas interpreter elsewhere).

    Padding is expressed as segment ids (real 1, padding 0; vision: its own ids), so a padded
    query sees padded keys only: its output differs from the reference's (uniform weights) but
    is finite and never reaches a real token. L is padded to a multiple of the block and D to
    128 lanes with zeros (which change no score); the scale is applied to q first (the kernel
    does not scale).
    """
    if mask.segment_ids is None and mask.causal is False:
        raise ValueError("an AttentionMask needs causal=True or segment_ids")
    B, L, H, D = q.shape
    if k.shape[1] != L:
        raise ValueError(f"splash attention needs Lq == S (got {L} and {k.shape[1]}); a "
                         "cache call goes to the reference")
    if mask.segment_ids is not None:
        seg = mask.segment_ids.astype(jnp.int32)
        if mask.kv_valid is not None:
            seg = jnp.where(mask.kv_valid, seg, _PAD_SEGMENT + 1)
    elif mask.kv_valid is not None:
        seg = mask.kv_valid.astype(jnp.int32)
    else:
        seg = jnp.ones((B, L), jnp.int32)
    block = min(block, _round_up(L, _LANES))
    Lp, Dp = _round_up(L, block), _round_up(D, _LANES)
    pad = lambda x: jnp.pad(x, ((0, 0), (0, Lp - L), (0, 0), (0, Dp - D)))
    q = q * jnp.asarray(D ** -0.5, q.dtype)
    qp, kp, vp = pad(q), pad(k), pad(v)
    seg = jnp.pad(seg, ((0, 0), (0, Lp - L)), constant_values=_PAD_SEGMENT)
    local = lambda *a: _splash_local(*a, causal=mask.causal, block=block, interpret=interpret)
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or mesh.size == 1:
        out = local(qp, kp, vp, seg)
    else:
        if axes is None:
            raise ValueError("splash attention under a mesh needs the mesh axes of the batch "
                             "and the heads: set Qwen3VLConfig.attention_axes (the core does, "
                             "from its sharding rules: seeker_jax.sharding.attention_axes)")
        x_spec, s_spec = _mesh_specs(mesh, B, H, k.shape[2], axes)
        out = jax.shard_map(local, mesh=mesh, in_specs=(x_spec, x_spec, x_spec, s_spec),
                            out_specs=x_spec, check_vma=False)(qp, kp, vp, seg)
    return out[:, :L, :, :D]


# ------------------------------------------------------------------------------- dispatch

def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                          mask: AttentionMask | jax.Array, impl: str = "auto",
                          axes: AttentionAxes | None = None) -> jax.Array:
    """q (B, Lq, H, D), k/v (B, S, KVH, D) -> (B, Lq, H, D) under `impl` (IMPLEMENTATIONS).

    mask: an AttentionMask (training, prefill, vision blocks), or a dense (B, Lq, S) bool
    array (the KV-cache path), which always runs the reference.
    """
    if resolve_impl(impl) == "cudnn" and impl == "auto" and q.dtype not in CUDNN_DTYPES:
        impl = "chunked"  # cuDNN has no float32 kernel; chunked is the exact fused path
    impl = resolve_impl(impl)
    if not isinstance(mask, AttentionMask):
        return reference_attention(q, k, v, mask)
    if impl == "reference":
        return _reference(q, k, v, mask)
    if impl == "chunked":
        return _chunked(q, k, v, mask)
    if impl == "cudnn":
        return _cudnn(q, k, v, mask)
    return splash(q, k, v, mask, axes=axes)
