"""Argument checks for the CLI: ranges and paths, checked by argparse before any work starts.

Why here and not in each command: every subcommand takes counts (> 0), inputs (must exist) and
outputs (must be writable), and a mistake must be caught before minutes of synthesis or a
compile, with the same one-line message. Each function is an argparse `type=`: it returns the
parsed value or raises `argparse.ArgumentTypeError`, which argparse reports as
`argument --num: ...`. Nothing here imports the project, jax or anything slow.
"""
from __future__ import annotations

import argparse
import os


def _number(text: str, kind: type, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def positive_int(text: str) -> int:
    """A count: 1, 2, ... (`--num -3` is refused, not an empty dataset)."""
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    """An index or a seed: 0, 1, ..."""
    value = _number(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def non_negative_float(text: str) -> float:
    """A tolerance: 0 or more."""
    value = _number(text, float, "a number")
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def existing_file(text: str) -> str:
    """An input file that must be there."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text} is not a file")
    return text


def existing_dir(text: str) -> str:
    """An input folder that must be there."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return text


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def writable_dir(text: str) -> str:
    """An output folder: it exists as a folder we may write in, or it can be created (its
    nearest existing parent is a writable folder). Nothing is created here."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder; "
                                         "give a folder path")
    base = _nearest_existing(text)
    if not os.path.isdir(base):
        raise argparse.ArgumentTypeError(f"cannot create {text}: {base} is a file")
    if not os.access(base, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write in {base} (permission denied); "
                                         "pick a folder you own")
    return text


def writable_file(text: str) -> str:
    """An output file: not a folder, and its folder is writable (or can be created)."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file path")
    writable_dir(os.path.dirname(os.path.abspath(text)))
    return text
