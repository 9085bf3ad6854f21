"""Tiny environment configs for evaluation tests (a test helper, not a test module)."""
from seeker_jax.config import load_config
from seeker_jax.env.config import EnvConfig


def tiny_env(preset: str) -> EnvConfig:
    """configs/eval.py:`preset`'s environment at test sizes: 4 frames at 1 fps, frames and
    crops of at most 64x64 px."""
    c = load_config(f"configs/eval.py:{preset}")
    c.env.video.max_frames, c.env.video.min_frames, c.env.video.fps = 4, 4, 1.0
    c.env.video.max_frame_pixels, c.env.video.min_pixels = 64 * 64, 32 * 32
    c.env.crop.max_frames, c.env.crop.max_frame_pixels = 4, 64 * 64
    c.env.frame.min_pixels, c.env.frame.max_pixels = 32 * 32, 64 * 64
    return EnvConfig.from_config(c.env)
