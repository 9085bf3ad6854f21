"""What a stage returns, and how a stage is named so that any process can build it.

Why a spec and not an instance: a stage that holds a model (SAM) or a client (locks, sockets)
cannot be pickled to a Ray worker; its `StageSpec` (a dotted class name and JSON-able kwargs)
can, and every process or actor builds the stage from it once.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Protocol


@dataclasses.dataclass(frozen=True)
class Rejected:
    """A sample a stage drops: `reason` is a short stable key (funnel rows), `detail` says why."""
    reason: str
    detail: str = ""


@dataclasses.dataclass
class Outcome:
    """A stage's answer for one sample: the new record or a rejection, and the API tokens used."""
    value: dict[str, Any] | Rejected
    tokens: int = 0

    @property
    def kept(self) -> bool:
        return not isinstance(self.value, Rejected)


class Stage(Protocol):
    name: str
    holds_model: bool  # True: run in long-lived actors (Ray) that keep the model loaded

    def __call__(self, sample: dict[str, Any]) -> Outcome: ...


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """`cls` is "module:Class"; `kwargs` JSON-able. `build()` makes the stage."""
    cls: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def build(self) -> Stage:
        module, _, name = self.cls.partition(":")
        return getattr(importlib.import_module(module), name)(**self.kwargs)

    @property
    def stage_class(self) -> type:
        module, _, name = self.cls.partition(":")
        return getattr(importlib.import_module(module), name)
