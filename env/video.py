"""Video decoding and THE frame sampler (one for the prompt video and for crop_video).

Decoding uses decord; PyAV is the fallback when decord cannot open a file. Every failure is a
`VideoError` whose message can go straight to the model ("video 'a.mp4' is corrupt or not a
video: ..."), because tool errors become observations, never crashes.

This is the one place that opens videos (the environment's tools, the pipeline, evaluation and
`seeker-jax serve` all go through `VideoFile`), and a video is opened only as what it is: its
first bytes must name an allowed container (`CONTAINERS`: mp4/mov, Matroska/WebM, AVI), and
FFmpeg then reads it with that demuxer only, never a probed one. So a file that is really a
playlist (ffconcat, HLS, DASH) or names other files (mov external references) cannot make FFmpeg
open anything else: PyAV gets the fixed demuxer and an `io_open` that refuses every nested
open; decord, which cannot be told a demuxer, gets a file only when FFmpeg's own probe (with
nested opens refused) names an allowed one. Client bytes are read from memory
(`VideoFile.from_bytes`), never written to a folder where a relative path could resolve. Error
messages name the video by its `name`, never by its path.

Time convention: frame i is shown at i / fps seconds of the ORIGINAL video; every timestamp we
hand on (for crops too) is on that clock.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from seeker_jax.models.processing import (VIDEO_MAX_FRAME_PIXELS, VIDEO_MAX_TOTAL_PIXELS,
                                          VIDEO_MIN_PIXELS, ProcessedVideo, preprocess_video,
                                          resize_frame, resize_frames, resize_pool,
                                          video_frame_size)

READ_CHUNK = 64  # frames decoded at native size at once before resizing (bounds memory)


class VideoError(Exception):
    """A video that cannot be read; the message is meant for the model and the user."""


# Containers a video may be in: FFmpeg's demuxer for each, and the names its probe reports.
CONTAINERS = {"mp4": "mov", "matroska": "matroska", "avi": "avi"}
_PROBED_NAMES = {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi"}
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
# The mov demuxer's own switches for external data references (off by default; kept off).
_DEMUXER_OPTIONS = {"mov": {"enable_drefs": "0", "use_absolute_path": "0"}}


def sniff_container(head: bytes) -> str | None:
    """The container a file's first bytes (12 or more) say it is, or None if not an allowed one:
    "mp4" (ISO BMFF / QuickTime), "matroska" (also WebM) or "avi"."""
    if len(head) >= 8 and head[4:8] in _ISO_BOXES:
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    return None


def _refuse_nested_open(url: str, flags: int, options: dict):
    """PyAV's io_open for every video: a demuxer asking to open another file is refused."""
    raise PermissionError("this video refers to another file or URL; only self-contained "
                          "videos are read")


@contextlib.contextmanager
def _open_av(source: "str | bytes", demuxer: str | None) -> Iterator:
    """A PyAV input container over a path or bytes, read through a Python file object, with
    every nested open refused; demuxer None lets FFmpeg probe (used only to vet decord)."""
    import av

    with (io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")) as fileobj:
        with av.open(fileobj, format=demuxer, io_open=_refuse_nested_open,
                     container_options=_DEMUXER_OPTIONS.get(demuxer or "", {}),
                     buffer_size=1 << 16) as container:
            yield container


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float:
        """Seconds: num_frames / fps (the last frame is shown until then)."""
        return self.num_frames / self.fps


@dataclass(frozen=True)
class Sampling:
    """How to turn a time window into model input; the defaults are Qwen3-VL's released ones.

    fps: target sampling rate; min_frames/max_frames: frame-count bounds (before padding to an
    even count). Sizes follow transformers' Qwen3VLVideoProcessor with cap_pixels_per_frame
    (see `video_frame_size`): min_pixels bounds the whole clip (t x h x w, its
    `shortest_edge`); max_total_pixels is the clip's budget (`longest_edge`); max_frame_pixels
    caps one frame (qwen-vl-utils' 768 tokens), None for no per-frame cap.
    decoder_scaling: opt-in fast path, where PyAV scales frames in swscale (in YUV) while
    decoding instead of resizing RGB frames like transformers does. Pixels then deviate from
    transformers' (docs/engine.md: video preprocessing); grids and token counts do not change.
    """

    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 768
    min_pixels: int = VIDEO_MIN_PIXELS
    max_frame_pixels: int | None = VIDEO_MAX_FRAME_PIXELS
    max_total_pixels: int = VIDEO_MAX_TOTAL_PIXELS
    decoder_scaling: bool = False


@dataclass(frozen=True)
class Clip:
    """Sampled frames (T, h, w, 3) uint8 at the model's size, their times (T,) in seconds of the
    original video, and their indices (T,) in it."""

    frames: np.ndarray
    timestamps: np.ndarray
    indices: np.ndarray


def sample_frame_indices(info: VideoInfo, start: float, end: float, fps: float,
                         min_frames: int, max_frames: int) -> np.ndarray:
    """Frame indices for [start, end] seconds, evenly spread, at `fps` within the bounds.

    n = int((end - start) * fps) clamped to [min_frames, max_frames] and to the frames that
    exist in the window; indices = round(linspace(first, last, n)). For the whole video this is
    transformers' Qwen3-VL `sample_frames` (linspace(0, N-1, n)). A window too short to hold a
    frame gets the frame nearest to its start.
    """
    first = max(0, math.ceil(start * info.fps - 1e-6))
    last = min(info.num_frames - 1, math.floor(end * info.fps + 1e-6))
    if last < first:
        nearest = min(info.num_frames - 1, max(0, round(start * info.fps)))
        return np.array([nearest], np.int64)
    n = int((end - start) * fps)
    n = min(max(n, min_frames), max_frames, last - first + 1)
    return np.linspace(first, last, max(n, 1)).round().astype(np.int64)


class VideoFile:
    """One video, opened lazily and kept open (a crop after the first is cheaper).

    Not thread-safe: one per episode / worker.
    """

    def __init__(self, path: str | os.PathLike, name: str | None = None,
                 backends: tuple[str, ...] = ("decord", "pyav")):
        self.path = os.fspath(path)
        self.name = name or os.path.basename(self.path)
        self.backends = backends
        self._data: bytes | None = None
        self._reader = None
        self._info: VideoInfo | None = None

    @classmethod
    def from_bytes(cls, data: bytes, name: str,
                   backends: tuple[str, ...] = ("pyav", "decord")) -> "VideoFile":
        """A video held in memory (e.g. a client's upload): decoded from the bytes, never
        written to disk."""
        video = cls("", name=name, backends=backends)
        video._data = bytes(data)
        return video

    def _head(self) -> bytes:
        if self._data is not None:
            return self._data[:16]
        with open(self.path, "rb") as f:
            return f.read(16)

    def _message(self, exc: BaseException) -> str:
        """An exception's text with the file's path replaced by the video's name."""
        text = str(exc)
        return text.replace(self.path, self.name) if self.path else text

    def _open(self) -> None:
        if self._reader is not None:
            return
        if self._data is None and ("\0" in self.path or not os.path.isfile(self.path)):
            raise VideoError(f"video '{self.name}' does not exist")
        try:
            head = self._head()
        except OSError as exc:
            raise VideoError(f"video '{self.name}' cannot be read "
                             f"({type(exc).__name__})") from None
        container = sniff_container(head)
        if container is None:
            raise VideoError(f"video '{self.name}' is not a video file in a supported container "
                             f"({', '.join(CONTAINERS)}); send an mp4, mkv, webm or avi file")
        source = self.path if self._data is None else self._data
        errors = []
        for backend in self.backends:  # the first that opens the file wins
            try:
                self._reader = _READERS[backend](source, container)
                break
            except Exception as exc:  # noqa: BLE001 - decoders raise many types; try the next
                errors.append(f"{backend}: {type(exc).__name__}: {self._message(exc)[:120]}")
        else:
            raise VideoError(f"video '{self.name}' is corrupt or not a video "
                             f"({'; '.join(errors)})")
        self._info = self._reader.info
        if self._info.num_frames <= 0 or not self._info.fps > 0:
            raise VideoError(f"video '{self.name}' has no decodable frames")

    @property
    def info(self) -> VideoInfo:
        self._open()
        assert self._info is not None
        return self._info

    def read(self, indices: np.ndarray, size: tuple[int, int] | None = None,
             decoder_scaling: bool = False) -> np.ndarray:
        """(T, H, W, 3) uint8 frames at the given indices, at native size or at `size`.

        size: (height, width) to resize to. By default each frame is converted to RGB at native
        size and resized with `resize_frame` (transformers' pixels); PyAV overlaps that with
        decoding. decoder_scaling: PyAV scales in swscale instead (in YUV, before the RGB
        conversion: cheaper, not transformers' pixels; see Sampling.decoder_scaling).
        """
        self._open()
        try:
            return self._reader.read(np.asarray(indices, np.int64), size, decoder_scaling)
        except VideoError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure is this video's error
            raise VideoError(f"video '{self.name}' could not be decoded at frames "
                             f"{indices[:3].tolist()}... ({type(exc).__name__})") from None

    def clip(self, start: float, end: float, sampling: Sampling) -> Clip:
        """Samples [start, end] seconds and sizes the frames for the model.

        One size for the clip from the video's native size (`video_frame_size`), then each
        chunk of frames is decoded at native size and resized like transformers does (or,
        with sampling.decoder_scaling, scaled while decoding where the backend can).
        """
        indices = sample_frame_indices(self.info, start, end, sampling.fps,
                                       sampling.min_frames, sampling.max_frames)
        size = video_frame_size(len(indices), self.info.height, self.info.width,
                                min_pixels=sampling.min_pixels,
                                max_total_pixels=sampling.max_total_pixels,
                                max_frame_pixels=sampling.max_frame_pixels)
        chunks = [self.read(part, size, sampling.decoder_scaling)
                  for part in np.array_split(indices, -(-len(indices) // READ_CHUNK))]
        return Clip(np.concatenate(chunks), indices / self.info.fps, indices)

    def processed(self, start: float, end: float, sampling: Sampling) -> ProcessedVideo:
        """Sampled, resized and patchified: ready to be a video part of a chat turn."""
        return process_clip(self.clip(start, end, sampling))


def process_clip(clip: Clip) -> ProcessedVideo:
    """A clip (already at the model's size) -> patches and per-group timestamps."""
    return preprocess_video(clip.frames, clip.timestamps, size=clip.frames.shape[1:3])


class _DecordReader:
    """decord cannot be told a demuxer: it gets a video only when FFmpeg's probe, with nested
    opens refused, names the container's own demuxer (a playlist or manifest never reaches it)."""

    def __init__(self, source: "str | bytes", kind: str):
        import decord

        with _open_av(source, None) as probed:
            if probed.format.name not in _PROBED_NAMES:
                raise VideoError(f"FFmpeg reads it as {probed.format.name!r}, not {kind}")
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        self._vr = decord.VideoReader(source, ctx=decord.cpu(0), num_threads=0)
        height, width = self._vr[0].shape[:2] if len(self._vr) else (0, 0)
        self._vr.seek(0)
        self.info = VideoInfo(len(self._vr), float(self._vr.get_avg_fps()), width, height)

    def read(self, indices: np.ndarray, size: tuple[int, int] | None = None,
             decoder_scaling: bool = False) -> np.ndarray:
        frames = self._vr.get_batch(indices.tolist()).asnumpy()  # decord cannot scale
        return frames if size is None else resize_frames(frames, *size)


class _PyAVReader:
    """Seeks to the keyframe before each wanted frame and decodes forward to it.

    Frame i is the first frame whose time is >= stream start + (i - 0.5) / fps (constant rate
    assumed, as decord assumes). Far faster than decord on sparse reads of long videos, since
    only the wanted frames are converted to RGB.
    """

    def __init__(self, source: "str | bytes", kind: str):
        self._source, self._demuxer = source, CONTAINERS[kind]
        with _open_av(source, self._demuxer) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            count = stream.frames
            if not count and stream.duration and fps:
                count = round(float(stream.duration * stream.time_base) * fps)
            if not count:
                count = sum(1 for _ in container.decode(stream))
            self.info = VideoInfo(int(count), fps, stream.codec_context.width,
                                  stream.codec_context.height)

    def read(self, indices: np.ndarray, size: tuple[int, int] | None = None,
             decoder_scaling: bool = False) -> np.ndarray:
        fps = self.info.fps
        out: list[np.ndarray] = []
        with _open_av(self._source, self._demuxer) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            base = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
            frames, last_time = None, None
            for i in indices.tolist():
                target = base + (i - 0.5) / fps
                # Seek unless the target is just ahead of where decoding already is.
                if frames is None or last_time is None or not (
                        last_time < target <= last_time + 2.0):
                    container.seek(int(max(target, 0) / stream.time_base), stream=stream,
                                   backward=True)
                    frames = container.decode(stream)
                frame = None
                for candidate in frames:
                    last_time = float(candidate.time)
                    if last_time >= target:
                        frame = candidate
                        break
                if frame is None:
                    raise VideoError(f"frame {i} could not be decoded")
                if size is None:
                    out.append(frame.to_ndarray(format="rgb24"))
                elif decoder_scaling:
                    out.append(frame.to_ndarray(format="rgb24", height=size[0], width=size[1],
                                                interpolation="BICUBIC"))
                else:  # RGB at native size, then resized on the pool while decoding goes on
                    out.append(resize_pool().submit(_rgb_resized, frame, size))
        return np.stack([f.result() if isinstance(f, Future) else f for f in out])


def _rgb_resized(frame, size: tuple[int, int]) -> np.ndarray:
    """A decoded PyAV frame -> RGB at native size (as decord gives) -> resized for the model."""
    return resize_frame(frame.to_ndarray(format="rgb24"), *size)


_READERS = {"decord": _DecordReader, "pyav": _PyAVReader}
