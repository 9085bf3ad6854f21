"""Rewards registered by name (Tunix style): a new reward is a function, never a new trainer.

Each reward is pure: `fn(ctx: RewardContext, **params) -> float`, reading only the finished
episode (and, for the few that depend on another component, that component's score passed in
as a parameter, e.g. parsimony's `accuracy`). The one reward that needs I/O, the judge, is
scored beforehand by `RewardModel` and its score is passed in as `judgement`.
"""
from __future__ import annotations

from typing import Callable, Protocol

from seeker_jax.registry import Registry


class RewardFn(Protocol):
    def __call__(self, ctx, **params) -> float: ...


_REWARDS: Registry[RewardFn] = Registry("reward")  # the same named table as every GRPO piece


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator: `@register_reward("format_paper")`. A name can be registered once."""
    return _REWARDS.register(name)


def get_reward(name: str) -> RewardFn:
    """The reward registered as `name`; a clear error listing the known ones otherwise."""
    if name not in _REWARDS:
        raise KeyError(f"no reward named {name!r}; registered: {', '.join(_REWARDS.names())}")
    return _REWARDS.get(name)


def registered_rewards() -> list[str]:
    return _REWARDS.names()


__all__ = ["RewardFn", "get_reward", "register_reward", "registered_rewards"]
