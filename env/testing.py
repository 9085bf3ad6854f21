"""Test media: videos whose frames say their own index, so a test can check which were sampled.

Frame i shows i in binary as a 4x4 grid of black/white blocks (16 bits, row-major, most
significant first), which survives lossy H.264 encoding. Used by tests and by bench/tools.py.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

GRID = 4


def index_frame(i: int, height: int, width: int) -> np.ndarray:
    """(height, width, 3) uint8 frame encoding i (0 <= i < 2**16)."""
    bits = np.array([(i >> (GRID * GRID - 1 - k)) & 1 for k in range(GRID * GRID)], np.uint8)
    blocks = (bits.reshape(GRID, GRID) * 255).astype(np.uint8)
    ys = np.arange(height) * GRID // height
    xs = np.arange(width) * GRID // width
    return np.repeat(blocks[ys][:, xs][..., None], 3, axis=2)


def read_index(frame: np.ndarray) -> int:
    """Inverse of index_frame on a decoded (possibly resized, lossy) frame."""
    h, w = frame.shape[:2]
    value = 0
    for r in range(GRID):
        for c in range(GRID):
            block = frame[r * h // GRID + h // (4 * GRID):(r + 1) * h // GRID - h // (4 * GRID),
                          c * w // GRID + w // (4 * GRID):(c + 1) * w // GRID - w // (4 * GRID)]
            value = (value << 1) | int(block.mean() > 127)
    return value


def write_index_video(path: str | os.PathLike, num_frames: int, fps: int = 10,
                      width: int = 128, height: int = 96, gop: int | None = None) -> Path:
    """Writes an H.264 mp4 of index frames with PyAV; gop is the keyframe interval (frames)."""
    import av

    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        if gop:
            stream.codec_context.gop_size = gop
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(index_frame(i, height, width), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
