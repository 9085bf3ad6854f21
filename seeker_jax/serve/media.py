"""Image and video URLs of a chat request -> the model's processed inputs, under hard limits.

Allowed sources: `data:` URLs (base64), and `file://` paths (or bare absolute paths) under
`MediaLimits.allowed_root`. Nothing is fetched over the network. The limits are the server's
(`seeker-jax serve` flags); a request cannot raise them. Every refusal is a `MediaError`, which
the HTTP layer turns into a 400 naming the part and what to do.

Videos are sampled with the environment config's video sampling (what the checkpoint trained
on), with fps, frame count and pixels clamped to the ceilings.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import os
import tempfile
from dataclasses import dataclass

from PIL import Image

from seeker_jax.env.config import EnvConfig
from seeker_jax.env.video import Sampling, VideoError, VideoFile
from seeker_jax.models.processing import ProcessedImage, ProcessedVideo, preprocess_image


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


def _data_bytes(url: str, what: str) -> bytes:
    head, _, payload = url.partition(",")
    if ";base64" not in head:
        raise MediaError(f"{what}: only base64 data: URLs are supported "
                         "(data:<mime>;base64,<payload>)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError(f"{what}: the data: URL's payload is not valid base64") from None


def _local_path(url: str, what: str, limits: MediaLimits) -> str:
    path = url[len("file://"):] if url.startswith("file://") else url
    if limits.allowed_root is None:
        raise MediaError(f"{what}: local files are disabled; start the server with "
                         "--allowed-media-root DIR, or send a data: URL")
    root = os.path.realpath(limits.allowed_root)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise MediaError(f"{what}: {path} is outside the allowed media root {root}")
    if not os.path.isfile(real):
        raise MediaError(f"{what}: {path} does not exist")
    if os.path.getsize(real) > limits.max_bytes:
        raise MediaError(f"{what}: {path} is {os.path.getsize(real)} bytes, over the "
                         f"server's limit of {limits.max_bytes}")
    return real


def _check_scheme(url: str, what: str) -> None:
    if url.startswith(("http://", "https://", "ftp://")):
        raise MediaError(f"{what}: the server does not fetch URLs from the network; send a "
                         "data: URL or a file:// path under --allowed-media-root")
    if not (url.startswith(("data:", "file://")) or os.path.isabs(url)):
        raise MediaError(f"{what}: unsupported URL {url[:40]!r}; use data: or file://")


def load_image(url: str, what: str, limits: MediaLimits, env: EnvConfig) -> ProcessedImage:
    """An image URL -> patches, sized like the environment's frames (min/max pixels)."""
    _check_scheme(url, what)
    if url.startswith("data:"):
        raw = _data_bytes(url, what)
        if len(raw) > limits.max_bytes:
            raise MediaError(f"{what}: {len(raw)} bytes, over the server's limit of "
                             f"{limits.max_bytes}")
        source = io.BytesIO(raw)
    else:
        source = _local_path(url, what, limits)
    Image.MAX_IMAGE_PIXELS = None  # our own limit below, with our own message
    try:
        with Image.open(source) as img:
            w, h = img.size
            if w * h > limits.max_image_pixels:
                raise MediaError(f"{what}: {w}x{h} pixels, over the server's limit of "
                                 f"{limits.max_image_pixels}; send a smaller image")
            rgb = img.convert("RGB")
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(f"{what}: not a readable image ({type(exc).__name__})") from None
    return preprocess_image(rgb, env.frame_min_pixels, env.frame_max_pixels)


def video_sampling(env: EnvConfig, limits: MediaLimits) -> Sampling:
    """The environment's video sampling with the server's ceilings applied."""
    s = env.video
    return dataclasses.replace(
        s, fps=min(s.fps, limits.max_video_fps),
        max_frames=min(s.max_frames, limits.max_video_frames),
        min_frames=min(s.min_frames, limits.max_video_frames),
        max_total_pixels=min(s.max_total_pixels, limits.max_video_total_pixels))


def load_video(url: str, what: str, limits: MediaLimits, env: EnvConfig) -> ProcessedVideo:
    """A video URL -> the whole video sampled with `video_sampling`; refused over a ceiling."""
    _check_scheme(url, what)
    tmp = None
    try:
        if url.startswith("data:"):
            raw = _data_bytes(url, what)
            if len(raw) > limits.max_bytes:
                raise MediaError(f"{what}: {len(raw)} bytes, over the server's limit of "
                                 f"{limits.max_bytes}")
            tmp = tempfile.NamedTemporaryFile(suffix=".mp4", delete=False)
            tmp.write(raw)
            tmp.close()
            path = tmp.name
        else:
            path = _local_path(url, what, limits)
        video = VideoFile(path, name=what, backends=env.video_backends)
        try:
            info = video.info
        except VideoError as exc:
            raise MediaError(f"{what}: {exc}") from None
        if info.width * info.height > limits.max_video_frame_pixels:
            raise MediaError(f"{what}: frames are {info.width}x{info.height}, over the server's "
                             f"limit of {limits.max_video_frame_pixels} pixels per frame")
        if info.duration > limits.max_video_seconds:
            raise MediaError(f"{what}: {info.duration:.1f} s long, over the server's limit of "
                             f"{limits.max_video_seconds:.0f} s; send a shorter clip")
        try:
            return video.processed(0.0, info.duration, video_sampling(env, limits))
        except VideoError as exc:
            raise MediaError(f"{what}: {exc}") from None
    finally:
        if tmp is not None:
            os.unlink(tmp.name)
