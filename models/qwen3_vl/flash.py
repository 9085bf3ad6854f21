"""Memory-efficient attention in pure JAX: online softmax over key chunks, with a custom VJP.

Why: the reference materializes (B, H, Lq, S) float32 scores (and autodiff keeps the
probabilities for the backward pass). Here the forward keeps, per query, only the running max
m, the running sum l and the output accumulator; the backward recomputes each chunk's
probabilities from (m, l), as FlashAttention does. Peak temporaries are (B, H, Cq, Ck) per
step instead of (B, H, Lq, S). It runs anywhere (CPU included), so the semantics of the fused
kernels can be tested here.

Numerics match `attention.reference_attention` (float32 softmax, masked scores set to
float32 min): in particular a query that sees no key gets uniform weights over the S real
keys, as the reference does. Chunk padding (S or Lq not a multiple of the chunk) uses -inf
scores, which weigh exactly zero even in such a row.

Shapes: q (B, Lq, H, D), k/v (B, S, KVH, D), H a multiple of KVH (GQA, k/v never repeated).
The mask is given by its parts (causal, key validity (B, S), segment ids), and each chunk's
(B, Cq, Ck) piece is built inside the loop, so no (Lq, S) mask is ever built.
"""
from __future__ import annotations

import functools
import jax
import jax.numpy as jnp

_MIN = float(jnp.finfo(jnp.float32).min)


def _pad_to(x: jax.Array, n: int, axis: int) -> jax.Array:
    extra = n - x.shape[axis]
    if extra == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, extra)
    return jnp.pad(x, widths)


def _chunks(x: jax.Array, size: int) -> jax.Array:
    """(B, L, ...) with L a multiple of size -> (L/size, B, size, ...), the scan axis first."""
    B, L = x.shape[:2]
    return jnp.moveaxis(x.reshape(B, L // size, size, *x.shape[2:]), 1, 0)


def _unchunk(x: jax.Array) -> jax.Array:
    """(n, B, size, ...) -> (B, n*size, ...)."""
    n, B, size = x.shape[:3]
    return jnp.moveaxis(x, 0, 1).reshape(B, n * size, *x.shape[3:])


def _scores(qc, kc, qb, kb, causal, S, scale):
    """Masked float32 scores of one (query chunk, key chunk), (B, KVH, G, Cq, Ck).

    qb = (query indices (Cq,), query segments (B, Cq)); kb = (key indices (Ck,), key
    validity (B, Ck), key segments (B, Ck)). Masked keys get float32 min (the reference's
    value); keys past S (chunk padding) get -inf. Also returns the (B, 1, 1, Cq, Ck)
    visibility, used to zero the gradient of masked scores.
    """
    (qi, qseg), (ki, kvalid, kseg) = qb, kb
    s = jnp.einsum("bqhgd,bkhd->bhgqk", qc, kc).astype(jnp.float32) * scale
    visible = kvalid[:, None, :] & (qseg[:, :, None] == kseg[:, None, :])
    if causal:
        visible = visible & (ki[None, None, :] <= qi[None, :, None])
    visible = visible[:, None, None]
    s = jnp.where(visible, s, _MIN)
    s = jnp.where((ki < S)[None, None, None, None, :], s, -jnp.inf)
    return s, visible


def _key_block(j, keys, ck):
    """Key chunk j: (key indices (Ck,), validity (B, Ck), segments (B, Ck))."""
    kvalid, kseg = keys
    return j * ck + jnp.arange(ck), kvalid, kseg


def _forward(qc, qb, k, v, keys, causal, S, scale, ck):
    """One query chunk against all key chunks. qc (B, Cq, KVH, G, D); k/v (n, B, Ck, KVH, D);
    keys = (validity, segments), each (n, B, Ck).

    Returns out (B, Cq, KVH, G, D) in q's dtype and the softmax statistics m, l
    (B, KVH, G, Cq) float32 (probabilities are exp(s - m) / l).
    """
    B, Cq, KVH, G, D = qc.shape

    def step(carry, xs):
        m, l, acc = carry
        j, kc, vc, kvalid, kseg = xs
        s, _ = _scores(qc, kc, qb, _key_block(j, (kvalid, kseg), ck), causal, S, scale)
        m_new = jnp.maximum(m, s.max(-1))
        corr = jnp.exp(m - m_new)
        p = jnp.exp(s - m_new[..., None])
        l = l * corr + p.sum(-1)
        pv = jnp.einsum("bhgqk,bkhd->bhgqd", p, vc.astype(jnp.float32))
        return (m_new, l, acc * corr[..., None] + pv), None

    init = (jnp.full((B, KVH, G, Cq), -jnp.inf, jnp.float32),
            jnp.zeros((B, KVH, G, Cq), jnp.float32),
            jnp.zeros((B, KVH, G, Cq, D), jnp.float32))
    (m, l, acc), _ = jax.lax.scan(step, init, (jnp.arange(k.shape[0]), k, v, *keys))
    out = jnp.einsum("bhgqd->bqhgd", acc / l[..., None]).astype(qc.dtype)
    return out, m, l


def _backward_chunk(qc, qb, do, o, m, l, k, v, keys, causal, S, scale, ck):
    """Gradients for one query chunk: dq (B, Cq, KVH, G, D) and this chunk's share of
    dk/dv (n, B, Ck, KVH, D), recomputing probabilities from (m, l) key chunk by key chunk."""
    do32 = do.astype(jnp.float32)
    delta = jnp.einsum("bqhgd,bqhgd->bhgq", do32, o.astype(jnp.float32))

    def step(dq, xs):
        j, kc, vc, kvalid, kseg = xs
        s, visible = _scores(qc, kc, qb, _key_block(j, (kvalid, kseg), ck), causal, S,
                             scale)
        p = jnp.exp(s - m[..., None]) / l[..., None]
        dv = jnp.einsum("bhgqk,bqhgd->bkhd", p, do32)
        dp = jnp.einsum("bqhgd,bkhd->bhgqk", do32, vc.astype(jnp.float32))
        ds = jnp.where(visible, p * (dp - delta[..., None]), 0.0) * scale
        dq = dq + jnp.einsum("bhgqk,bkhd->bqhgd", ds, kc.astype(jnp.float32))
        dk = jnp.einsum("bhgqk,bqhgd->bkhd", ds, qc.astype(jnp.float32))
        return dq, (dk, dv)

    dq, (dk, dv) = jax.lax.scan(step, jnp.zeros(qc.shape, jnp.float32),
                                (jnp.arange(k.shape[0]), k, v, *keys))
    return dq, dk, dv


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def _flash(q, k, v, q_seg, kv_valid, kv_seg, causal, S, chunks):
    return _flash_fwd(q, k, v, q_seg, kv_valid, kv_seg, causal, S, chunks)[0]


def _flash_fwd(q, k, v, q_seg, kv_valid, kv_seg, causal, S, chunks):
    """q (nq, B, Cq, KVH, G, D), q_seg (nq, B, Cq); k/v (nk, B, Ck, KVH, D), kv_valid /
    kv_seg (nk, B, Ck) -> out like q, and the residuals of the backward pass."""
    cq, ck, scale = chunks

    def one(xs):
        i, qc, qs = xs
        qb = (i * cq + jnp.arange(cq), qs)
        return _forward(qc, qb, k, v, (kv_valid, kv_seg), causal, S, scale, ck)

    out, m, l = jax.lax.map(one, (jnp.arange(q.shape[0]), q, q_seg))
    return out, (q, k, v, q_seg, kv_valid, kv_seg, out, m, l)


def _flash_bwd(causal, S, chunks, res, do):
    cq, ck, scale = chunks
    q, k, v, q_seg, kv_valid, kv_seg, out, m, l = res

    def one(carry, xs):
        dk, dv = carry
        i, qc, qs, doc, oc, mc, lc = xs
        qb = (i * cq + jnp.arange(cq), qs)
        dq, dk_i, dv_i = _backward_chunk(qc, qb, doc, oc, mc, lc, k, v, (kv_valid, kv_seg),
                                         causal, S, scale, ck)
        return (dk + dk_i, dv + dv_i), dq

    zeros = (jnp.zeros(k.shape, jnp.float32), jnp.zeros(v.shape, jnp.float32))
    (dk, dv), dq = jax.lax.scan(one, zeros, (jnp.arange(q.shape[0]), q, q_seg, do, out, m, l))
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None, None, None


_flash.defvjp(_flash_fwd, _flash_bwd)


def chunked_attention(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool,
                      kv_valid: jax.Array | None = None, q_segment_ids: jax.Array | None = None,
                      kv_segment_ids: jax.Array | None = None, q_chunk: int = 512,
                      kv_chunk: int = 512) -> jax.Array:
    """q (B, Lq, H, D), k/v (B, S, KVH, D) -> (B, Lq, H, D); see the module docstring.

    Query i sees key j when kv_valid[b, j] (default all), q_segment_ids[b, i] ==
    kv_segment_ids[b, j] (default one segment), and, if causal, j <= i (the query and key
    sequences are aligned: query i sits at key slot i).
    """
    B, Lq, H, D = q.shape
    S, kvh = k.shape[1], k.shape[2]
    if H % kvh:
        raise ValueError(f"chunked attention: {H} query heads are not a multiple of "
                         f"{kvh} key/value heads")
    if (q_segment_ids is None) != (kv_segment_ids is None):
        raise ValueError("chunked attention: give both q_segment_ids and kv_segment_ids, or "
                         "neither")
    kv_valid = jnp.ones((B, S), bool) if kv_valid is None else jnp.asarray(kv_valid, bool)
    q_seg = (jnp.zeros((B, Lq), jnp.int32) if q_segment_ids is None
             else jnp.asarray(q_segment_ids, jnp.int32))
    kv_seg = (jnp.zeros((B, S), jnp.int32) if kv_segment_ids is None
              else jnp.asarray(kv_segment_ids, jnp.int32))
    cq, ck = min(q_chunk, Lq), min(kv_chunk, S)
    lq_pad, s_pad = -(-Lq // cq) * cq, -(-S // ck) * ck
    qg = _pad_to(q, lq_pad, 1).reshape(B, lq_pad, kvh, H // kvh, D)
    kc, vc = _chunks(_pad_to(k, s_pad, 1), ck), _chunks(_pad_to(v, s_pad, 1), ck)
    out = _flash(_chunks(qg, cq), kc, vc, _chunks(_pad_to(q_seg, lq_pad, 1), cq),
                 _chunks(_pad_to(kv_valid, s_pad, 1), ck), _chunks(_pad_to(kv_seg, s_pad, 1), ck),
                 bool(causal), S, (cq, ck, D ** -0.5))
    return _unchunk(out).reshape(B, lq_pad, H, D)[:, :Lq]
