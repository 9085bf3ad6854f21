"""The `seeker-jax` command line: one thin dispatcher over the library.

Each subcommand is a pair (add_arguments, run) registered with `@command`. Implementations
import lazily so `seeker-jax --help` stays fast. This is the only module that imports every
part of the project; nothing imports it.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Registers `run(args) -> int` as subcommand `name`."""

    def register(run: Callable[[argparse.Namespace], int]):
        _COMMANDS[name] = (help, add_arguments, run)
        return run

    return register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seeker-jax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, _) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _, _, run = _COMMANDS[args.command]
    return int(run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
