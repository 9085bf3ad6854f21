"""One environment config for a run: what the model sees, saved with the checkpoint.

Why one: frame sampling of the prompt video and of crop_video, the visual-prompt frame's size,
the round limits and the prompt profile decide the tokens of every example. SFT, GRPO rollouts,
evaluation and serving of one checkpoint must agree on them, so they all build their episodes
from the `EnvConfig` that a run's `c.env` group describes and that the trainer writes into
the checkpoint (`seeker_jax.checkpointing.checkpoint.write_env_config` / `read_env_config`).

`c.env` (configs/env.py writes the presets; paper defaults):
  profile              a env/profiles.py name ("seeker_jax", "videoseeker_official", ...)
  video.*              the prompt video: 1 fps, 4-256 frames, <= 112,896 px per frame
  crop.*               crop_video: 1 fps, 4-64 frames, <= 336*336 px per frame
  frame.min_pixels / frame.max_pixels    the visual-prompt frame image
  max_rounds           tool rounds (5); max_calls_per_turn: calls run per round (4)
  video_backends       decoders tried in order
video.* and crop.* are the fields of env/video.py's `Sampling` (fps, min_frames, max_frames,
min_pixels, max_frame_pixels, max_total_pixels). A key that is not one of these is an error.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from transformers import PreTrainedTokenizerBase

from seeker_jax.env.episode import EpisodeConfig, make_formatter
from seeker_jax.env.profiles import DEFAULT_PROFILE, PROFILES, get_profile
from seeker_jax.env.tools import ToolConfig
from seeker_jax.env.video import Sampling
from seeker_jax.models.chat import ChatFormatter

# The paper's budgets (VideoSeeker, arXiv 2605.16079): 112,896 = 336 * 336.
PAPER_VIDEO = Sampling(fps=1.0, min_frames=4, max_frames=256, min_pixels=4096,
                       max_frame_pixels=112_896, max_total_pixels=256 * 112_896)
PAPER_CROP = Sampling(fps=1.0, min_frames=4, max_frames=64, min_pixels=4096,
                      max_frame_pixels=336 * 336, max_total_pixels=336 * 336 * 64)
_GROUPS = ("video", "crop", "frame")


class EnvConfigError(ValueError):
    """A c.env group (or env_config.json) that does not describe an environment."""


@dataclass(frozen=True)
class EnvConfig:
    """The environment of a run. Build it with `from_config(c.env)`; hand `episode_config()`
    to episodes and `formatter(tokenizer)` to whoever formats them."""

    profile: str = DEFAULT_PROFILE
    video: Sampling = PAPER_VIDEO
    crop: Sampling = PAPER_CROP
    frame_min_pixels: int = 32 * 32
    frame_max_pixels: int = 512 * 32 * 32
    max_rounds: int = 5
    max_calls_per_turn: int = 4
    video_backends: tuple[str, ...] = ("pyav", "decord")

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise EnvConfigError(f"env.profile: unknown prompt profile {self.profile!r}; "
                                 f"known: {sorted(PROFILES)}")
        for name in ("max_rounds", "max_calls_per_turn", "frame_min_pixels", "frame_max_pixels"):
            if int(getattr(self, name)) < 1:
                raise EnvConfigError(f"env: {name} must be >= 1, got {getattr(self, name)}")
        for group, s in (("video", self.video), ("crop", self.crop)):
            if not 1 <= s.min_frames <= s.max_frames:
                raise EnvConfigError(f"env.{group}: need 1 <= min_frames <= max_frames, got "
                                     f"{s.min_frames} and {s.max_frames}")
            if not s.fps > 0:
                raise EnvConfigError(f"env.{group}.fps must be > 0, got {s.fps}")

    @classmethod
    def from_config(cls, group: Mapping[str, Any]) -> "EnvConfig":
        """From a `c.env` ConfigDict or the dict `to_dict` wrote (env_config.json)."""
        d = group.to_dict() if hasattr(group, "to_dict") else dict(group)
        known = {"profile", *_GROUPS, "max_rounds", "max_calls_per_turn", "video_backends"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise EnvConfigError(f"env: unknown key(s) {unknown}; the env group has "
                                 f"{sorted(known)}")
        frame = dict(d.get("frame", {}))
        extra = sorted(set(frame) - {"min_pixels", "max_pixels"})
        if extra:
            raise EnvConfigError(f"env.frame: unknown key(s) {extra}; it has min_pixels, "
                                 "max_pixels")
        default = cls()
        return cls(
            profile=str(d.get("profile", default.profile)),
            video=_sampling("video", d.get("video"), default.video),
            crop=_sampling("crop", d.get("crop"), default.crop),
            frame_min_pixels=int(frame.get("min_pixels", default.frame_min_pixels)),
            frame_max_pixels=int(frame.get("max_pixels", default.frame_max_pixels)),
            max_rounds=int(d.get("max_rounds", default.max_rounds)),
            max_calls_per_turn=int(d.get("max_calls_per_turn", default.max_calls_per_turn)),
            video_backends=tuple(d.get("video_backends", default.video_backends)))

    def to_dict(self) -> dict[str, Any]:
        """The `c.env` layout as plain JSON types; `from_config(to_dict())` gives it back."""
        return {"profile": self.profile, "video": dataclasses.asdict(self.video),
                "crop": dataclasses.asdict(self.crop),
                "frame": {"min_pixels": self.frame_min_pixels,
                          "max_pixels": self.frame_max_pixels},
                "max_rounds": self.max_rounds, "max_calls_per_turn": self.max_calls_per_turn,
                "video_backends": list(self.video_backends)}

    def tool_config(self) -> ToolConfig:
        return ToolConfig(crop=self.crop, frame_min_pixels=self.frame_min_pixels,
                          frame_max_pixels=self.frame_max_pixels,
                          video_backends=self.video_backends)

    def episode_config(self) -> EpisodeConfig:
        return EpisodeConfig(video=self.video, tools=self.tool_config(),
                             max_rounds=self.max_rounds,
                             max_calls_per_turn=self.max_calls_per_turn, profile=self.profile)

    def formatter(self, tokenizer: PreTrainedTokenizerBase) -> ChatFormatter:
        """The one formatter of this environment (the profile's system prompt and tools)."""
        return make_formatter(tokenizer, self.episode_config())


def _sampling(group: str, values: Mapping[str, Any] | None, default: Sampling) -> Sampling:
    """A Sampling from a config group; fields it does not name keep `default`'s values."""
    values = dict(values or {})
    fields = [f.name for f in dataclasses.fields(Sampling)]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise EnvConfigError(f"env.{group}: unknown key(s) {unknown}; a sampling has {fields}")
    return Sampling(**{**dataclasses.asdict(default), **values})


__all__ = ["EnvConfig", "EnvConfigError", "PAPER_CROP", "PAPER_VIDEO", "get_profile"]
