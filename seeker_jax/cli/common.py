"""What every `seeker-jax` subcommand module shares: the registry of commands (`@command`) and
the --config helpers. A command module registers its commands when imported (cli/main.py
imports them all)."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Callable, Sequence


@dataclasses.dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    examples: Sequence[str]   # command lines shown under "examples:" in --help
    outputs: str              # where the results go, shown under "outputs:"


_COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None], *,
            examples: Sequence[str], outputs: str):
    """Registers `run(args) -> int` as subcommand `name`."""

    def register(run: Callable[[argparse.Namespace], int]):
        _COMMANDS[name] = Command(help, add_arguments, run, tuple(examples), outputs)
        return run

    return register


def add_config(p: argparse.ArgumentParser, default: str) -> None:
    from seeker_jax.config import add_config_arguments

    add_config_arguments(p, default)


def resolved_config(args: argparse.Namespace):
    """The resolved --config; its mistakes are ConfigArgumentErrors (one line, exit 2)."""
    from seeker_jax.config import load_config

    return load_config(args.config, args.config_overrides)
