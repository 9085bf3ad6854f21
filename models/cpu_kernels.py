"""A decode step's kernels on CPU, as XLA FFI calls: a few rows times a packed weight, and
one query per row against the KV cache.

A decode step multiplies a handful of rows (the batch) by every weight of the decoder and by
the LM head, so on CPU it is a stream over all the weights per token. XLA:CPU's dot runs these
(8, K) @ (K, N) products at 12–15 GB/s here; `matmul` (`csrc/decode_kernels.cc`) reads a
packed copy of the weight, (ceil(N / 48), K, 48) panels, one forward stream each, at about
twice that (bench/small_matmul.py). `decode_attention` replaces the fused multiply-reduce XLA
makes of a one-query attention (40% of a vocab-1,000 decode step with the matmul kernel on):
per (row, kv head) it reads the cache slots once, softmax in float32 as the reference does.
Only the sampler uses them, inside its jitted programs (`decode_program`).

The kernels are C++ built on first use with the system compiler (`c++ -O3 -march=native`) into
a cache folder (`$SEEKER_JAX_CACHE`, else ~/.cache/seeker_jax), keyed by its source, the
jaxlib version and the CPU, and loaded with ctypes. They need an x86-64 CPU with AVX-512. Where
they cannot be built (no compiler, another CPU), `available()` is False, says why once, and
callers use XLA. SEEKER_JAX_CPU_KERNELS=0 turns them off.
"""
from __future__ import annotations

import contextlib
import contextvars
import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp

BLOCK = 48  # output columns per packed panel (the kernel's kBlock)
MAX_ROWS = 16  # more rows than this: XLA's dot (the kernel re-reads the weight per 8 rows)
TARGETS = {"seeker_small_matmul": "SeekerSmallMatmul",
           "seeker_decode_attention": "SeekerDecodeAttention"}
SOURCE = Path(__file__).parent / "csrc" / "decode_kernels.cc"

_state: dict = {}


def _cpu_id() -> str:
    """What -march=native compiles for: the CPU model and its flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    keep = [line for line in text.splitlines() if line.startswith(("model name", "flags"))]
    return "\n".join(keep[:2])


def _cache_dir() -> Path:
    root = os.environ.get("SEEKER_JAX_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "seeker_jax")
    return Path(root) / "kernels"


def _build() -> Path:
    """The compiled library, built once per (source, jaxlib, CPU) and cached."""
    import jaxlib

    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + jaxlib.__version__.encode() + _cpu_id().encode()).hexdigest()
    out = _cache_dir() / f"decode_kernels-{key[:16]}.so"
    if out.exists():
        return out
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        raise RuntimeError("no C++ compiler found (set CXX, or install g++)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    cmd = [compiler, "-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w",
           f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", tmp]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        os.unlink(tmp)
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed:\n{done.stderr.strip()[-2000:]}")
    os.replace(tmp, out)  # atomic: another process may be building the same file
    return out


def available() -> bool:
    """Whether the kernels are built and registered with XLA:CPU (built on the first call)."""
    if "ok" in _state:
        return _state["ok"]
    ok, why = False, None
    if os.environ.get("SEEKER_JAX_CPU_KERNELS", "1") == "0":
        why = "SEEKER_JAX_CPU_KERNELS=0"
    elif platform.machine().lower() not in ("x86_64", "amd64"):
        why = f"it is x86-64 only (this is {platform.machine()})"
    else:
        try:
            lib = ctypes.cdll.LoadLibrary(str(_build()))
            for target, symbol in TARGETS.items():
                jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)),
                                            platform="cpu")
            _state["lib"] = lib
            ok = True
        except Exception as e:  # any build or load failure: fall back, say why once
            why = str(e)
    if not ok:
        warnings.warn(f"the CPU decode kernels are off, XLA runs instead: {why}",
                      stacklevel=2)
    _state["ok"] = ok
    return ok


@jax.jit
def pack(w: jax.Array) -> jax.Array:
    """(K, N) float32 -> (ceil(N / 48), K, 48): panel b holds columns 48b..48b+47, zero
    past N."""
    K, N = w.shape
    blocks = -(-N // BLOCK)
    w = jnp.pad(w.astype(jnp.float32), ((0, 0), (0, blocks * BLOCK - N)))
    return w.reshape(K, blocks, BLOCK).transpose(1, 0, 2)


def unpack(packed: jax.Array, n: int) -> jax.Array:
    """pack's inverse: (blocks, K, 48) -> (K, n)."""
    blocks, K, _ = packed.shape
    return packed.transpose(1, 0, 2).reshape(K, blocks * BLOCK)[:, :n]


def matmul(x: jax.Array, packed: jax.Array, n: int) -> jax.Array:
    """x (..., K) float32 @ the (K, n) weight that `packed` holds -> (..., n) float32. Needs
    available(); any number of rows is correct, MAX_ROWS or fewer are fast."""
    out = jax.ShapeDtypeStruct(x.shape[:-1] + (n,), jnp.float32)
    return jax.ffi.ffi_call("seeker_small_matmul", out)(x.astype(jnp.float32), packed)


def attention_applies(q: jax.Array, key: jax.Array) -> bool:
    """Whether decode_attention takes q (B, 1, H, D) against key (B, KVH, S, D): one query
    per row, float32, D a multiple of 16."""
    return (q.ndim == 4 and q.shape[1] == 1 and q.shape[-1] % 16 == 0
            and q.dtype == key.dtype == jnp.float32)


def decode_attention(q: jax.Array, key: jax.Array, value: jax.Array, mask: jax.Array
                     ) -> jax.Array:
    """attention.cache_attention for one query per row: q (B, 1, H, D), the whole head-major
    cache key / value (B, KVH, S, D), mask (B, 1, W) bool over the first W <= S slots ->
    (B, 1, H, D). Needs available() and attention_applies."""
    B, _, H, D = q.shape
    out = jax.ShapeDtypeStruct((B, H, D), jnp.float32)
    y = jax.ffi.ffi_call("seeker_decode_attention", out)(q[:, 0], key, value, mask[:, 0])
    return y[:, None]


# What a sampler's program being traced has given (see `decode_program`).
_PROGRAM: contextvars.ContextVar[dict | None] = contextvars.ContextVar("seeker_cpu_program",
                                                                      default=None)


@contextlib.contextmanager
def decode_program(pairs):
    """While a sampler's jitted program is traced: the decoder uses these kernels.
    `linear_weight(module)` returns the packed weight given for `module` (pairs of (module,
    packed array)) and `in_decode_program()` is True."""
    token = _PROGRAM.set({id(module): w for module, w in pairs})
    try:
        yield
    finally:
        _PROGRAM.reset(token)


def in_decode_program() -> bool:
    return _PROGRAM.get() is not None


def linear_weight(module) -> jax.Array | None:
    """The packed weight given for `module` in the enclosing `decode_program`, else None."""
    program = _PROGRAM.get()
    return None if program is None else program.get(id(module))


def few_rows(x: jax.Array) -> bool:
    """Whether x (..., K) has at most MAX_ROWS rows."""
    return math.prod(x.shape[:-1]) <= MAX_ROWS


__all__ = ["BLOCK", "MAX_ROWS", "attention_applies", "available", "decode_attention",
           "decode_program", "few_rows", "in_decode_program", "linear_weight", "matmul", "pack",
           "unpack"]
