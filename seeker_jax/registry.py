"""Named tables: how a config string picks a piece (a loss, a reward, an advantage estimator, a
KL estimator, a prompt profile, a tool-response layout, an evaluation protocol).

Why one class: each table used to keep its own dict, its own "already registered" check and
its own "unknown name" message, and they drifted apart. Here a name is registered once (an
equal value registered again is accepted: a module imported twice), and an unknown name is an
error that lists the registered ones and says where they come from.

A leaf module: it imports nothing of the project, so every layer (models, env, data, the core,
rl) may use it, like seeker_jax/errors.py and seeker_jax/config.py.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class RegistryError(KeyError, ValueError):
    """An unknown name, or a name registered twice with different values.

    Both a KeyError (a failed lookup) and a ValueError (a bad config value), so the callers
    that check configs with `except ValueError` and those that look up with `except KeyError`
    both see it. Its text is the message itself (KeyError would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _describe(value: object) -> str:
    name = getattr(value, "__qualname__", None) or getattr(value, "name", None)
    module = getattr(value, "__module__", None)
    return f"{module}.{name}" if module and name else repr(value)[:80]


class Registry(Generic[T]):
    """name -> value (a function, or a frozen description such as a protocol).

    what: names the table in errors ("KL estimator"); hint: how to add to it or pick from it
    (appended to the unknown-name error)."""

    def __init__(self, what: str, hint: str = ""):
        self.what, self.hint = what, hint
        self._items: dict[str, T] = {}

    def add(self, name: str, value: T) -> T:
        """Registers `value` under `name`; returns it."""
        old = self._items.get(name)
        if name in self._items and old is not value and old != value:
            raise RegistryError(f"{self.what} {name!r} is already registered "
                                f"({_describe(old)}); pick another name")
        self._items[name] = value
        return value

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@TABLE.register("name")`."""
        return lambda value: self.add(name, value)

    def get(self, name: str, where: str | None = None) -> T:
        """The value registered as `name`; `where` (a config key) prefixes the error."""
        if name not in self._items:
            hint = f" ({self.hint})" if self.hint else ""
            raise RegistryError(f"{where + ': ' if where else ''}unknown {self.what} {name!r}; "
                                f"registered: {self.names()}{hint}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


__all__ = ["Registry", "RegistryError"]
