"""Format: did the episode follow the grammar?

Two registered variants:
  format_paper     the paper's grammar, turn by turn, with the environment's own rule
                   (env/parser.py's validate_trajectory): every turn opens with one `<think>`;
                   turns before the last hold only `<tool_call>`s; the last holds exactly one
                   `<answer>`, under 1000 characters; nothing outside the tags.
  format_official  the public code's check, on the whole response as one string: tags
                   balanced, exactly one `<answer>`, the tag sequence think, (tool_call,
                   think)*, answer (so one call per turn), the text opening with `<think>` and
                   ending with `</answer>`, the answer under 1000 characters. Text between tags
                   is allowed there, unlike in the paper's grammar.
"""
from __future__ import annotations

import re

from seeker_jax.env.parser import MAX_ANSWER_CHARS, validate_trajectory
from seeker_jax.rl.rewards.context import RewardContext
from seeker_jax.rl.rewards.registry import register_reward

_OPEN_TAG = re.compile(r"<(think|tool_call|answer)>")
_NO_TOOL = re.compile(r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL)


@register_reward("format_paper")
def format_paper(ctx: RewardContext, max_answer_chars: int = MAX_ANSWER_CHARS) -> float:
    """1 when every turn follows the paper's grammar (see the module doc), else 0; a
    `max_answer_chars` below the environment's limit tightens the answer length rule."""
    if not validate_trajectory(ctx.turns).ok:
        return 0.0
    return float(len(ctx.answer or "") < max_answer_chars)


def official_format_ok(response: str, max_answer_chars: int = MAX_ANSWER_CHARS) -> bool:
    """The public code's whole-response check (see the module doc)."""
    counts = {tag: (response.count(f"<{tag}>"), response.count(f"</{tag}>"))
              for tag in ("think", "tool_call", "answer")}
    think, call, answer = counts["think"], counts["tool_call"], counts["answer"]
    if think[0] != think[1] or think[0] == 0 or call[0] != call[1] or answer != (1, 1):
        return False
    content = response.split("<answer>")[-1].split("</answer>")[0].strip()
    if len(content) >= max_answer_chars:
        return False
    if call[0] == 0:
        return bool(_NO_TOOL.match(response))
    text = response.strip()
    if not (text.startswith("<think>") and text.endswith("</answer>")):
        return False
    want = ["think"] + ["tool_call", "think"] * call[0] + ["answer"]
    return _OPEN_TAG.findall(text) == want


@register_reward("format_official")
def format_official(ctx: RewardContext, max_answer_chars: int = MAX_ANSWER_CHARS) -> float:
    """1 when the model's turns, joined, pass the public code's check, else 0."""
    return float(official_format_ok("\n".join(ctx.turns), max_answer_chars))


__all__ = ["format_official", "format_paper", "official_format_ok"]
