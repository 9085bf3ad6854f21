"""The safetensors file format, read and written a block of rows at a time, without mmap.

Why not the `safetensors` package here: it maps whole files, so every byte read stays in the
process's resident memory until the file is closed, and it hands back whole tensors that then
need a second copy to transpose. Streaming a checkpoint of many GB wants neither. The format
is small: 8 bytes little-endian header length, a JSON header
`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}` padded with
spaces, then the tensor bytes, row-major, little-endian. Tests check that transformers reads
what this writes, and that this reads what transformers writes.
"""
from __future__ import annotations

import dataclasses
import json
import os
import struct
from typing import BinaryIO, Callable

import jax.numpy as jnp
import numpy as np

_TO_ST = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64",
          "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8",
          "bool": "BOOL"}
_FROM_ST = {v: k for k, v in _TO_ST.items()}
BLOCK_BYTES = 64 << 20  # rows are read and written in blocks of about this size


class CheckpointError(ValueError):
    """A checkpoint whose tensors do not fit the model: named, with what was expected."""


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


@dataclasses.dataclass(frozen=True)
class StoredTensor:
    """Where one tensor lies: its file, dtype, shape and absolute byte offset."""
    path: str
    spec: TensorSpec
    offset: int


def read_header(path: str) -> dict[str, StoredTensor]:
    """The tensors of one file, checked against its size (a truncated file is named)."""
    bad = f"cannot read {path} (truncated or corrupt safetensors?)"
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                raise CheckpointError(f"{bad}: header of {n} bytes in a {size}-byte file")
            header = json.loads(f.read(n))
    except (OSError, struct.error, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{bad}: {e}") from e
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        if h.get("dtype") not in _FROM_ST:
            raise CheckpointError(f"{path}: {name} has dtype {h.get('dtype')}, expected one of "
                                  f"{sorted(_FROM_ST)}")
        spec = TensorSpec(name, tuple(h["shape"]), np.dtype(jnp.dtype(_FROM_ST[h["dtype"]])))
        begin, end = h["data_offsets"]
        if end - begin != spec.nbytes or 8 + n + end > size:
            raise CheckpointError(f"{bad}: {name} needs bytes {8 + n + begin}..{8 + n + end}, "
                                  f"the file has {size}")
        out[name] = StoredTensor(path, spec, 8 + n + begin)
    return out


def read_rows(f: BinaryIO, t: StoredTensor, lo: int, hi: int) -> np.ndarray:
    """Rows lo:hi (of dimension 0) of a stored tensor, read straight into a new array."""
    shape = t.spec.shape if t.spec.shape else (1,)
    row = int(np.prod(shape[1:], dtype=np.int64)) * t.spec.dtype.itemsize
    out = np.empty((hi - lo, *shape[1:]), t.spec.dtype)
    f.seek(t.offset + lo * row)
    if f.readinto(out.reshape(-1).view(np.uint8)) != out.nbytes:
        raise CheckpointError(f"{t.path} ends inside {t.spec.name} (truncated?)")
    return out if t.spec.shape else out.reshape(())


def write_safetensors(path: str, specs: list[TensorSpec], produce: Callable[[str], np.ndarray],
                      on_tensor: Callable[[int], None] | None = None) -> None:
    """Writes one safetensors file, asking `produce(name)` for one tensor at a time.

    The header (names, dtypes, shapes, offsets) is known up front from `specs`, so the file is
    written in one pass. A produced array may be a strided view (a transpose): it is copied
    out a block of rows at a time.
    """
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for s in specs:
        header[s.name] = {"dtype": _TO_ST[s.dtype.name], "shape": list(s.shape),
                          "data_offsets": [offset, offset + s.nbytes]}
        offset += s.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for s in specs:
            arr = np.asarray(produce(s.name))
            if arr.shape != s.shape or arr.dtype != s.dtype:
                raise CheckpointError(f"{s.name}: produced {arr.shape} {arr.dtype}, the header "
                                      f"says {s.shape} {s.dtype}")
            arr = arr.reshape(1, -1) if arr.ndim < 2 else arr
            rows = max(1, BLOCK_BYTES // max(1, arr[0].nbytes))
            for i in range(0, arr.shape[0], rows):
                f.write(np.ascontiguousarray(arr[i:i + rows]).reshape(-1).view(np.uint8))
            if on_tensor:
                on_tensor(s.nbytes)
