"""The environment group `c.env` shared by every config that builds episodes (sft, demo, grpo,
eval): what the model sees. Read by seeker_jax.env.config.EnvConfig.from_config, written into
every checkpoint as env_config.json.

Presets:
  paper  VideoSeeker's budgets: prompt video 1 fps, 4-256 frames, <= 112,896 px per frame;
         crop_video 1 fps, 4-64 frames, <= 336x336 px; at most 5 tool rounds.
  tiny   tests and the demo on a 2-core CPU: 64x64 px frames, <= 16 frames.
  tiny_128  tiny with frames up to 128x128 px (16 vision tokens a frame after the 2x2 merge,
         against tiny's 4): the "it learns" run (configs/demo.py:long).
"""
import ml_collections


def _sampling(fps, min_frames, max_frames, min_pixels, max_frame_pixels, max_total_pixels):
    """env/video.py's Sampling: min_pixels / max_total_pixels bound the whole clip (t x h x w),
    as transformers' Qwen3VLVideoProcessor does; decoder_scaling is the opt-in swscale path."""
    return ml_collections.ConfigDict(dict(
        fps=fps, min_frames=min_frames, max_frames=max_frames, min_pixels=min_pixels,
        max_frame_pixels=max_frame_pixels, max_total_pixels=max_total_pixels,
        decoder_scaling=False))


def env_group(preset: str = "paper") -> ml_collections.ConfigDict:
    env = ml_collections.ConfigDict()
    env.profile = "seeker_jax"       # env/profiles.py: seeker_jax | videoseeker_official
    env.video = _sampling(1.0, 4, 256, 4096, 112_896, 256 * 112_896)
    env.crop = _sampling(1.0, 4, 64, 4096, 336 * 336, 336 * 336 * 64)
    env.frame = ml_collections.ConfigDict(dict(min_pixels=32 * 32, max_pixels=512 * 32 * 32))
    env.max_rounds = 5
    env.max_calls_per_turn = 4
    env.video_backends = ("pyav", "decord")
    if preset == "paper":
        pass
    elif preset == "tiny":
        budget = 25_165_824  # Qwen3-VL's clip budget; 16 frames of 64x64 stay far under it
        env.video = _sampling(1.0, 4, 16, 32 * 32, 64 * 64, budget)
        env.crop = _sampling(1.0, 4, 16, 32 * 32, 64 * 64, budget)
        env.frame.max_pixels = 64 * 64
    elif preset == "tiny_128":
        env = env_group("tiny")
        for group in (env.video, env.crop):
            group.max_frame_pixels = 128 * 128
        env.frame.max_pixels = 128 * 128
    elif preset == "seek":
        env = env_group("tiny")
        env.video.min_frames = env.video.max_frames = 4
        env.crop.max_frames = 4
    else:
        raise ValueError(f"configs/env.py: unknown env preset {preset!r}; use paper, tiny, "
                         "tiny_128 or seek")
    return env


def get_config(preset: str = "paper") -> ml_collections.ConfigDict:
    return env_group(preset)
