"""A named table of functions: how every GRPO piece (advantage estimator, surrogate, aggregation,
KL estimator, importance-sampling correction) is chosen by a config string."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """name -> function. `what` names the table in errors ("KL estimator")."""

    def __init__(self, what: str):
        self.what = what
        self._fns: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def add(fn: F) -> F:
            if name in self._fns and self._fns[name] is not fn:
                raise ValueError(f"{self.what} {name!r} is already registered "
                                 f"({self._fns[name].__module__}.{self._fns[name].__name__}); "
                                 "pick another name")
            self._fns[name] = fn
            return fn
        return add

    def get(self, name: str, where: str | None = None) -> F:
        if name not in self._fns:
            raise KeyError(f"{where + ': ' if where else ''}unknown {self.what} {name!r}; "
                           f"registered: {self.names()}")
        return self._fns[name]

    def names(self) -> list[str]:
        return sorted(self._fns)

    def __contains__(self, name: str) -> bool:
        return name in self._fns
