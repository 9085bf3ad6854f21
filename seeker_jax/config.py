"""Loads ml_collections config files as `path.py:preset` plus `--config.a.b=value` overrides.

Why our own helper and not absl's `config_flags`: the CLI is argparse, and every subcommand
(synth, sft, grpo, pipeline, ...) needs the same two things: pick a preset of a config file and
override leaves from the command line with the leaf's own type. This module is a leaf (no
project imports), so any layer may use it.

A config file defines `get_config(preset: str = "default") -> ConfigDict` (big_vision style).

Every mistake in `--config` or an override (a missing file, an unknown preset, a misspelt key,
a value of the wrong type) raises `ConfigArgumentError`, a `UserError`: the CLI prints it as
one line and exits 2.
"""
from __future__ import annotations

import argparse
import ast
import difflib
import importlib.util
import json
from pathlib import Path
from typing import Any, Sequence

import ml_collections

from seeker_jax.errors import UserError

_REPO_ROOT = Path(__file__).resolve().parents[1]
OVERRIDE_PREFIX = "--config."


_INSTALLED = Path(__file__).resolve().parent  # configs/ installs as seeker_jax/configs


class ConfigArgumentError(UserError, ValueError):
    """A bad `--config path.py:preset` or `--config.a.b=value`: says which and what to do."""


def _find_file(path: str) -> Path:
    """The config file as given, else relative to the repository root (`pip install -e`), else
    the installed copy of configs/ (`pip install .`): `configs/sft.py` works from anywhere."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_absolute():
        for base in (_REPO_ROOT, _INSTALLED):
            if (base / p).is_file():
                return base / p
    raise ConfigArgumentError(
        f"config file {path!r} not found (looked in {Path.cwd()}, {_REPO_ROOT} and the installed "
        "seeker_jax/configs); give a path like configs/synth.py:tiny")


def _load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"_seeker_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_value(text: str, current: Any, key: str = "?") -> Any:
    """Parses `text` into the type of the existing value `current`.

    bool accepts true/false/1/0/yes/no; int refuses fractions; tuples and lists are Python
    literals (`(1,2)` or `[1,2]`); a None field takes a Python literal, else the raw string.
    """
    if isinstance(current, bool):
        low = text.strip().lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ConfigArgumentError(f"config.{key}: {text!r} is not a bool (use true/false)")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigArgumentError(f"config.{key}: {text!r} is not an int (give a whole number)") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise ConfigArgumentError(f"config.{key}: {text!r} is not a float (give a number, "
                                      "e.g. 1e-5)") from None
    if isinstance(current, str):
        return text
    if isinstance(current, (tuple, list)):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = tuple(s.strip() for s in text.split(",") if s.strip())
        if not isinstance(value, (tuple, list)):
            value = (value,)
        return type(current)(value)
    if current is None:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    raise ConfigArgumentError(f"config.{key}: cannot override a field of type {type(current).__name__}")


def _did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def apply_override(config: ml_collections.ConfigDict, override: str) -> None:
    """Applies one `a.b.c=value` (a leading `--config.` is allowed) in place."""
    item = override[len(OVERRIDE_PREFIX):] if override.startswith(OVERRIDE_PREFIX) else override
    item = item[len("config."):] if item.startswith("config.") else item
    if "=" not in item:
        raise ConfigArgumentError(f"override {override!r} has no '=': write --config.a.b=value")
    dotted, text = item.split("=", 1)
    *parents, leaf = dotted.split(".")
    node = config
    for i, name in enumerate(parents):
        if name not in node or not isinstance(node[name], ml_collections.ConfigDict):
            groups = sorted(k for k, v in node.items() if isinstance(v, ml_collections.ConfigDict))
            raise ConfigArgumentError(f"config.{'.'.join(parents[:i + 1])} is not a group of the "
                                      f"config{_did_you_mean(name, groups)}; groups there: {groups}")
        node = node[name]
    if leaf not in node:
        raise ConfigArgumentError(f"config.{dotted} does not exist{_did_you_mean(leaf, node.keys())}; "
                                  f"keys there: {sorted(node.keys())}")
    if isinstance(node[leaf], ml_collections.ConfigDict):
        raise ConfigArgumentError(f"config.{dotted} is a group; override one of its leaves: "
                                  f"{sorted(node[leaf].keys())}")
    node[leaf] = parse_value(text, node[leaf], dotted)


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Loads `path.py[:preset]` (preset defaults to "default") and applies `overrides` in order.

    A ValueError or KeyError raised by the file's get_config is taken as an unknown preset
    (the config files raise them for that) and comes back as a ConfigArgumentError naming
    the spec; the original stays chained as its cause.

    >>> load_config("configs/synth.py:tiny", ["--config.video.fps=10"]).video.fps
    10
    """
    path, _, preset = spec.partition(":")
    module = _load_module(_find_file(path))
    if not hasattr(module, "get_config"):
        raise ConfigArgumentError(f"config file {path} defines no get_config(preset); "
                                  "a config file is a Python file with def get_config(preset)")
    try:
        config = module.get_config(preset or "default")
    except (ValueError, KeyError) as e:
        if isinstance(e, ConfigArgumentError):
            raise
        raise ConfigArgumentError(f"--config {spec}: {e.args[0] if e.args else e}") from e
    for override in overrides:
        apply_override(config, override)
    return config


def to_json(config: ml_collections.ConfigDict) -> str:
    """The resolved config as stable JSON (sorted keys), for copying into a workdir."""
    return json.dumps(config.to_dict(), sort_keys=True, indent=2, default=list)


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON trees, as 'a.b: old -> new' (what a
    refused resume names)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix[:-1]}: {old!r} -> {new!r}"]


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Splits `--config.a.b=v` / `--config.a.b v` items out of argv: (overrides, rest)."""
    overrides, rest = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith(OVERRIDE_PREFIX):
            if "=" not in arg:
                if i + 1 >= len(argv):
                    raise ConfigArgumentError(f"{arg} needs a value: {arg}=VALUE")
                arg = f"{arg}={argv[i + 1]}"
                i += 1
            overrides.append(arg)
        else:
            rest.append(arg)
        i += 1
    return overrides, rest


def add_config_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    """Adds `--config path.py:preset` and lets `parser` accept `--config.a.b=value` overrides.

    The overrides land in `args.config_overrides` (a list, in command-line order). It works
    for a parser used alone or as an argparse subparser: the subparser's parse_known_args is
    wrapped to take the override items out of the unknown arguments before argparse rejects
    them.
    """
    parser.add_argument("--config", default=default,
                        help=f"config file and preset, path.py:preset (default {default}); "
                             "override leaves with --config.a.b=value")
    parser.set_defaults(config_overrides=[])
    original = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        namespace, extras = original(args, namespace)
        overrides, rest = split_overrides(extras)
        namespace.config_overrides = list(getattr(namespace, "config_overrides", []) or []) + overrides
        return namespace, rest

    parser.parse_known_args = parse_known_args
