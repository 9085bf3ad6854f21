"""Image and video URLs of a chat request -> the model's processed inputs, under hard limits.

Allowed sources: `data:` URLs (base64), and `file://` paths (or bare absolute paths) under
`MediaLimits.allowed_root` (taken literally: no percent-decoding; the resolved path, symlinks
followed, must lie under the root). Nothing is fetched over the network. Media are opened
only as what they are: images as PNG, JPEG, WebP, GIF or BMP (`IMAGE_FORMATS`); videos through
`seeker_jax.env.video.VideoFile` as mp4/mov, Matroska/WebM or AVI with that demuxer fixed (no
playlist, no nested file, no protocol); uploaded videos are decoded from memory. The limits
are the server's (`seeker-jax serve` flags); a request cannot raise them. Every refusal is a
`MediaError`, which the HTTP layer turns into a 400 naming the part and what to do.

Videos come two ways:
- an mp4 (`data:video/mp4;base64,...` or a file): sampled with the environment config's video
  sampling (what the checkpoint trained on), with fps, frame count and pixels clamped to the
  ceilings;
- a frame list, `data:video/png;base64,F1,F2,...` (lossless; `video/jpeg` is vLLM's form of
  the same), with the frames' times in `video_url.timestamps` (an extension; else frame i is
  at i / fps). The client chose the frames, so they are kept at their size when it tiles into
  32x32 blocks and fits the ceilings (the exact video an in-process episode saw, e.g.
  `seeker-jax eval` through `openai:`); otherwise resized under the ceilings.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from seeker_jax.env.config import EnvConfig
from seeker_jax.env.video import Sampling, VideoError, VideoFile, sniff_container
from seeker_jax.models.processing import (FACTOR, ProcessedImage, ProcessedVideo,
                                          preprocess_image, preprocess_video, video_frame_size)
from seeker_jax.serve.protocol import VideoUrl

FRAME_LIST_MIMES = ("video/png", "video/jpeg")
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")  # what PIL may open (never EPS & co.)
# A data: URL's video type -> the container its bytes must be (env.video.sniff_container).
VIDEO_MIMES = {"video/mp4": "mp4", "video/quicktime": "mp4", "video/x-m4v": "mp4",
               "video/webm": "matroska", "video/x-matroska": "matroska",
               "video/avi": "avi", "video/x-msvideo": "avi"}
ANY_VIDEO_MIMES = ("", "video/*", "application/octet-stream")  # the bytes decide
MAX_ASPECT = 200  # Qwen3-VL's resize refuses a longer side over 200x the shorter


class MediaError(ValueError):
    """A media part the server refuses (bad URL, outside the root, over a limit)."""


@dataclass(frozen=True)
class MediaLimits:
    """Server-side ceilings. allowed_root None: no file:// access at all."""

    allowed_root: str | None = None
    max_images: int = 16             # images + videos per request
    max_bytes: int = 32 << 20        # an encoded image / video
    max_image_pixels: int = 4096 * 4096  # decoded size of an image, before resizing
    max_video_fps: float = 2.0
    max_video_frames: int = 256
    max_video_frame_pixels: int = 1920 * 1088   # native size of a video frame
    max_video_seconds: float = 3600.0
    max_video_total_pixels: int = 256 * 112896  # the clip's pixel budget after resizing


def _data_bytes(url: str, what: str, max_bytes: int) -> bytes:
    head, _, payload = url.partition(",")
    if ";base64" not in head:
        raise MediaError(f"{what}: only base64 data: URLs are supported "
                         "(data:<mime>;base64,<payload>)")
    if len(payload) > (max_bytes // 3 + 1) * 4:
        raise MediaError(f"{what}: about {len(payload) * 3 // 4} bytes, over the server's limit "
                         f"of {max_bytes}")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError(f"{what}: the data: URL's payload is not valid base64") from None


def _local_path(url: str, what: str, limits: MediaLimits) -> str:
    """The real path of a file:// URL under the allowed root. A refusal never says whether
    anything exists outside the root."""
    path = url[len("file://"):] if url.startswith("file://") else url
    if limits.allowed_root is None:
        raise MediaError(f"{what}: local files are disabled; start the server with "
                         "--allowed-media-root DIR, or send a data: URL")
    if "\0" in path or not os.path.isabs(path):
        raise MediaError(f"{what}: a file:// URL needs an absolute path without NUL bytes, "
                         "e.g. file:///data/videos/a.mp4")
    root = os.path.realpath(limits.allowed_root)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise MediaError(f"{what}: {path[:200]} is outside the allowed media root {root}")
    if not os.path.isfile(real):
        raise MediaError(f"{what}: {path[:200]} is not a file under the media root")
    if os.path.getsize(real) > limits.max_bytes:
        raise MediaError(f"{what}: {path[:200]} is {os.path.getsize(real)} bytes, over the "
                         f"server's limit of {limits.max_bytes}")
    return real


def _check_aspect(w: int, h: int, what: str) -> None:
    if min(w, h) < 1 or max(w, h) > MAX_ASPECT * min(w, h):
        raise MediaError(f"{what}: {w}x{h} pixels; the model takes images and frames whose "
                         f"longer side is at most {MAX_ASPECT}x the shorter: crop or pad it")


def _check_scheme(url: str, what: str) -> None:
    if url.startswith(("http://", "https://", "ftp://")):
        raise MediaError(f"{what}: the server does not fetch URLs from the network; send a "
                         "data: URL or a file:// path under --allowed-media-root")
    if not (url.startswith(("data:", "file://")) or os.path.isabs(url)):
        raise MediaError(f"{what}: unsupported URL {url[:40]!r}; use data: or file://")


def _open_image(source, what: str, limits: MediaLimits) -> Image.Image:
    """An RGB image from a path or bytes: an allowed format, under the pixel ceilings."""
    Image.MAX_IMAGE_PIXELS = None  # our own limit below, with our own message
    try:
        with Image.open(source, formats=IMAGE_FORMATS) as img:
            w, h = img.size
            if w * h > limits.max_image_pixels:
                raise MediaError(f"{what}: {w}x{h} pixels, over the server's limit of "
                                 f"{limits.max_image_pixels}; send a smaller image")
            _check_aspect(w, h, what)
            return img.convert("RGB")
    except MediaError:
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder may raise anything on hostile bytes
        raise MediaError(f"{what}: not a readable image ({type(exc).__name__}); send "
                         f"{', '.join(IMAGE_FORMATS)}") from None


def load_image(url: str, what: str, limits: MediaLimits, env: EnvConfig) -> ProcessedImage:
    """An image URL -> patches, sized like the environment's frames (min/max pixels)."""
    _check_scheme(url, what)
    if url.startswith("data:"):
        raw = _data_bytes(url, what, limits.max_bytes)
        if len(raw) > limits.max_bytes:
            raise MediaError(f"{what}: {len(raw)} bytes, over the server's limit of "
                             f"{limits.max_bytes}")
        source = io.BytesIO(raw)
    else:
        source = _local_path(url, what, limits)
    rgb = _open_image(source, what, limits)
    try:
        return preprocess_image(rgb, env.frame_min_pixels, env.frame_max_pixels)
    except ValueError as exc:  # a size the resize rule refuses
        raise MediaError(f"{what}: {exc}") from None


def video_sampling(env: EnvConfig, limits: MediaLimits) -> Sampling:
    """The environment's video sampling with the server's ceilings applied."""
    s = env.video
    return dataclasses.replace(
        s, fps=min(s.fps, limits.max_video_fps),
        max_frames=min(s.max_frames, limits.max_video_frames),
        min_frames=min(s.min_frames, limits.max_video_frames),
        max_total_pixels=min(s.max_total_pixels, limits.max_video_total_pixels))


def _frame_list_mime(url: str) -> str | None:
    mime = url[len("data:"):].partition(";")[0].partition(",")[0].lower()
    return mime if url.startswith("data:") and mime in FRAME_LIST_MIMES else None


def _decode_frames(url: str, what: str, limits: MediaLimits) -> np.ndarray:
    """`data:video/png;base64,F1,F2,...` -> (T, H, W, 3) uint8, under the frame ceilings."""
    head, _, payload = url.partition(",")
    if ";base64" not in head:
        raise MediaError(f"{what}: a frame list must be base64: data:video/png;base64,F1,F2,...")
    chunks = payload.split(",")
    if len(chunks) > limits.max_video_frames:
        raise MediaError(f"{what}: {len(chunks)} frames, over the server's limit of "
                         f"{limits.max_video_frames}")
    frames = []
    for i, chunk in enumerate(chunks):
        fake = f"data:image/*;base64,{chunk}"
        raw = _data_bytes(fake, f"{what} frame {i}", limits.max_bytes)
        try:
            with Image.open(io.BytesIO(raw), formats=("PNG", "JPEG")) as img:
                w, h = img.size
                if w * h > limits.max_video_frame_pixels:
                    raise MediaError(f"{what} frame {i}: {w}x{h}, over the server's limit of "
                                     f"{limits.max_video_frame_pixels} pixels per frame")
                _check_aspect(w, h, f"{what} frame {i}")
                if len(chunks) * w * h > 4 * limits.max_video_total_pixels:
                    raise MediaError(f"{what}: {len(chunks)} frames of {w}x{h}, over the "
                                     f"server's limit of {4 * limits.max_video_total_pixels} "
                                     "pixels per frame list; send fewer or smaller frames")
                frames.append(np.asarray(img.convert("RGB")))
        except MediaError:
            raise
        except Exception as exc:  # noqa: BLE001 - a decoder may raise anything on hostile bytes
            raise MediaError(f"{what} frame {i}: not a readable image "
                             f"({type(exc).__name__}); send PNG or JPEG frames") from None
        if frames[-1].shape != frames[0].shape:
            raise MediaError(f"{what} frame {i}: {w}x{h}, but frame 0 is "
                             f"{frames[0].shape[1]}x{frames[0].shape[0]}; all frames of a "
                             "video must have one size")
    return np.stack(frames)


def _frame_times(video: VideoUrl, n: int, what: str, fps: float) -> np.ndarray:
    if video.timestamps is None:
        return np.arange(n, dtype=np.float64) / (video.fps or fps)
    times = np.asarray(video.timestamps, np.float64)
    if times.shape != (n,):
        raise MediaError(f"{what}: {len(times)} timestamps for {n} frames; send one time "
                         "(seconds) per frame")
    if not (np.isfinite(times).all() and (times >= 0).all()):
        raise MediaError(f"{what}: timestamps must be finite seconds >= 0")
    return times


def load_frame_list(video: VideoUrl, what: str, limits: MediaLimits, env: EnvConfig
                    ) -> ProcessedVideo:
    """A frame-list video -> patches; frames kept at their size if it tiles and fits."""
    frames = _decode_frames(video.url, what, limits)
    sampling = video_sampling(env, limits)
    times = _frame_times(video, len(frames), what, sampling.fps)
    if times.max() > limits.max_video_seconds:
        raise MediaError(f"{what}: frames up to {times.max():.1f} s, over the server's limit "
                         f"of {limits.max_video_seconds:.0f} s")
    n, h, w = frames.shape[:3]
    padded = n + n % 2
    fits = (h % FACTOR == 0 and w % FACTOR == 0
            and padded * h * w <= limits.max_video_total_pixels)
    size = (h, w) if fits else video_frame_size(
        n, h, w, min_pixels=sampling.min_pixels, max_total_pixels=sampling.max_total_pixels,
        max_frame_pixels=sampling.max_frame_pixels)
    try:
        return preprocess_video(frames, times, size=size)
    except ValueError as exc:
        raise MediaError(f"{what}: {exc}") from None


def load_video(video: str | VideoUrl, what: str, limits: MediaLimits, env: EnvConfig
               ) -> ProcessedVideo:
    """A video URL -> the whole video sampled with `video_sampling` (a frame list: its own
    frames, `load_frame_list`); refused over a ceiling."""
    video = video if isinstance(video, VideoUrl) else VideoUrl(url=video)
    url = video.url
    _check_scheme(url, what)
    if _frame_list_mime(url):
        return load_frame_list(video, what, limits, env)
    if url.startswith("data:"):
        file = VideoFile.from_bytes(_video_bytes(url, what, limits), name=what,
                                    backends=env.video_backends)
    else:
        file = VideoFile(_local_path(url, what, limits), name=what, backends=env.video_backends)
    try:
        info = file.info
    except VideoError as exc:
        raise MediaError(f"{exc}") from None
    if info.width * info.height > limits.max_video_frame_pixels:
        raise MediaError(f"{what}: frames are {info.width}x{info.height}, over the server's "
                         f"limit of {limits.max_video_frame_pixels} pixels per frame")
    _check_aspect(info.width, info.height, what)
    if info.duration > limits.max_video_seconds:
        raise MediaError(f"{what}: {info.duration:.1f} s long, over the server's limit of "
                         f"{limits.max_video_seconds:.0f} s; send a shorter clip")
    try:
        return file.processed(0.0, info.duration, video_sampling(env, limits))
    except (VideoError, ValueError) as exc:  # ValueError: a size the resize rule refuses
        raise MediaError(f"{what}: {exc}") from None


def _video_bytes(url: str, what: str, limits: MediaLimits) -> bytes:
    """A video data: URL's bytes, when they are the container its type names."""
    mime = url[len("data:"):].partition(",")[0].partition(";")[0].strip().lower()
    if mime not in VIDEO_MIMES and mime not in ANY_VIDEO_MIMES:
        raise MediaError(f"{what}: unsupported video type {mime[:40]!r}; send "
                         f"{', '.join(VIDEO_MIMES)}, or a frame list (video/png, video/jpeg)")
    raw = _data_bytes(url, what, limits.max_bytes)
    if len(raw) > limits.max_bytes:
        raise MediaError(f"{what}: {len(raw)} bytes, over the server's limit of "
                         f"{limits.max_bytes}")
    found = sniff_container(raw[:16])
    if found is None or (mime in VIDEO_MIMES and found != VIDEO_MIMES[mime]):
        raise MediaError(f"{what}: the data is not a {mime if mime in VIDEO_MIMES else 'video'} "
                         "file"
                         + (f" (its bytes are {found})" if found else "")
                         + "; send an mp4, WebM/Matroska or AVI video")
    return raw
