"""Our video path against transformers' own Qwen3VLVideoProcessor and Qwen3VLProcessor.

The reference runs with Qwen3-VL's released video settings (mean = std = 0.5, shortest_edge
4096, longest_edge 25,165,824) and qwen-vl-utils' per-frame caps (cap_pixels_per_frame=True).
Grids, token counts and ids must be equal; pixels may differ by 1 uint8 level (2/255 after
normalizing), since torchvision's uint8 bicubic-antialias kernel is a port of PIL's with its own
fixed-point rounding. Needs the side-directory torchvision (tests/hf_video_reference.py, which
runs transformers in a child process); skips with the install command when it is absent.
"""
import numpy as np
import pytest

from hf_video_reference import reference
from seeker_jax.env.video import Sampling, VideoFile
from seeker_jax.env.tools import ToolConfig
from seeker_jax.models.processing import (VIDEO_MAX_FRAME_PIXELS, VIDEO_MAX_TOTAL_PIXELS,
                                          VIDEO_MIN_PIXELS, preprocess_video)

LEVEL = 2 / 255  # one uint8 level after (x / 255 - 0.5) / 0.5
DEFAULT = (VIDEO_MIN_PIXELS, VIDEO_MAX_TOTAL_PIXELS, VIDEO_MAX_FRAME_PIXELS)
CROP = ToolConfig().crop


def scene(num_frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """(T, H, W, 3) uint8: smooth moving colour fields, hard checker edges and some noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    noise = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    out = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        img = np.stack(np.broadcast_arrays(128 + 100 * np.sin(x / 17 + t) * np.cos(y / 23),
                                           128 + 90 * np.sin((x + y) / 31 - t),
                                           (x * 255 / width + 7 * t) % 256 + 0 * y), -1)
        img = img * np.where(((x + 3 * t) // 24 + y // 24) % 2 == 0, 0.55, 1.0)[..., None]
        out[t] = np.clip(img + np.roll(noise, 7 * t, axis=1), 0, 255).astype(np.uint8)
    return out


def assert_close_pixels(ours: np.ndarray, theirs: np.ndarray, max_mean_levels: float) -> None:
    diff = np.abs(ours.astype(np.float64) - theirs)
    assert diff.max() <= 2 * LEVEL + 1e-6, f"max |diff| {diff.max() / LEVEL:.2f} levels"
    assert diff.mean() / LEVEL <= max_mean_levels, f"mean |diff| {diff.mean() / LEVEL:.4f} levels"


CROP_BOUNDS = (CROP.min_pixels, CROP.max_total_pixels, CROP.max_frame_pixels)
CASES = [  # (frames, height, width, bounds, the grid where it is worked out by hand)
    # The example: Qwen3-VL's budget gives 20 x 36 x 66 (11,880 tokens).
    (40, 720, 1280, DEFAULT, (20, 36, 66)),
    # Tiny: scaled to 32 px first, then 4,096 px over t x h x w -> 32 x 32.
    (4, 30, 40, DEFAULT, (2, 2, 2)),
    # Two tiny frames: 2 x 32 x 42 < 4,096 -> grown to 64 x 64.
    (2, 30, 40, DEFAULT, (1, 4, 4)),
    # Odd sizes and odd frame counts (sized over 5 / 7 frames, padded to 6 / 8 after).
    (5, 97, 203, DEFAULT, None),
    (7, 333, 251, (VIDEO_MIN_PIXELS, 7 * 64 * 64, VIDEO_MAX_FRAME_PIXELS), None),
    # crop_video's sampling: at most 336*336 px a frame (a cap that is not whole tokens).
    # 360x640: beta = 480/336 -> 224 x 448.
    (30, 360, 640, CROP_BOUNDS, (15, 14, 28)),
    (16, 1080, 1920, CROP_BOUNDS, None),
    (4, 36, 1000, CROP_BOUNDS, None),
    # No per-frame cap: the whole budget over the clip (transformers' uncapped mode).
    (6, 480, 640, (VIDEO_MIN_PIXELS, 6 * 200_000, None), None),
]


@pytest.fixture(scope="module")
def hf_frames():
    clips = [scene(n, h, w, seed=n + h) for n, h, w, _, _ in CASES]
    outs = reference([{"frames": c, "bounds": case[3]} for c, case in zip(clips, CASES)])
    return clips, outs


@pytest.mark.parametrize("case", range(len(CASES)),
                         ids=[f"{n}x{h}x{w}" for n, h, w, *_ in CASES])
def test_frames_match_transformers_video_processor(hf_frames, case):
    frames, _, _, bounds, grid = CASES[case]
    clip, theirs = hf_frames[0][case], hf_frames[1][case]
    ours = preprocess_video(clip, np.arange(frames) / 2.0, min_pixels=bounds[0],
                            max_total_pixels=bounds[1], max_frame_pixels=bounds[2])
    np.testing.assert_array_equal(ours.grid_thw, theirs["video_grid_thw"][0])
    if grid is not None:
        assert tuple(ours.grid_thw) == grid
    assert ours.pixel_values.shape == theirs["pixel_values_videos"].shape
    assert_close_pixels(ours.pixel_values, theirs["pixel_values_videos"], max_mean_levels=0.01)


def write_mp4(path, frames: np.ndarray, fps: int, gop: int):
    """An H.264 (yuv420p) mp4 of the given frames, written with PyAV."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt, stream.options = "yuv420p", {"preset": "ultrafast"}
        stream.codec_context.gop_size = gop
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    # 6.0 s at 10 fps, a size that is not a multiple of 32, keyframes every 15 frames.
    return write_mp4(tmp_path_factory.mktemp("hf") / "scene.mp4", scene(60, 118, 202, seed=3),
                     fps=10, gop=15)


CROP_WINDOW = (1.2, 4.7)  # int(3.5 s * 1 fps) = 3 frames -> raised to crop_video's minimum 4


@pytest.fixture(scope="module")
def hf_prompts(mp4):
    """transformers' Qwen3VLProcessor on frames decoded by decord (what its own loader uses):
    every frame of the video, sampled by transformers at 2 fps; and crop_video's window."""
    video = VideoFile(mp4, backends=("decord",))
    every = video.read(np.arange(video.info.num_frames))
    crop = video.clip(*CROP_WINDOW, CROP).indices
    whole, window = reference([
        {"frames": every, "bounds": DEFAULT, "fps": video.info.fps, "sample_fps": 2.0},
        {"frames": every[crop], "bounds": CROP_BOUNDS, "fps": video.info.fps, "indices": crop}])
    return {"whole": whole, "crop": window}


def assert_same_prompt(processed, theirs):
    from seeker_jax.models.chat import ChatFormatter
    from seeker_jax.models.tokenizer import offline_qwen_tokenizer

    seg = ChatFormatter(offline_qwen_tokenizer()).system_and_user_segment([processed])
    np.testing.assert_array_equal(seg.input_ids, theirs["input_ids"][0])
    np.testing.assert_array_equal(seg.mm_token_type_ids, theirs["mm_token_type_ids"][0])
    np.testing.assert_array_equal(seg.video_grid_thw, theirs["video_grid_thw"])
    assert_close_pixels(seg.pixel_values_videos, theirs["pixel_values_videos"], 0.01)


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_whole_video_prompt_matches_transformers_processor(mp4, hf_prompts, backend):
    """Decode, sample at 2 fps, size, resize, format: the same ids (timestamps per 2-frame
    group, vision_start, video_pad * n, vision_end) and grid as transformers' processor."""
    video = VideoFile(mp4, backends=(backend,))
    assert_same_prompt(video.processed(0.0, video.info.duration, Sampling()), hf_prompts["whole"])


def test_crop_prompt_matches_transformers_processor(mp4, hf_prompts):
    """crop_video's sampling of a window (1 fps, 4..64 frames, <= 336*336 px a frame)."""
    video = VideoFile(mp4)
    assert video.clip(*CROP_WINDOW, CROP).indices.tolist() == [12, 24, 35, 47]
    assert_same_prompt(video.processed(*CROP_WINDOW, CROP), hf_prompts["crop"])


def test_decoder_scaling_is_an_opt_in_with_the_same_grid(mp4):
    """The swscale fast path keeps grids and timestamps; its pixels are NOT transformers'
    (docs/engine.md: video preprocessing), so it is off by default."""
    exact = VideoFile(mp4, backends=("pyav",)).processed(0.0, 6.0, Sampling())
    fast = VideoFile(mp4, backends=("pyav",)).processed(0.0, 6.0,
                                                         Sampling(decoder_scaling=True))
    np.testing.assert_array_equal(fast.grid_thw, exact.grid_thw)
    np.testing.assert_array_equal(fast.timestamps, exact.timestamps)
    diff = np.abs(fast.pixel_values - exact.pixel_values) / LEVEL
    assert diff.max() > 1  # a different resampler (if it matched, it could be the default)
