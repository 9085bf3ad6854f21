"""The `seeker-jax` command line: one thin dispatcher over the library.

Each subcommand is a pair (add_arguments, run) registered with `@command`, with one or two
examples and where its outputs go (both shown by `seeker-jax COMMAND --help`). Implementations
import lazily so `seeker-jax --help` stays fast. This is the only module that imports every
part of the project; nothing imports it.

User mistakes end in one line, `error: ...`, and exit code 2: argparse's own (a missing or
out-of-range argument, checked by seeker_jax/cli_args.py before any work starts) and the
errors raised while running that describe bad input (`seeker_jax.errors.is_user_error`).
Anything else is a bug and shows its traceback; `--debug` shows tracebacks for both.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Callable, Sequence

from seeker_jax.cli_args import (existing_dir, existing_file, non_negative_float, non_negative_int,
                                 positive_int, writable_dir, writable_file)
from seeker_jax.errors import UserError, is_user_error


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
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - sorted into user errors and bugs right here
        if args.debug or not is_user_error(e):
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2


def _add_config(p: argparse.ArgumentParser, default: str) -> None:
    from seeker_jax.config import add_config_arguments

    add_config_arguments(p, default)


def _config(args: argparse.Namespace):
    """The resolved --config; its mistakes are ConfigArgumentErrors (one line, exit 2)."""
    from seeker_jax.config import load_config

    return load_config(args.config, args.config_overrides)


def _synth_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=writable_dir, help="dataset root to write")
    p.add_argument("--num", type=positive_int, required=True, help="number of records (questions)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--workers", type=positive_int, default=1, help="processes making videos")
    _add_config(p, "configs/synth.py:default")


@command("synth", "write the synthetic video world (videos, tracks, prompts, records)",
         _synth_arguments,
         examples=["seeker-jax synth --out data/world --num 200",
                   "seeker-jax synth --out /tmp/tiny --num 16 --config configs/synth.py:tiny "
                   "--workers 2"],
         outputs="OUT/videos/*.mp4, OUT/tracks/ (exact masks), OUT/frames/ (visual-prompt "
                 "frames),\nOUT/records/{train,val,test}.array_record, OUT/meta.json (counts, "
                 "seed, config)")
def _synth(args: argparse.Namespace) -> int:
    from seeker_jax.data.synth import synthesize

    meta = synthesize(args.out, args.num, args.seed, _config(args), workers=args.workers)
    print(f"synth: {meta['num_records']} records from {meta['num_videos']} videos in {args.out} "
          f"(splits {meta['splits']})")
    return 0


def _tool_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--record", required=True, type=existing_file,
                   help="a record .json/.jsonl (V2P-Bench fields)")
    p.add_argument("--index", type=non_negative_int, default=0, help="which record of the file")
    p.add_argument("--call", required=True, help="'<tool_call>{\"name\": ..., \"arguments\": "
                                                 "{...}}</tool_call>' as the model would write it")
    p.add_argument("--root", default=None, type=existing_dir,
                   help="dataset root (default: the record file's folder)")
    p.add_argument("--out", default=None, type=writable_dir,
                   help="where to save the frames shown (default: a temp dir)")


def _read_record(path: str, index: int):
    """Record `index` of a user's file; a malformed file or a short one is a user error."""
    from seeker_jax.env.records import read_records

    count = 0
    try:
        for count, record in enumerate(read_records(path), 1):
            if count - 1 == index:
                return record
    except ValueError as e:  # bad JSON, or a record without the required fields
        raise UserError(f"--record {path}: {e}; each record needs video_id, video_path and "
                        "question (V2P-Bench fields)") from e
    raise UserError(f"--index {index}: {path} holds {count} record(s); indices start at 0")


@command("tool", "run one tool call on one record and print what the model would see (JSON)",
         _tool_arguments,
         examples=["seeker-jax tool --record record.json --call '<tool_call>"
                   "{\"name\": \"crop_video\", \"arguments\": {\"video_path\": \"videos/0.mp4\", "
                   "\"start_time\": 1, \"end_time\": 3}}</tool_call>'",
                   "seeker-jax tool --record recs.jsonl --index 3 --out /tmp/seen --call "
                   "'<tool_call>{\"name\": \"view_visual_prompt\", \"arguments\": "
                   "{\"frame_path\": \"frames/3.png\"}}</tool_call>'"],
         outputs="stdout: JSON (per call: name, arguments, error, the tool response text, "
                 "frames, vision grids);\nthe frames shown as PNGs in --out (default: a new "
                 "temp folder, named in the JSON)")
def _tool(args: argparse.Namespace) -> int:
    import json

    from seeker_jax.env.inspect import inspect_call
    from seeker_jax.env.records import default_root

    record = _read_record(args.record, args.index)
    result = inspect_call(record, args.call, args.root or default_root(args.record), args.out)
    print(json.dumps(result, indent=2))
    return 0


def _convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hf-dir", required=True, type=existing_dir, help="Hugging Face Qwen3-VL "
                   "folder (config.json + model.safetensors or a sharded index)")
    p.add_argument("--out", required=True, type=writable_dir, help="checkpoint folder to write")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="parameter dtype (default: as stored in the HF files)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--mesh", default=None, help="shard parameters as they are read, over a "
                   "mesh of this host's devices, e.g. fsdp=4,tensor=2 (logical-axis rules of "
                   "seeker_jax/sharding.py)")


@command("convert", "HF safetensors folder -> orbax checkpoint (streamed, tensor by tensor)",
         _convert_arguments,
         examples=["seeker-jax convert --hf-dir ~/models/Qwen3-VL-4B-Instruct --out ckpt/4b",
                   "seeker-jax convert --hf-dir HF_DIR --out ckpt/8b --dtype bfloat16 "
                   "--mesh fsdp=4,tensor=2"],
         outputs="OUT/params/ (orbax), OUT/model_config.json, and the tokenizer/processor files "
                 "of --hf-dir;\nstdout: one summary line (tensors, bytes, seconds, peak memory)")
def _convert(args: argparse.Namespace) -> int:
    from seeker_jax.convert import convert, mesh_placer, parse_mesh, run_reporting_errors

    def work() -> str:
        place = mesh_placer(args.hf_dir, parse_mesh(args.mesh)) if args.mesh else None
        return convert(args.hf_dir, args.out, args.dtype, overwrite=args.overwrite, place=place)

    return run_reporting_errors(work)


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", required=True, type=existing_dir, help="a converted checkpoint, a "
                   "training step folder, or a CheckpointManager root / workdir (latest step)")
    p.add_argument("--out", required=True, type=writable_dir, help="Hugging Face folder to write")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="tensor dtype written (default: as stored)")
    p.add_argument("--max-shard-size", default="5GB", help="split safetensors above this size "
                   "(e.g. 5GB, 500MB) and write model.safetensors.index.json")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")


@command("export", "orbax checkpoint (converted or trained) -> HF safetensors folder",
         _export_arguments,
         examples=["seeker-jax export --ckpt runs/sft --out hf/sft  # a workdir: its latest step",
                   "seeker-jax export --ckpt ckpt/8b --out hf/8b --dtype bfloat16 "
                   "--max-shard-size 2GB"],
         outputs="OUT/config.json, OUT/model.safetensors (or shards + model.safetensors.index."
                 "json), the tokenizer files;\nloadable by transformers' "
                 "Qwen3VLForConditionalGeneration.from_pretrained(OUT)")
def _export(args: argparse.Namespace) -> int:
    from seeker_jax.convert import export, run_reporting_errors

    return run_reporting_errors(lambda: export(args.ckpt, args.out, args.dtype,
                                               max_shard_size=args.max_shard_size,
                                               overwrite=args.overwrite))


def _parity_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hf-dir", default=None, type=existing_dir, help="a Hugging Face Qwen3-VL "
                   "folder to check (default: build a tiny random reference)")
    p.add_argument("--tol", type=non_negative_float, default=1e-4,
                   help="max |logits diff| allowed (fp32)")
    p.add_argument("--seed", type=non_negative_int, default=0)


@command("parity", "compare our logits with transformers' PyTorch Qwen3-VL (needs torch)",
         _parity_arguments,
         examples=["seeker-jax parity  # a tiny random model, built here",
                   "seeker-jax parity --hf-dir ~/models/Qwen3-VL-4B-Instruct --tol 1e-4"],
         outputs="stdout: max |logits diff| per case and PASS/FAIL; writes no files; "
                 "exit 1 on a mismatch")
def _parity(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from seeker_jax.parity import run_parity

    errors = run_parity(args.hf_dir, args.tol, args.seed)
    return 0 if max(errors.values()) <= args.tol else 1


def _sft_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", required=True, type=writable_dir, help="checkpoints, "
                   "metrics.jsonl, tb/, config; rerunning the same command resumes from the "
                   "latest checkpoint")
    _add_config(p, "configs/sft.py:tiny_synth")


@command("sft", "supervised fine-tuning on multi-turn tool trajectories (resumable)",
         _sft_arguments,
         examples=["seeker-jax sft --workdir runs/sft  # tiny model, synthetic world, CPU",
                   "seeker-jax sft --workdir runs/sft --config configs/sft.py:tiny_synth "
                   "--config.steps=200 --config.optimizer.lr=3e-3"],
         outputs="WORKDIR/config.json (resolved config), WORKDIR/metrics.jsonl (one line per "
                 "logged step),\nWORKDIR/tb/ (TensorBoard), WORKDIR/checkpoints/<step>/ (orbax), "
                 "WORKDIR/data/ (tiny_synth's world)")
def _sft(args: argparse.Namespace) -> int:
    from seeker_jax.sft import train

    train(_config(args), args.workdir)
    return 0


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default="runs/demo", type=writable_dir,
                   help="where everything is written")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="SFT steps (default: configs/sft.py:demo's)")
    p.add_argument("--grpo-steps", type=non_negative_int, default=8,
                   help="GRPO iterations (0: no GRPO)")
    p.add_argument("--episodes", type=positive_int, default=16,
                   help="held-out questions evaluated before and after GRPO")


@command("demo", "end to end on the embedded default: synth world, SFT, evaluation, GRPO, "
         "evaluation, export", _demo_arguments,
         examples=["seeker-jax demo  # about 15 minutes on 2 CPU cores",
                   "seeker-jax demo --workdir /tmp/demo --grpo-steps 0 --episodes 8"],
         outputs="WORKDIR/sft/ (data/, checkpoints/, metrics.jsonl, config.json), "
                 "WORKDIR/grpo/ (checkpoints/, metrics.jsonl, plots),\nWORKDIR/hf_export/ "
                 "(HF folder), WORKDIR/demo_summary.json; rerunning with the same WORKDIR "
                 "resumes SFT and GRPO")
def _demo(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from seeker_jax.rl.demo import run_demo

    run_demo(args.workdir, args.steps, args.episodes, args.grpo_steps)
    return 0


def _aot_arguments(p: argparse.ArgumentParser) -> None:
    _add_config(p, "configs/sft.py:qwen3_vl_8b")
    p.add_argument("--topology", required=True, help="TPU topology, e.g. v5p:2x2x1 (v5p-8), "
                   "v5p:2x2x4, v5e:2x2, v6e:4x4 (needs jax[tpu])")
    p.add_argument("--batch-per-chip", type=positive_int, default=1,
                   help="examples per data/fsdp shard")
    p.add_argument("--frames", type=positive_int, default=64,
                   help="video frames per example (even)")
    p.add_argument("--seq-len", type=positive_int, default=None, help="tokens per example "
                   "(default: the video's tokens + timestamps + --text-tokens, rounded up to 256)")
    p.add_argument("--text-tokens", type=positive_int, default=1024,
                   help="prompt, tool calls, answers")
    p.add_argument("--json", default=None, metavar="OUT", type=writable_file,
                   help="also save the figures here")


def _check_aot_arguments(args: argparse.Namespace) -> None:
    from seeker_jax.aot import hbm_gib, tpu_compiler_available

    if args.frames % 2:
        raise UserError(f"--frames {args.frames}: give an even number (Qwen3-VL patches video "
                        "in 2-frame groups)")
    hbm_gib(args.topology)  # an unknown chip: AotError, a user error
    if not tpu_compiler_available():
        raise UserError("aot needs the TPU compiler: pip install '.[tpu]' (jax[tpu], libtpu) "
                        "into this environment")


@command("aot", "compile the SFT step for a TPU topology on this CPU: will it fit? (exit 2 if not)",
         _aot_arguments,
         examples=["seeker-jax aot --config configs/sft.py:qwen3_vl_8b --topology v5p:2x2x1",
                   "seeker-jax aot --config configs/sft.py:qwen3_vl_4b --topology v6e:4x4 "
                   "--config.mesh.tensor=4 --json aot_4b_v6e.json"],
         outputs="stdout: per-chip memory (arguments, temporaries, code vs HBM), FITS / DOES NOT "
                 "FIT, FLOPs vs 6NT;\n--json OUT: the same figures as JSON. Exit 2 if it does "
                 "not fit (or on a usage error)")
def _aot(args: argparse.Namespace) -> int:
    from seeker_jax.aot import run_aot

    config = _config(args)
    _check_aot_arguments(args)
    print(f"aot: compiling the SFT step for {args.topology} with libtpu (minutes for real "
          "sizes); libtpu's warnings about TPU_ACCELERATOR_TYPE / TPU_WORKER_HOSTNAMES are "
          "harmless on a machine without TPUs", flush=True)
    return run_aot(config, args.topology, args.json, batch_per_chip=args.batch_per_chip,
                   frames=args.frames, seq_len=args.seq_len, text_tokens=args.text_tokens)


if __name__ == "__main__":
    sys.exit(main())
