"""Scripted model turns for rollout and GRPO tests over conftest's `rollout_world` (a test
helper, not a test module).

A random model writes garbage, so tests force turns to start with these texts: an answer, good
tool calls on the index sample's paths, a malformed call and a call that fails.
"""
import json

from seeker_jax.env.episode import EpisodeConfig
from seeker_jax.env.tools import ToolConfig, with_crop
from seeker_jax.env.video import Sampling

CONFIG = EpisodeConfig(video=Sampling(fps=1.0, max_frames=4, min_pixels=1024),
                       tools=with_crop(ToolConfig(), max_frames=4), max_rounds=2)


def call(name: str, **args) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


ANSWER = "<think>seen enough</think><answer>A</answer>"
VIEW = "<think>look</think>" + call("view_visual_prompt", frame_path="videos/v1_prompt.png")
CROP = "<think>zoom</think>" + call("crop_video", video_path="videos/v1.mp4", start_time=1,
                                    end_time=4)
BAD_JSON = '<think>hmm</think><tool_call>\n{"name": "crop_video", "arguments": {oops}\n</tool_call>'
BAD_TIME = "<think>back</think>" + call("crop_video", video_path="videos/v1.mp4", start_time=5,
                                        end_time=2)
