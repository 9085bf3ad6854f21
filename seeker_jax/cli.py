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


def _convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hf-dir", required=True, help="Hugging Face Qwen3-VL folder (config.json "
                   "+ model.safetensors or a sharded index)")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="parameter dtype (default: as stored in the HF files)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--mesh", default=None, help="shard parameters as they are read, over a "
                   "mesh of this host's devices, e.g. fsdp=4,tensor=2 (logical-axis rules of "
                   "seeker_jax/sharding.py)")


@command("convert", "HF safetensors folder -> orbax checkpoint (streamed, tensor by tensor)",
         _convert_arguments)
def _convert(args: argparse.Namespace) -> int:
    from seeker_jax.convert import convert, mesh_placer, parse_mesh, run_reporting_errors

    def work() -> str:
        place = mesh_placer(args.hf_dir, parse_mesh(args.mesh)) if args.mesh else None
        return convert(args.hf_dir, args.out, args.dtype, overwrite=args.overwrite, place=place)

    return run_reporting_errors(work)


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", required=True, help="a converted checkpoint, a training step "
                   "folder, or a CheckpointManager root / workdir (latest step)")
    p.add_argument("--out", required=True, help="Hugging Face folder to write")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="tensor dtype written (default: as stored)")
    p.add_argument("--max-shard-size", default="5GB", help="split safetensors above this size "
                   "(e.g. 5GB, 500MB) and write model.safetensors.index.json")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")


@command("export", "orbax checkpoint (converted or trained) -> HF safetensors folder",
         _export_arguments)
def _export(args: argparse.Namespace) -> int:
    from seeker_jax.convert import export, run_reporting_errors

    return run_reporting_errors(lambda: export(args.ckpt, args.out, args.dtype,
                                               max_shard_size=args.max_shard_size,
                                               overwrite=args.overwrite))


def _parity_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hf-dir", default=None, help="a Hugging Face Qwen3-VL folder to check "
                   "(default: build a tiny random reference)")
    p.add_argument("--tol", type=float, default=1e-4, help="max |logits diff| allowed (fp32)")
    p.add_argument("--seed", type=int, default=0)


@command("parity", "compare our logits with transformers' PyTorch Qwen3-VL (needs torch)",
         _parity_arguments)
def _parity(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from seeker_jax.parity import run_parity

    errors = run_parity(args.hf_dir, args.tol, args.seed)
    return 0 if max(errors.values()) <= args.tol else 1


def _sft_arguments(p: argparse.ArgumentParser) -> None:
    from seeker_jax.config import add_config_arguments

    p.add_argument("--workdir", required=True, help="checkpoints, metrics.jsonl, tb/, config; "
                   "rerunning the same command resumes from the latest checkpoint")
    add_config_arguments(p, "configs/sft.py:tiny_synth")


@command("sft", "supervised fine-tuning on multi-turn tool trajectories (resumable)",
         _sft_arguments)
def _sft(args: argparse.Namespace) -> int:
    from seeker_jax.config import load_config
    from seeker_jax.sft import train

    train(load_config(args.config, args.config_overrides), args.workdir)
    return 0


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default="runs/demo", help="where everything is written")
    p.add_argument("--steps", type=int, default=100, help="SFT steps")
    p.add_argument("--episodes", type=int, default=8, help="held-out episodes to run")


@command("demo", "end to end on the embedded default: synth world, SFT, tool episodes, export",
         _demo_arguments)
def _demo(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from seeker_jax.rl.demo import run_demo

    run_demo(args.workdir, args.steps, args.episodes)
    return 0


def _aot_arguments(p: argparse.ArgumentParser) -> None:
    from seeker_jax.config import add_config_arguments

    add_config_arguments(p, "configs/sft.py:qwen3_vl_8b")
    p.add_argument("--topology", required=True, help="TPU topology, e.g. v5p:2x2x1 (v5p-8), "
                   "v5p:2x2x4, v5e:2x2, v6e:4x4 (needs jax[tpu])")
    p.add_argument("--batch-per-chip", type=int, default=1, help="examples per data/fsdp shard")
    p.add_argument("--frames", type=int, default=64, help="video frames per example")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per example (default: "
                   "the video's tokens + timestamps + --text-tokens, rounded up to 256)")
    p.add_argument("--text-tokens", type=int, default=1024, help="prompt, tool calls, answers")
    p.add_argument("--json", default=None, metavar="OUT", help="also save the figures here")


@command("aot", "compile the SFT step for a TPU topology on this CPU: will it fit? (exit 2 if not)",
         _aot_arguments)
def _aot(args: argparse.Namespace) -> int:
    from seeker_jax.aot import run_aot
    from seeker_jax.config import load_config

    return run_aot(load_config(args.config, args.config_overrides), args.topology, args.json,
                   batch_per_chip=args.batch_per_chip, frames=args.frames, seq_len=args.seq_len,
                   text_tokens=args.text_tokens)


if __name__ == "__main__":
    sys.exit(main())
