"""Where generated tokens first complete a stop string: the one scanner behind the sampler's
host-side stop strings (`</tool_call>`, `</answer>`) and the server's client `stop` lists.

Why by decoded text and token by token: a stop string often spans several tokens, and a
token can hold the end of a stop string and more text after it. So the turn ends at the first
token whose decoded prefix contains a stop string; the tokens after it are dropped (the sampler
rolls its cache back over them, the server never sends them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class StopHit:
    """tokens: how many of the ids to keep (through the token that completes the stop
    string); stop: which stop string (the first of the list that the kept text contains)."""

    tokens: int
    stop: str


def find_stop(ids: Sequence[int], stops: Sequence[str], decode: Callable[[list[int]], str],
              start: int = 0) -> StopHit | None:
    """The first prefix `ids[:n]`, n > start, whose text holds a stop string; None if none.

    start: tokens already scanned (known not to complete a stop string), so a growing turn is
    scanned only over its new tokens. The whole text is decoded first, so the common case (no
    stop string yet) costs one decode."""
    ids = list(ids)
    if not stops or not any(s in decode(ids) for s in stops):
        return None
    for n in range(start + 1, len(ids) + 1):
        text = decode(ids[:n])
        for s in stops:
            if s in text:
                return StopHit(n, s)
    return None


__all__ = ["StopHit", "find_stop"]
