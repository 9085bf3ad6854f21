"""Qwen3-VL pixel preprocessing for images and videos: smart resize, normalize, patchify.

Why our own: HF's Qwen3-VL video processor needs torchvision (not a dependency of ours), and the
whole environment (SFT, RL rollouts, evaluation) must share ONE pixel path. Images match
transformers' `Qwen2VLImageProcessorPil(patch_size=16, image_mean=[.5]*3, image_std=[.5]*3)`
bit for bit (PIL bicubic on uint8, then /255, then (x-0.5)/0.5). Videos match its
`Qwen3VLVideoProcessor(cap_pixels_per_frame=True)`: the same size arithmetic (grids and token
counts exactly) and pixels within 1 uint8 level (torchvision's uint8 bicubic is PIL's kernel).

Patch layout (both images and videos), per (t, h, w) grid with m = merge_size:
  rows ordered (t, h//m, w//m, m, m)  -> every 2x2 merge block is contiguous;
  columns ordered (C, temporal_patch, patch_h, patch_w) -> 3*2*16*16 = 1536.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

PATCH_SIZE = 16
TEMPORAL_PATCH_SIZE = 2
MERGE_SIZE = 2
FACTOR = PATCH_SIZE * MERGE_SIZE  # 32: resized sides are multiples of this
IMAGE_MEAN = 0.5
IMAGE_STD = 0.5
# Qwen3-VL's preprocessor_config.json: images between 64k and 16M pixels.
IMAGE_MIN_PIXELS = 65536
IMAGE_MAX_PIXELS = 16777216
# Its video_preprocessor_config.json: size {shortest_edge: 4096, longest_edge: 25165824} over
# the whole clip (t x h x w), and qwen-vl-utils' cap of 768 tokens (786,432 px) per frame.
VIDEO_MIN_PIXELS = 4096
VIDEO_MAX_TOTAL_PIXELS = 25165824
VIDEO_MAX_FRAME_PIXELS = 768 * FACTOR * FACTOR


@dataclass(frozen=True)
class ProcessedImage:
    """One image ready for the vision tower.

    pixel_values: (h*w, 1536) float32 patches; grid_thw: (3,) int64 = (1, h, w) in patches.
    """

    pixel_values: np.ndarray
    grid_thw: np.ndarray

    @property
    def num_tokens(self) -> int:
        """LM tokens (`<|image_pad|>`) after the 2x2 merge."""
        return int(np.prod(self.grid_thw)) // MERGE_SIZE**2


@dataclass(frozen=True)
class ProcessedVideo:
    """A clip ready for the vision tower.

    pixel_values: (t*h*w, 1536) float32; grid_thw: (3,) int64 = (t, h, w), t = frames/2.
    timestamps: (t,) float64 seconds, the mean time of each temporal group's two frames,
    in the ORIGINAL video's clock. The model sees them as `<{t:.1f} seconds>` text.
    """

    pixel_values: np.ndarray
    grid_thw: np.ndarray
    timestamps: np.ndarray

    @property
    def tokens_per_group(self) -> int:
        """`<|video_pad|>` tokens per temporal group: h*w/4."""
        return int(self.grid_thw[1] * self.grid_thw[2]) // MERGE_SIZE**2


def smart_resize(height: int, width: int, factor: int = FACTOR, min_pixels: int = IMAGE_MIN_PIXELS,
                 max_pixels: int = IMAGE_MAX_PIXELS) -> tuple[int, int]:
    """Target (height, width): multiples of `factor`, area in [min_pixels, max_pixels], aspect kept.

    Same arithmetic as transformers' qwen2_vl `smart_resize`.
    """
    if min(height, width) <= 0:
        raise ValueError(f"image has no pixels: {height}x{width}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {height}x{width}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def video_smart_resize(num_frames: int, height: int, width: int,
                       temporal_factor: int = TEMPORAL_PATCH_SIZE, factor: int = FACTOR,
                       min_pixels: int = VIDEO_MIN_PIXELS,
                       max_pixels: int = VIDEO_MAX_TOTAL_PIXELS) -> tuple[int, int]:
    """One (height, width) for a clip of num_frames: bounds on t x h x w, not on one frame.

    Same arithmetic as transformers' qwen3_vl `smart_resize` (video_processing_qwen3_vl.py):
    a side under `factor` is first scaled up to `factor` (int-truncated, aspect kept); then
    t_bar x h_bar x w_bar (t_bar = num_frames rounded to the temporal factor) must lie in
    [min_pixels, max_pixels], where beta is taken over the unrounded num_frames x h x w.
    """
    if num_frames < temporal_factor:
        raise ValueError(f"a video needs at least {temporal_factor} frames to be sized, got "
                         f"{num_frames}; repeat the frame (pad_to_temporal_multiple) first")
    if min(height, width) <= 0:
        raise ValueError(f"video frames have no pixels: {height}x{width}")
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {height}x{width}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt((num_frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def video_frame_size(num_frames: int, height: int, width: int, *,
                     min_pixels: int = VIDEO_MIN_PIXELS,
                     max_total_pixels: int = VIDEO_MAX_TOTAL_PIXELS,
                     max_frame_pixels: int | None = VIDEO_MAX_FRAME_PIXELS,
                     factor: int = FACTOR) -> tuple[int, int]:
    """One (height, width) for a clip of num_frames sampled frames (before temporal padding).

    transformers' `Qwen3VLVideoProcessor.resize` with `cap_pixels_per_frame=True` (the
    qwen-vl-utils caps): a frame gets min(max_frame_pixels, max_total_pixels // num_frames)
    pixels, floored at int(1.05 * min_pixels); min_pixels bounds the whole clip (t x h x w).
    max_frame_pixels=None is transformers' uncapped mode: max_total_pixels bounds the clip.
    A single frame (transformers refuses it) is sized as the 2-frame clip it is padded to.
    """
    num_frames = max(num_frames, TEMPORAL_PATCH_SIZE)
    max_pixels = max_total_pixels
    if max_frame_pixels is not None:
        per_frame = max(min(max_frame_pixels, max_total_pixels // num_frames),
                        int(min_pixels * 1.05))
        max_pixels = per_frame * num_frames
    return video_smart_resize(num_frames, height, width, TEMPORAL_PATCH_SIZE, factor,
                              min_pixels, max_pixels)


def to_rgb_uint8(image: Image.Image | np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 from a PIL image (any mode) or an (H, W, 3) uint8 array."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {arr.dtype} {arr.shape}")
    return arr


_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (owner pid, pool): rebuilt after a fork


def resize_pool() -> ThreadPoolExecutor:
    """The process's thread pool for frame resizing (PIL releases the GIL while resampling)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():  # a forked child must not use the parent's
        _POOL = (os.getpid(), ThreadPoolExecutor(min(8, os.cpu_count() or 1),
                                                 thread_name_prefix="seeker-resize"))
    return _POOL[1]


def resize_frame(frame: np.ndarray | Image.Image, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 (or an RGB PIL image) -> (height, width, 3) uint8, bicubic, antialiased.

    This is transformers' resize for both images and videos: its PIL image processor calls PIL,
    and its video processor calls torchvision, whose CPU uint8 bicubic-antialias kernel is a
    port of PIL's (tests/test_video_processor_hf.py: at most 2 levels apart, mean 0.004).
    """
    image = frame if isinstance(frame, Image.Image) else Image.fromarray(frame)
    if image.size == (width, height):
        return np.asarray(image)
    return np.asarray(image.resize((width, height), Image.BICUBIC))


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, height, width, 3) uint8 with `resize_frame`, on `resize_pool`."""
    if frames.shape[1:3] == (height, width):
        return frames
    if len(frames) == 1:
        return resize_frame(frames[0], height, width)[None]
    return np.stack(list(resize_pool().map(lambda f: resize_frame(f, height, width), frames)))


def _normalize_table() -> np.ndarray:
    # HF: float64 * (1/255) -> float32, then (x - mean) / std in float32. One entry per byte.
    x = (np.arange(256, dtype=np.float64) * (1 / 255)).astype(np.float32)
    return (x - np.float32(IMAGE_MEAN)) / np.float32(IMAGE_STD)


_NORMALIZED = _normalize_table()


def normalize(frames: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [-1, 1], bit-identical to HF's rescale then normalize (a lookup)."""
    return _NORMALIZED[frames]


def patchify(frames: np.ndarray, patch_size: int = PATCH_SIZE,
             temporal_patch_size: int = TEMPORAL_PATCH_SIZE,
             merge_size: int = MERGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W, C) any dtype, T a multiple of temporal_patch_size -> ((t*h*w, C*tp*p*p), (t, h, w)).

    The row order puts each merge_size x merge_size block together; see the module docstring.
    """
    T, H, W, C = frames.shape
    if T % temporal_patch_size or H % (patch_size * merge_size) or W % (patch_size * merge_size):
        raise ValueError(f"frames {frames.shape} do not tile into {temporal_patch_size} x "
                         f"{patch_size * merge_size} x {patch_size * merge_size} blocks")
    t, h, w = T // temporal_patch_size, H // patch_size, W // patch_size
    x = frames.reshape(t, temporal_patch_size, h // merge_size, merge_size, patch_size,
                       w // merge_size, merge_size, patch_size, C)
    # -> (t, h/m, w/m, mh, mw, C, tp, ph, pw)
    x = x.transpose(0, 2, 5, 3, 6, 8, 1, 4, 7)
    flat = np.ascontiguousarray(x).reshape(t * h * w, C * temporal_patch_size * patch_size**2)
    return flat, np.array([t, h, w], np.int64)


def preprocess_image(image: Image.Image | np.ndarray, min_pixels: int = IMAGE_MIN_PIXELS,
                     max_pixels: int = IMAGE_MAX_PIXELS) -> ProcessedImage:
    """One image -> patches. The image is repeated to 2 frames, exactly as transformers does."""
    rgb = to_rgb_uint8(image)
    height, width = smart_resize(rgb.shape[0], rgb.shape[1], FACTOR, min_pixels, max_pixels)
    resized = resize_frames(rgb[None], height, width)
    patches, grid = patchify(np.repeat(resized, TEMPORAL_PATCH_SIZE, axis=0))
    return ProcessedImage(normalize(patches), grid)


def pad_to_temporal_multiple(frames: np.ndarray, timestamps: np.ndarray,
                             multiple: int = TEMPORAL_PATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Repeats the last frame (and its time) until T is a multiple of the temporal patch."""
    pad = -len(frames) % multiple
    if pad:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
        timestamps = np.concatenate([timestamps, np.repeat(timestamps[-1:], pad)])
    return frames, timestamps


def preprocess_video(frames: np.ndarray, timestamps: np.ndarray, *,
                     min_pixels: int = VIDEO_MIN_PIXELS,
                     max_total_pixels: int = VIDEO_MAX_TOTAL_PIXELS,
                     max_frame_pixels: int | None = VIDEO_MAX_FRAME_PIXELS,
                     size: tuple[int, int] | None = None) -> ProcessedVideo:
    """Sampled frames (T, H, W, 3) uint8 with their times (T,) in seconds -> patches.

    transformers' Qwen3VLVideoProcessor (cap_pixels_per_frame=True) step for step: one size for
    the clip from `video_frame_size` over the T sampled frames, bicubic antialiased resize,
    rescale + normalize, pad to an even frame count by repeating the last frame, patchify; and
    each temporal group's time is the mean of its two frames' times.
    size: the (height, width) already chosen by the caller (from the video's native size, when
    frames were scaled while decoding); frames not at that size are resized to it.
    """
    frames = np.asarray(frames)
    timestamps = np.asarray(timestamps, np.float64)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"expected (T, H, W, 3) uint8 frames with T >= 1, got {frames.dtype} "
                         f"{frames.shape}")
    if timestamps.shape != (len(frames),):
        raise ValueError(f"need one timestamp per frame: {timestamps.shape} vs {len(frames)} frames")
    if size is None:
        size = video_frame_size(len(frames), frames.shape[1], frames.shape[2],
                                min_pixels=min_pixels, max_total_pixels=max_total_pixels,
                                max_frame_pixels=max_frame_pixels)
    frames, timestamps = pad_to_temporal_multiple(resize_frames(frames, *size), timestamps)
    patches, grid = patchify(frames)  # uint8 moves 4x fewer bytes; normalize is per element
    pixel_values = normalize(patches)
    group_times = timestamps.reshape(-1, TEMPORAL_PATCH_SIZE).mean(axis=1)
    return ProcessedVideo(pixel_values, grid, group_times)
