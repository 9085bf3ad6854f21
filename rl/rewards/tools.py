"""Rewards on how the model used its tools: parsimony (fewer calls) and temporal IoU (did the
crop land on the evidence).

Parsimony is max(0, 1 - lambda * N) over N tool calls (the paper; it never gives lambda).
Ungated it pays a wrong answer given without tools the most, so the cheapest policy stops
calling tools (the tool-use collapse reported across frameworks); the gate pays it only to
answers at least `gate_min_accuracy` right. It never rewards a call for its own sake.

Temporal IoU (LongVT style, off by default) is the IoU of the last successful crop_video window
with the record's evidence window; 0 without a crop or without an evidence window.
"""
from __future__ import annotations

from seeker_jax.rl.rewards.context import RewardContext
from seeker_jax.rl.rewards.registry import register_reward


@register_reward("parsimony")
def parsimony(ctx: RewardContext, lam: float = 0.2, gate: bool = True,
              accuracy: float | None = None, gate_min_accuracy: float = 1.0) -> float:
    """max(0, 1 - lam * num_tool_calls); with `gate`, 0 unless `accuracy` >= gate_min_accuracy
    (the accuracy component's score, passed in)."""
    if lam < 0:
        raise ValueError(f"parsimony: lambda must be >= 0, got {lam}")
    if gate:
        if accuracy is None:
            raise ValueError("parsimony: the gate needs the accuracy score (accuracy=...)")
        if accuracy < gate_min_accuracy:
            return 0.0
    return max(0.0, 1.0 - lam * ctx.num_tool_calls)


def interval_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """IoU of two [start, end] intervals in seconds; 0 when either is empty or reversed."""
    (a0, a1), (b0, b1) = a, b
    if a1 <= a0 or b1 <= b0:
        return 0.0
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    return inter / (max(a1, b1) - min(a0, b0))


@register_reward("temporal_iou")
def temporal_iou(ctx: RewardContext) -> float:
    """IoU of the last crop_video window with the evidence window (see the module doc)."""
    if ctx.evidence_window is None or not ctx.crop_windows:
        return 0.0
    return interval_iou(ctx.crop_windows[-1], ctx.evidence_window)


__all__ = ["interval_iou", "parsimony", "temporal_iou"]
