"""Decoding and frame sampling on test-made mp4s whose frames encode their own index."""
import numpy as np
import pytest

from seeker_jax.env import video as video_mod
from seeker_jax.env.testing import read_index, write_index_video
from seeker_jax.env.video import (Sampling, VideoError, VideoFile, VideoInfo,
                                  sample_frame_indices)
from seeker_jax.models.chat import ChatFormatter
from seeker_jax.models.tokenizer import offline_qwen_tokenizer


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    # 95 frames at 10 fps = 9.5 s; keyframe every 20 frames so seeks are exercised.
    return write_index_video(tmp_path_factory.mktemp("v") / "idx.mp4", 95, fps=10, gop=20)


def test_info(mp4):
    info = VideoFile(mp4).info
    assert (info.num_frames, info.fps, info.width, info.height) == (95, 10.0, 128, 96)
    assert info.duration == pytest.approx(9.5)


def test_whole_video_sampling_matches_qwen3vl_rule(mp4):
    video = VideoFile(mp4)
    clip = video.clip(0.0, video.info.duration, Sampling(fps=2.0))
    # transformers: n = int(95 / 10 * 2) = 19; indices = round(linspace(0, 94, 19)).
    expected = np.linspace(0, 94, 19).round().astype(int)
    np.testing.assert_array_equal(clip.indices, expected)
    assert [read_index(f) for f in clip.frames] == expected.tolist()  # the right frames decoded
    np.testing.assert_allclose(clip.timestamps, expected / 10)


def test_window_sampling_hand_computed(mp4):
    video = VideoFile(mp4)
    # [2.0, 5.0] at 1 fps: int(3) = 3 frames -> raised to min 4: linspace(20, 50, 4).
    clip = video.clip(2.0, 5.0, Sampling(fps=1.0, min_frames=4, max_frames=64))
    assert [read_index(f) for f in clip.frames] == [20, 30, 40, 50]
    processed = video.processed(2.0, 5.0, Sampling(fps=1.0, min_frames=4, max_frames=64,
                                                   min_pixels=1024))
    np.testing.assert_allclose(processed.timestamps, [2.5, 4.5])  # group means, original clock
    np.testing.assert_array_equal(processed.grid_thw, [2, 6, 8])  # 96x128 kept: 6x8 patches


def test_window_max_frames_and_odd_count(mp4):
    video = VideoFile(mp4)
    clip = video.clip(1.0, 8.0, Sampling(fps=1.0, min_frames=4, max_frames=5))
    assert [read_index(f) for f in clip.frames] == [10, 28, 45, 62, 80]
    processed = video.processed(1.0, 8.0, Sampling(fps=1.0, min_frames=4, max_frames=5,
                                                   min_pixels=1024))
    # 5 frames -> padded to 6 by repeating frame 80 (t=8.0): groups (1.0,2.8) (4.5,6.2) (8,8)
    np.testing.assert_allclose(processed.timestamps, [1.9, 5.35, 8.0])


def test_short_windows():
    info = VideoInfo(num_frames=95, fps=10.0, width=1, height=1)
    # fewer frames in the window than min_frames: every frame there, no more.
    assert sample_frame_indices(info, 1.0, 1.2, 1.0, 4, 64).tolist() == [10, 11, 12]
    # a window between two frames: the nearest frame to its start.
    assert sample_frame_indices(info, 1.01, 1.02, 1.0, 4, 64).tolist() == [10]
    # [9.0, 9.5] holds frames 90..94 (the last one, 94, ends the video): linspace(90, 94, 4)
    # = 90, 91.33, 92.67, 94 -> rounded.
    assert sample_frame_indices(info, 9.0, 9.5, 1.0, 4, 64).tolist() == [90, 91, 93, 94]


def test_video_token_layout(mp4):
    fm = ChatFormatter(offline_qwen_tokenizer())
    processed = VideoFile(mp4).processed(2.0, 5.0, Sampling(fps=1.0, min_pixels=1024))
    seg = fm.system_and_user_segment([processed])
    text = fm.tokenizer.decode(seg.input_ids)
    group = "<|vision_start|>" + "<|video_pad|>" * 12 + "<|vision_end|>"  # 6*8/4 tokens
    assert text == ("<|im_start|>user\n<2.5 seconds>" + group + "<4.5 seconds>" + group
                    + "<|im_end|>\n<|im_start|>assistant\n")
    assert (seg.mm_token_type_ids == 2).sum() == 24 == (seg.input_ids == 151656).sum()
    assert seg.pixel_values_videos.shape == (2 * 6 * 8, 1536)


def test_pyav_fallback_reads_the_same_frames(mp4, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("decord cannot open this")
    monkeypatch.setitem(video_mod._READERS, "decord", broken)
    video = VideoFile(mp4)
    assert video.info.num_frames == 95 and video.info.fps == 10.0
    clip = video.clip(2.0, 5.0, Sampling(fps=1.0))
    assert [read_index(f) for f in clip.frames] == [20, 30, 40, 50]


def test_backends_agree_on_seeks(mp4):
    # Sorted reads crossing keyframes (every 20 frames), short hops and long jumps.
    indices = np.array([0, 1, 19, 20, 21, 39, 41, 60, 94])
    for backend in ("decord", "pyav"):
        frames = VideoFile(mp4, backends=(backend,)).read(indices)
        assert [read_index(f) for f in frames] == indices.tolist(), backend
    np.testing.assert_array_equal(VideoFile(mp4, backends=("pyav",)).read(indices[:3]),
                                  VideoFile(mp4, backends=("decord",)).read(indices[:3]))


def test_missing_and_corrupt_files(tmp_path, mp4):
    with pytest.raises(VideoError, match="video 'nope.mp4' does not exist"):
        _ = VideoFile(tmp_path / "nope.mp4").info
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    with pytest.raises(VideoError, match="video 'bad.mp4' is corrupt or not a video"):
        _ = VideoFile(bad).info
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(mp4.read_bytes()[:600])
    with pytest.raises(VideoError, match="truncated.mp4"):
        VideoFile(truncated).clip(0, 9, Sampling())


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_clip_frames_are_native_frames_resized_like_transformers(mp4, monkeypatch, backend):
    # The default path: decode at native size (96x128), then PIL bicubic (resize_frames), in
    # chunks of READ_CHUNK frames; PyAV overlaps the resize with decoding. Same bytes either way.
    from seeker_jax.models.processing import resize_frames

    sampling = Sampling(fps=1.0, min_frames=4, max_frames=64, min_pixels=1024,
                        max_frame_pixels=64 * 96, max_total_pixels=10**8)
    monkeypatch.setattr(video_mod, "READ_CHUNK", 3)
    clip = VideoFile(mp4, backends=(backend,)).clip(1.0, 8.0, sampling)
    # 96x128 under 6,144 px a frame: beta = sqrt(2); floor(2.12) x floor(2.83) blocks -> 64x64.
    assert clip.frames.shape == (7, 64, 64, 3)
    native = VideoFile(mp4, backends=("decord",)).read(clip.indices)
    np.testing.assert_array_equal(clip.frames, resize_frames(native, 64, 64))


def test_one_frame_window_is_one_group(mp4):
    # A window between two frames holds the nearest one; it is repeated to one temporal group.
    processed = VideoFile(mp4).processed(1.01, 1.02, Sampling(fps=1.0, min_pixels=1024))
    np.testing.assert_array_equal(processed.grid_thw, [1, 6, 8])
    np.testing.assert_allclose(processed.timestamps, [1.0])
