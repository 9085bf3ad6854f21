"""Pixel preprocessing against transformers (images) and hand-computed layouts (videos)."""
import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
    Qwen2VLImageProcessorPil, smart_resize as hf_smart_resize)
from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor
from transformers.models.qwen3_vl.video_processing_qwen3_vl import (
    smart_resize as hf_video_smart_resize)

from seeker_jax.models.processing import (PATCH_SIZE, ProcessedImage, normalize, patchify,
                                          preprocess_image, preprocess_video, smart_resize,
                                          video_frame_size, video_smart_resize)


def hf_processor(min_pixels, max_pixels):
    return Qwen2VLImageProcessorPil(patch_size=16, temporal_patch_size=2, merge_size=2,
                                    image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                    min_pixels=min_pixels, max_pixels=max_pixels)


@pytest.mark.parametrize("size,bounds", [
    ((97, 203), (32 * 32, 512 * 32 * 32)),      # odd size, rounds
    ((360, 640), (4096, 100_000)),              # downscaled by the max budget
    ((20, 50), (65536, 16777216)),              # tiny: upscaled by the min budget
    ((256, 128), (4096, 16777216)),             # already a multiple of 32: no resize
])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_image_matches_transformers(size, bounds, mode):
    rng = np.random.default_rng(sum(size))
    arr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    image = Image.fromarray(arr).convert(mode)
    ref = hf_processor(*bounds)(images=[image], return_tensors="np")
    ours = preprocess_image(image, *bounds)
    assert ours.pixel_values.dtype == np.float32
    np.testing.assert_array_equal(ours.grid_thw, ref["image_grid_thw"][0])
    np.testing.assert_allclose(ours.pixel_values, ref["pixel_values"], rtol=0, atol=1e-6)
    assert ours.num_tokens == int(np.prod(ref["image_grid_thw"][0])) // 4


def test_smart_resize_matches_transformers():
    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w = (int(x) for x in rng.integers(1, 3000, 2))
        if max(h, w) / min(h, w) > 200:
            continue
        lo = int(rng.integers(32 * 32, 200_000))
        hi = lo + int(rng.integers(0, 4_000_000))
        assert smart_resize(h, w, 32, lo, hi) == hf_smart_resize(h, w, 32, lo, hi)


def test_video_smart_resize_matches_transformers():
    # Bounds over t x h x w, sides under 32 scaled up first (tests/test_video_processor_hf.py
    # runs the whole processor; this covers the arithmetic over many more shapes).
    rng = np.random.default_rng(1)
    for _ in range(500):
        h, w = (int(x) for x in rng.integers(1, 2500, 2))
        n = int(rng.integers(2, 200))
        if max(h, w) / min(h, w) > 150:
            continue
        lo = int(rng.integers(1024, 400_000))
        hi = lo + int(rng.integers(0, 30_000_000))
        assert video_smart_resize(n, h, w, 2, 32, lo, hi) == hf_video_smart_resize(
            n, h, w, 2, 32, lo, hi), (n, h, w, lo, hi)


def test_video_frame_size_matches_transformers_count():
    # transformers' own count of patches for a clip, with qwen-vl-utils' per-frame caps on.
    rng = np.random.default_rng(2)
    for _ in range(200):
        n, h, w = int(rng.integers(2, 300)), int(rng.integers(8, 2200)), int(rng.integers(8, 2200))
        if max(h, w) / min(h, w) > 150:
            continue
        lo, total = int(rng.integers(1024, 20_000)), int(rng.integers(10**6, 5 * 10**7))
        tokens = int(rng.integers(16, 1024))
        hf = Qwen3VLVideoProcessor(size={"shortest_edge": lo, "longest_edge": total},
                                   cap_pixels_per_frame=True, max_video_tokens=tokens)
        height, width = video_frame_size(n, h, w, min_pixels=lo, max_total_pixels=total,
                                         max_frame_pixels=tokens * 32 * 32)
        grid_t = -(-n // 2)
        assert grid_t * (height // 16) * (width // 16) == hf.get_num_of_video_patches(n, h, w)


def test_video_size_hand_computed():
    # The cases. 1280x720, 40 frames, Qwen3-VL's budget 25,165,824 (629,145 a frame):
    # beta = sqrt(40*720*1280 / 25,165,800) = 1.2103 -> 576 x 1056 (grid 20 x 36 x 66).
    assert video_frame_size(40, 720, 1280) == (576, 1056)
    # 30x40: scaled to 32x42 first; 4 * 32 * 32 = 4096 meets min_pixels -> 32 x 32.
    assert video_frame_size(4, 30, 40) == (32, 32)
    # One frame (transformers refuses it) is sized as the 2-frame clip it is padded to.
    assert video_frame_size(1, 30, 40) == video_frame_size(2, 30, 40) == (64, 64)
    with pytest.raises(ValueError, match="at least 2 frames"):
        video_smart_resize(1, 30, 40)


def test_normalize_is_hf_rescale_then_normalize():
    x = np.arange(256, dtype=np.uint8)
    ref = ((x.astype(np.float64) * (1 / 255)).astype(np.float32) - np.float32(0.5)) / np.float32(0.5)
    np.testing.assert_array_equal(normalize(x), ref)
    assert normalize(x)[0] == -1.0 and normalize(x)[255] == 1.0


def test_video_patch_order_matches_transformers_video_processor():
    rng = np.random.default_rng(1)
    frames = rng.standard_normal((4, 64, 96, 3)).astype(np.float32)  # (T, H, W, C)
    ours, grid = patchify(frames)
    video = torch.from_numpy(frames).permute(0, 3, 1, 2)[None]  # (B, T, C, H, W)
    ref, t, h, w = Qwen3VLVideoProcessor.patchify(None, video, patch_size=16, merge_size=2,
                                                  temporal_patch_size=2)
    assert (t, h, w) == tuple(grid) == (2, 4, 6)
    np.testing.assert_array_equal(ours, ref[0].numpy())


def test_patch_rows_follow_merge_blocks():
    # Hand check: with one frame pair, row 0..3 are the 2x2 block at the top-left corner.
    frames = np.zeros((2, 64, 64, 3), np.float32)
    for r in range(4):
        for c in range(4):
            frames[:, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16, 0] = 10 * r + c
    flat, grid = patchify(frames)
    first_channel = flat[:, 0]
    assert first_channel.tolist() == [0, 1, 10, 11, 2, 3, 12, 13, 20, 21, 30, 31, 22, 23, 32, 33]


def test_video_pads_to_even_and_averages_group_times():
    frames = np.stack([np.full((64, 64, 3), 20 * i, np.uint8) for i in range(5)])
    times = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    video = preprocess_video(frames, times, min_pixels=32 * 32, max_total_pixels=10**8)
    np.testing.assert_array_equal(video.grid_thw, [3, 4, 4])
    np.testing.assert_allclose(video.timestamps, [0.5, 2.5, 4.0])  # last frame repeated
    assert video.tokens_per_group == 4 and video.pixel_values.shape == (48, 1536)
    # The padded group holds frame 4 twice: both temporal halves of its patches are equal.
    last = video.pixel_values[32:].reshape(16, 3, 2, PATCH_SIZE * PATCH_SIZE)
    np.testing.assert_array_equal(last[:, :, 0], last[:, :, 1])
    np.testing.assert_allclose(last[0, 0, 0, 0], normalize(np.uint8(80)))


def test_video_frame_budget_hand_computed():
    frames = np.zeros((8, 360, 640, 3), np.uint8)
    # total budget 8 * 200*32*32 -> per frame 204800 px; capped per frame at 336*336 = 112896.
    video = preprocess_video(frames, np.arange(8.0), min_pixels=4096,
                             max_total_pixels=8 * 200 * 32 * 32, max_frame_pixels=336 * 336)
    # smart_resize(360, 640, max 112896): beta = sqrt(230400/112896) = 1.4286 -> 224 x 448.
    np.testing.assert_array_equal(video.grid_thw, [4, 14, 28])


def test_image_is_two_identical_temporal_halves():
    image = preprocess_image(np.full((64, 64, 3), 7, np.uint8), 32 * 32, 10**6)
    halves = image.pixel_values.reshape(-1, 3, 2, 256)
    np.testing.assert_array_equal(halves[:, :, 0], halves[:, :, 1])
    assert isinstance(image, ProcessedImage)
