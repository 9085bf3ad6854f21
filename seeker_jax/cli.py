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


def _synth_arguments(p: argparse.ArgumentParser) -> None:
    from seeker_jax.config import add_config_arguments

    p.add_argument("--out", required=True, help="dataset root to write")
    p.add_argument("--num", type=int, required=True, help="number of records (questions)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="processes making videos")
    add_config_arguments(p, "configs/synth.py:default")


@command("synth", "write the synthetic video world (videos, tracks, prompts, records)",
         _synth_arguments)
def _synth(args: argparse.Namespace) -> int:
    from seeker_jax.config import load_config
    from seeker_jax.data.synth import synthesize

    meta = synthesize(args.out, args.num, args.seed, load_config(args.config, args.config_overrides),
                      workers=args.workers)
    print(f"synth: {meta['num_records']} records from {meta['num_videos']} videos in {args.out} "
          f"(splits {meta['splits']})")
    return 0


def _tool_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--record", required=True, help="a record .json/.jsonl (V2P-Bench fields)")
    p.add_argument("--index", type=int, default=0, help="which record of the file")
    p.add_argument("--call", required=True, help="'<tool_call>{\"name\": ..., \"arguments\": "
                                                 "{...}}</tool_call>' as the model would write it")
    p.add_argument("--root", default=None, help="dataset root (default: the record file's folder)")
    p.add_argument("--out", default=None, help="where to save the frames shown (default: a temp dir)")


@command("tool", "run one tool call on one record and print what the model would see (JSON)",
         _tool_arguments)
def _tool(args: argparse.Namespace) -> int:
    import itertools
    import json

    from seeker_jax.env.inspect import inspect_call
    from seeker_jax.env.records import default_root, read_records

    record = next(itertools.islice(read_records(args.record), args.index, None))
    result = inspect_call(record, args.call, args.root or default_root(args.record), args.out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
