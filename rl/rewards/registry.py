"""Rewards registered by name (Tunix style): a new reward is a function, never a new trainer.

Each reward is pure: `fn(ctx: RewardContext, **params) -> float`, reading only the finished
episode (and, for the few that depend on another component, that component's score passed in
as a parameter, e.g. parsimony's `accuracy`). The one reward that needs I/O, the judge, is
scored beforehand by `RewardModel` and its score is passed in as `judgement`.
"""
from __future__ import annotations

from typing import Callable, Protocol


class RewardFn(Protocol):
    def __call__(self, ctx, **params) -> float: ...


_REWARDS: dict[str, RewardFn] = {}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator: `@register_reward("format_paper")`. A name can be registered once."""
    def wrap(fn: RewardFn) -> RewardFn:
        if name in _REWARDS and _REWARDS[name] is not fn:
            raise ValueError(f"reward {name!r} is already registered ({_REWARDS[name].__module__}."
                             f"{_REWARDS[name].__name__}); pick another name")
        _REWARDS[name] = fn
        return fn
    return wrap


def get_reward(name: str) -> RewardFn:
    """The reward registered as `name`; a clear error listing the known ones otherwise."""
    try:
        return _REWARDS[name]
    except KeyError:
        raise KeyError(f"no reward named {name!r}; registered: {', '.join(sorted(_REWARDS))}"
                       ) from None


def registered_rewards() -> list[str]:
    return sorted(_REWARDS)


__all__ = ["RewardFn", "get_reward", "register_reward", "registered_rewards"]
