"""Prompt profiles: the words and layouts a model sees, as small named entries.

A profile fixes everything about the conversation that is text, not pixels: the system prompt,
the tool schemas shown (and so the tools that run), the user turn's text around the video, how
tool results and videos are laid out (a `ResponseLayout` of env/tools.py), and whether the last
tool round carries our "answer now" note. Frame budgets are not here: they are the env config's
(env/config.py), so one profile serves the tiny demo and the 8B run alike.

Registered:
- "seeker_jax" (default, ours): a system prompt, our tool schemas, the video first, then where
  the assets are and the question; a crop is one video with a timestamp per 2-frame group.
- "videoseeker_official": VideoSeeker's public eval code (gaotiexinqu/VideoSeeker,
  eval/inference/single_inference.py, tool mode with both tools): no system prompt (the tools
  block alone makes the system turn, as Qwen3-VL's template renders `tools=`), its tool
  schemas, the user turn = video frames, then "{instruction}\\n\\n{question} {tool prompt}";
  video and crops as one image per frame after `<{t:.1f} seconds>`; each result followed by
  "The tool executed successfully. Here are the processed result: ". Its texts are copied as
  the code writes them (the double spaces in "Format strictly as:  <think>" included).

- "v2p_official": V2P-Bench's own inference (gaotiexinqu/V2P-Bench, infer/infer_qwen2.5-vl.py):
  no system prompt, no tools; the user turn is the video, then the record's question as it is
  (its options and "Select the best option ..." line are part of the released question). The
  visual-prompt frame(s) come after the question: the evaluator (seeker_jax/eval) appends them,
  since they are images of the sample, not text.
- "videomme": Video-MME's published prompt (not available offline; the text as publicly
  documented by the Video-MME authors and lmms-eval): no tools, the video, then "Select the best
  answer ... (A, B, C, or D) of the correct option.", the question with its options, and
  "The best answer is:".
- "videoseeker_official_v2p": VideoSeeker's eval as it runs on V2P-Bench: view_visual_prompt
  only, and its TOOL_PROMPT_TEMPLATE_VP text; otherwise as "videoseeker_official".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from seeker_jax.env.records import SampleRecord
from seeker_jax.env.tools import CROP_VIDEO, TOOL_SCHEMAS, VIEW_VISUAL_PROMPT, get_layout
from seeker_jax.models.chat import Content, Part
from seeker_jax.registry import Registry

SYSTEM_PROMPT = (
    "You answer questions about one instance in a video. The instance is marked by a visual "
    "prompt (a box, point, contour, arrow, scribble or another mark) drawn on one frame.\n"
    "In every turn, first think inside <think></think>. Then either call tools, or give your "
    "final answer inside <answer></answer>. Call view_visual_prompt to see the marked frame, "
    "and crop_video to watch a time window again at a finer frame rate. Times are in seconds "
    "of the original video.")


@dataclass(frozen=True)
class PromptProfile:
    """name; system_prompt ("" writes none); tools: the schemas shown, whose names are the
    tools that run; user_text(record, duration): the user turn's text, after the video;
    layout: a env/tools.py LAYOUTS name; round_note: tell the model on the last round;
    runs_tools: False shows the same prompt but answers every call with an error (an
    ablation: the same episodes and budgets, no tool result ever seen)."""

    name: str
    system_prompt: str
    tools: tuple[dict, ...]
    user_text: Callable[[SampleRecord, float], str]
    layout: str
    round_note: bool = True
    runs_tools: bool = True

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(t["function"]["name"] for t in self.tools)

    def user_content(self, record: SampleRecord, video: list[Part], duration: float) -> Content:
        """The user turn: the video first (Qwen's order and VideoSeeker's), then the text."""
        return [*video, self.user_text(record, duration)]


def seeker_user_text(record: SampleRecord, duration: float) -> str:
    lines = [f"Video: {record.video_path} ({duration:.1f} seconds)"]
    if record.frame_path:
        lines.append(f"Visual-prompt frame: {record.frame_path}")
    return "\n".join(lines) + "\n\n" + record.question


# VideoSeeker's eval code, verbatim (single_inference.py: SYSTEM_PROMPT, TOOL_PROMPT_TEMPLATE,
# VIEW_VISUAL_PROMPT_TOOL, CROP_VIDEO_TOOL). Its "SYSTEM_PROMPT" goes into the user turn.
VIDEOSEEKER_INSTRUCTION = (
    "You are a helpful assistant. When the user asks a question, your response must include two "
    "parts: first, the reasoning process enclosed in <think>...</think> tags, then the final "
    "answer enclosed in <answer>...</answer> tags. Please provide a clear, concise response "
    "within <answer></answer> tags that directly addresses the question.")
VIDEOSEEKER_TOOL_PROMPT = (
    "Think first, call **view_visual_prompt** and **crop_video** if needed, then answer. "
    "Format strictly as:  <think>...</think>  <tool_call>...</tool_call> (if tools needed)  "
    "<answer>...</answer>. The Video path for this video is: {video_path}, "
    "The visual prompt frame path for this video is: {frame_path}.")
VIDEOSEEKER_TOOLS = (
    {"type": "function", "function": {
        "name": "view_visual_prompt",
        "description": "View the visual prompt image for the current question.",
        "parameters": {"type": "object", "properties": {"frame_path": {
            "type": "string", "description": "Path to the visual prompt frame image file"}},
            "required": ["frame_path"]}}},
    {"type": "function", "function": {
        "name": "crop_video",
        "description": "Crop a video to a specified duration, returning extracted frames for "
                       "inspection.",
        "parameters": {"type": "object", "properties": {
            "video_path": {"type": "string", "description": "Path to the video file"},
            "start_time": {"type": "number", "description": "Start time in seconds"},
            "end_time": {"type": "number",
                         "description": "End time in seconds, must be greater than start_time"}},
            "required": ["video_path", "start_time", "end_time"]}}},
)


def videoseeker_user_text(record: SampleRecord, duration: float) -> str:
    tool_prompt = VIDEOSEEKER_TOOL_PROMPT.format(video_path=record.video_path,
                                                 frame_path=record.frame_path or "")
    return f"{VIDEOSEEKER_INSTRUCTION}\n\n{record.question} {tool_prompt}"


# single_inference.py's TOOL_PROMPT_TEMPLATE_VP, verbatim ("and if needed" included): what its
# V2P-Bench run uses (eval/inference/benchmarks.json: "tools": "view_visual_prompt").
VIDEOSEEKER_VP_TOOL_PROMPT = (
    "Think first, call **view_visual_prompt** and if needed, then answer. "
    "Format strictly as:  <think>...</think>  <tool_call>...</tool_call> (if tools needed)  "
    "<answer>...</answer>. The visual prompt frame path for this video is: {frame_path}.")


def videoseeker_vp_user_text(record: SampleRecord, duration: float) -> str:
    tool_prompt = VIDEOSEEKER_VP_TOOL_PROMPT.format(frame_path=record.frame_path or "")
    return f"{VIDEOSEEKER_INSTRUCTION}\n\n{record.question} {tool_prompt}"


def v2p_user_text(record: SampleRecord, duration: float) -> str:
    """V2P-Bench's question field as released (options and instruction included)."""
    return record.question


VIDEOMME_INSTRUCTION = (
    "Select the best answer to the following multiple-choice question based on the video. "
    "Respond with only the letter (A, B, C, or D) of the correct option.")


def videomme_user_text(record: SampleRecord, duration: float) -> str:
    return f"{VIDEOMME_INSTRUCTION}\n{record.question}\nThe best answer is:"


PROFILES: Registry[PromptProfile] = Registry(
    "prompt profile", "set config.env.profile, or register one with "
    "seeker_jax.env.profiles.register_profile")


def register_profile(profile: PromptProfile) -> PromptProfile:
    """Adds a profile under its name (checked: its layout exists, its tools are known)."""
    get_layout(profile.layout)
    known = {VIEW_VISUAL_PROMPT["function"]["name"], CROP_VIDEO["function"]["name"]}
    unknown = sorted(set(profile.tool_names) - known)
    if unknown:
        raise ValueError(f"prompt profile {profile.name!r}: no tool(s) {unknown}; "
                         f"the tools are {sorted(known)}")
    return PROFILES.add(profile.name, profile)


def get_profile(name: str) -> PromptProfile:
    return PROFILES.get(name)


DEFAULT_PROFILE = register_profile(PromptProfile(
    "seeker_jax", SYSTEM_PROMPT, TOOL_SCHEMAS, seeker_user_text, "seeker_jax")).name
register_profile(PromptProfile(
    "seeker_jax_tools_off", SYSTEM_PROMPT, TOOL_SCHEMAS, seeker_user_text, "seeker_jax",
    runs_tools=False))
register_profile(PromptProfile(
    "videoseeker_official", "", VIDEOSEEKER_TOOLS, videoseeker_user_text, "videoseeker",
    round_note=False))
register_profile(PromptProfile(
    "videoseeker_official_v2p", "", VIDEOSEEKER_TOOLS[:1], videoseeker_vp_user_text,
    "videoseeker", round_note=False))
register_profile(PromptProfile("v2p_official", "", (), v2p_user_text, "seeker_jax",
                               round_note=False))
register_profile(PromptProfile("videomme", "", (), videomme_user_text, "seeker_jax",
                               round_note=False))

__all__ = ["DEFAULT_PROFILE", "PROFILES", "PromptProfile", "SYSTEM_PROMPT", "get_profile",
           "register_profile", "seeker_user_text", "v2p_user_text", "videomme_user_text",
           "videoseeker_user_text", "videoseeker_vp_user_text"]
