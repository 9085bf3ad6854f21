"""The `seeker-jax` command line: one thin dispatcher over the library.

Each subcommand is a pair (add_arguments, run) registered with `@command` (cli/common.py) in
one of the command modules (data_, train_, serve_, model_commands.py), with one or two
examples and where its outputs go (both shown by `seeker-jax COMMAND --help`). Implementations
import lazily so `seeker-jax --help` stays fast. The cli package is the only layer that
imports every part of the project; nothing imports it.

User mistakes end in one line, `error: ...`, and exit code 2: argparse's own (a missing or
out-of-range argument, checked by seeker_jax/cli/args.py before any work starts) and the
errors raised while running that describe bad input (`seeker_jax.errors.is_user_error`).
Anything else is a bug and shows its traceback; `--debug` shows tracebacks for both.
"""
from __future__ import annotations

import argparse
import os
import sys

# Each command module registers its commands on import; this order is --help's.
from seeker_jax.cli import data_commands  # noqa: F401
from seeker_jax.cli import train_commands  # noqa: F401
from seeker_jax.cli import serve_commands  # noqa: F401
from seeker_jax.cli import model_commands  # noqa: F401
from seeker_jax.cli.common import _COMMANDS, Command
from seeker_jax.errors import is_user_error


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (`error: ...`, exit 2), not usage + error."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def _epilog(cmd: Command) -> str:
    lines = ["examples:", *(f"  {e}" for e in cmd.examples), "", "outputs:"]
    lines += [f"  {line}" for line in cmd.outputs.splitlines()]
    return "\n".join(lines)


def _version() -> str:
    from importlib import metadata

    from seeker_jax import __version__

    deps = []
    for dist in ("jax", "flax", "orbax-checkpoint"):
        try:
            deps.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            deps.append(f"{dist} not installed")
    return f"seeker-jax {__version__} ({', '.join(deps)}; python {sys.version.split()[0]})"


class _PrintVersion(argparse.Action):
    """Like argparse's "version" action, without rewrapping the line (or importing jax)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(_version())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="seeker-jax", description=__doc__.splitlines()[0],
                    epilog="`seeker-jax COMMAND --help` shows a command's arguments, examples "
                           "and where its outputs go.")
    parser.add_argument("--version", action=_PrintVersion,
                        help="print the versions of seeker-jax, jax, flax, orbax and exit")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback for user errors too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in _COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help, epilog=_epilog(cmd),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the Python traceback for user errors too")
        cmd.add_arguments(p)
    return parser


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(_COMMANDS[args.command].run(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"\ninterrupted{_saved_checkpoints(args)}", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - sorted into user errors and bugs right here
        if args.debug or not is_user_error(e):
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2


def _saved_checkpoints(args: argparse.Namespace) -> str:
    """What an interrupted command leaves to resume from: '; last checkpoint: step N in
    DIR ...' for each run folder under --workdir (the demo has two), '' without a workdir."""
    workdir = getattr(args, "workdir", None)
    if not workdir or not os.path.isdir(workdir):
        return ""
    from seeker_jax.training.run_config import latest_checkpoint_step

    runs = [workdir] + sorted(os.path.join(workdir, n) for n in os.listdir(workdir)
                              if os.path.isdir(os.path.join(workdir, n, "checkpoints")))
    found = [(w, latest_checkpoint_step(w)) for w in runs]
    found = [f"step {step} in {os.path.join(w, 'checkpoints')}" for w, step in found
             if step is not None]
    if found:
        return f"; last saved checkpoint: {', '.join(found)} (rerun the same command to resume)"
    if any(os.path.isdir(os.path.join(w, "checkpoints")) for w in runs):
        return "; no checkpoint was saved yet (a rerun starts from the beginning)"
    return ""


if __name__ == "__main__":
    sys.exit(main())
