"""The `seeker-jax` command line: one thin dispatcher over the library.

Each subcommand is a pair (add_arguments, run) registered with `@command`, with one or two
examples and where its outputs go (both shown by `seeker-jax COMMAND --help`). Implementations
import lazily so `seeker-jax --help` stays fast. This is the only module that imports every
part of the project; nothing imports it.

User mistakes end in one line, `error: ...`, and exit code 2: argparse's own (a missing or
out-of-range argument, checked by seeker_jax/cli/args.py before any work starts) and the
errors raised while running that describe bad input (`seeker_jax.errors.is_user_error`).
Anything else is a bug and shows its traceback; `--debug` shows tracebacks for both.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Callable, Sequence

from seeker_jax.cli.args import (existing_dir, existing_file, non_negative_float, non_negative_int,
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
    empty = [split for split, n in meta["splits"].items() if n == 0]
    if empty:
        print(f"warning: synth: split(s) {', '.join(empty)} got no records (each record's "
              "split is drawn with config.splits' fractions); raise --num or "
              "--config.splits.<name>", file=sys.stderr)
    return 0


def _tool_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--record", required=True, type=existing_file,
                   help="a record file: .json/.jsonl (V2P-Bench fields) or a split "
                   "as synth and pipeline write it (ROOT/records/<split>.array_record)")
    p.add_argument("--index", type=non_negative_int, default=0, help="which record of the file")
    p.add_argument("--call", required=True, help="'<tool_call>{\"name\": ..., \"arguments\": "
                                                 "{...}}</tool_call>' as the model would write it")
    p.add_argument("--root", default=None, type=existing_dir,
                   help="dataset root (default: the record file's folder; for "
                   "ROOT/records/<split>.array_record, ROOT)")
    p.add_argument("--out", default=None, type=writable_dir,
                   help="where to save the frames shown (default: a temp dir)")


def _read_record(path: str, index: int):
    """Record `index` of a user's file; a malformed file or a short one is a user error."""
    from seeker_jax.env.records import SampleRecord, read_records

    count = 0
    try:
        if path.endswith(".array_record"):  # our datasets: binary, one JSON record per entry
            from seeker_jax.data.records import read_record_file

            records = (SampleRecord.from_dict(r) for r in read_record_file(path))
        else:
            records = read_records(path)
        for count, record in enumerate(records, 1):
            if count - 1 == index:
                return record
    except ValueError as e:  # bad JSON, or a record without the required fields
        raise UserError(f"--record {path}: {e}; each record needs video_id, video_path and "
                        "question (V2P-Bench fields)") from e
    raise UserError(f"--index {index}: {path} holds {count} record(s); indices start at 0")


@command("tool", "run one tool call on one record and print what the model would see (JSON)",
         _tool_arguments,
         examples=["seeker-jax synth --out data --num 8 && seeker-jax tool --record "
                   "data/records/train.array_record --call '<tool_call>{\"name\": "
                   "\"crop_video\", \"arguments\": {\"video_path\": \"videos/synth0_000000.mp4\", "
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
    root = args.root or default_root(args.record)
    if args.record.endswith(".array_record") and root.name == "records":
        root = root.parent  # a dataset split: its paths start at the dataset root
    result = inspect_call(record, args.call, root, args.out)
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
    from seeker_jax.checkpointing.convert import convert, mesh_placer, parse_mesh, run_reporting_errors

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
    from seeker_jax.checkpointing.convert import export, run_reporting_errors

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
    from seeker_jax.checkpointing.parity import run_parity

    errors = run_parity(args.hf_dir, args.tol, args.seed)
    return 0 if max(errors.values()) <= args.tol else 1


def _add_resume_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-config-change", action="store_true", help="resume a --workdir "
                   "under a config that differs from its config.json (kept as "
                   "config.before_step<N>.json); without it that is an error. steps, "
                   "log/eval/checkpoint intervals and data workers may change freely")


def _sft_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", required=True, type=writable_dir, help="checkpoints, "
                   "metrics.jsonl, tb/, config; rerunning the same command resumes from the "
                   "latest checkpoint")
    _add_resume_arguments(p)
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
    from seeker_jax.training.run_config import check_resume_config
    from seeker_jax.training.sft import train

    config = _config(args)
    check_resume_config(args.workdir, config, "sft", args.allow_config_change)
    train(config, args.workdir)
    return 0


def _check_rl_split(config) -> None:
    """GRPO's prompts exist before anything loads: config.data.root's split is there and not
    empty (passk may have kept no question). A synthetic world made in WORKDIR/data later is
    not checked here."""
    from seeker_jax.data.records import count_records, split_path

    if not config.data.root:
        return
    path = split_path(config.data.root, config.data.split)
    if not path.is_file():
        raise UserError(f"grpo: {path} does not exist; set --config.data.split to a split of "
                        f"{config.data.root}/records (passk writes 'rl')")
    if count_records(path) == 0:
        raise UserError(f"grpo: split {config.data.split!r} ({path}) has no records, so there "
                        "are no prompts to train on; if passk wrote it, it kept no question "
                        "(see passk_<split>.json): rerun passk with a larger --k, a higher "
                        "--temperature or another checkpoint, or train on another split")


def _grpo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", required=True, type=writable_dir, help="checkpoints, "
                   "metrics.jsonl, tb/, reward.png, tools.png, config; rerunning the same "
                   "command resumes exactly from the latest checkpoint")
    _add_resume_arguments(p)
    _add_config(p, "configs/grpo.py:tiny_synth")


@command("grpo", "GRPO on tool episodes from an SFT checkpoint (resumable, exact)",
         _grpo_arguments,
         examples=["seeker-jax grpo --workdir runs/grpo --config configs/grpo.py:tiny_synth "
                   "--config.model.init_from=runs/sft",
                   "seeker-jax grpo --workdir runs/grpo8b --config configs/grpo.py:qwen3_vl_8b "
                   "--config.model.init_from=ckpt/sft8b --config.data.root=data/v2p "
                   "--config.data.split=rl"],
         outputs="WORKDIR/metrics.jsonl (reward and components, accuracy, tool use, KL, clip "
                 "fraction, entropy, times per step),\nWORKDIR/reward.png, WORKDIR/tools.png, "
                 "WORKDIR/tb/, WORKDIR/checkpoints/<step>/ (orbax), WORKDIR/config.json")
def _grpo(args: argparse.Namespace) -> int:
    from seeker_jax.rl.grpo import train
    from seeker_jax.training.run_config import check_resume_config

    config = _config(args)
    check_resume_config(args.workdir, config, "grpo", args.allow_config_change)
    _check_rl_split(config)
    train(config, args.workdir)
    return 0


def _passk_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", required=True, type=existing_dir,
                   help="the SFT checkpoint (a workdir, a manager root or a step folder)")
    p.add_argument("--data", required=True, type=existing_dir,
                   help="dataset root (records/<split>.array_record, videos, frames)")
    p.add_argument("--k", type=positive_int, default=8, help="samples per question")
    p.add_argument("--split", default="train", help="split to filter")
    p.add_argument("--out-split", default="rl", help="name of the split written")
    p.add_argument("--limit", type=positive_int, default=None, help="first N questions only")
    p.add_argument("--seed", type=non_negative_int, default=0)
    # the GRPO config the split is for: its rollout budgets (temperature, turns, tokens per turn
    # and per episode, row) are passk's, so a question is judged as GRPO will sample it
    _add_config(p, "configs/grpo.py:tiny_synth")


@command("passk", "pass@k filter: keep the questions an SFT model solves sometimes (the RL split)",
         _passk_arguments,
         examples=["seeker-jax passk --ckpt runs/sft --data runs/sft/data --k 8",
                   "seeker-jax passk --ckpt ckpt/sft8b --data data/v2p --k 8 "
                   "--config configs/grpo.py:paper_8b"],
         outputs="DATA/records/<out-split>.array_record (the kept records), "
                 "DATA/passk_<out-split>.json (funnel and per-question successes);\nstdout: "
                 "the funnel")
def _passk(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from seeker_jax.data.records import split_path

    if not split_path(args.data, args.split).is_file():
        raise UserError(f"passk: {split_path(args.data, args.split)} does not exist; give "
                        "--data a dataset root and --split one of its splits")
    if args.out_split == args.split:
        raise UserError(f"passk: --out-split {args.out_split!r} would overwrite the split it "
                        "filters; pick another name")
    from seeker_jax.configs.grpo import rollout_budgets
    from seeker_jax.eval.passk import build_rl_split

    funnel = build_rl_split(args.ckpt, args.data, args.k, args.split, args.out_split,
                            args.limit, seed=args.seed, **rollout_budgets(_config(args).rollout))
    print(f"passk k={args.k}: {funnel['questions']} questions -> {funnel['never_solved']} never "
          f"solved, {funnel['always_solved']} always solved -> {funnel['kept']} kept "
          f"(pass@1 {funnel['pass@1']:.3f}, pass@k {funnel['pass@k']:.3f}) in split "
          f"{args.out_split!r}")
    if funnel["kept"] == 0:
        print(f"warning: passk kept no question: each was solved in all {args.k} samples or in "
              f"none, so split {args.out_split!r} is empty and GRPO would have nothing to "
              "learn from; raise --k or --temperature, give more --max-new-tokens, or use a "
              "checkpoint that solves some of them", file=sys.stderr)
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
         examples=["seeker-jax demo  # about 5 minutes on 2 CPU cores",
                   "seeker-jax demo --workdir /tmp/demo --grpo-steps 0 --episodes 8"],
         outputs="WORKDIR/sft/ (data/, checkpoints/, metrics.jsonl, config.json), "
                 "WORKDIR/grpo/ (checkpoints/, metrics.jsonl, plots),\nWORKDIR/hf_export/ "
                 "(HF folder), WORKDIR/demo_summary.json; rerunning with the same WORKDIR "
                 "resumes SFT and GRPO")
def _demo(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from seeker_jax.cli.demo import run_demo

    run_demo(args.workdir, args.steps, args.episodes, args.grpo_steps)
    return 0


def _aot_arguments(p: argparse.ArgumentParser) -> None:
    _add_config(p, "configs/sft.py:qwen3_vl_8b")
    p.add_argument("--topology", required=True, help="TPU topology, e.g. v5p:2x2x1 (v5p-8), "
                   "v5p:2x2x4, v5e:2x2, v6e:4x4 (needs jax[tpu])")
    p.add_argument("--batch-per-chip", type=positive_int, default=1,
                   help="examples per data/fsdp shard")
    p.add_argument("--frames", type=positive_int, default=None,
                   help="video frames per example (even; default: the config's prompt video, "
                   "c.env.video.max_frames, with its per-frame pixel cap)")
    p.add_argument("--seq-len", type=positive_int, default=None, help="tokens per example "
                   "(default: the video's tokens + timestamps + --text-tokens, rounded up to 256)")
    p.add_argument("--text-tokens", type=positive_int, default=1024,
                   help="SFT: prompt, tool calls, answers; GRPO (configs/grpo.py): the prompt's "
                   "text, before c.rollout.max_new_tokens response tokens")
    p.add_argument("--decode", action="store_true", help="compile the sampler's decode step "
                   "instead (KV cache of --rows rows x c.rollout.max_len tokens) and say whether "
                   "it fits beside the learner's state")
    p.add_argument("--rows", type=positive_int, default=8, help="--decode: sampler rows")
    p.add_argument("--json", default=None, metavar="OUT", type=writable_file,
                   help="also save the figures here")


def _check_aot_arguments(args: argparse.Namespace) -> None:
    from seeker_jax.aot.fit import hbm_gib, tpu_compiler_available

    if args.frames is not None and args.frames % 2:
        raise UserError(f"--frames {args.frames}: give an even number (Qwen3-VL patches video "
                        "in 2-frame groups)")
    hbm_gib(args.topology)  # an unknown chip: AotError, a user error
    if not tpu_compiler_available():
        raise UserError("aot needs the TPU compiler: pip install '.[tpu]' (jax[tpu], libtpu) "
                        "into this environment")


@command("aot", "compile the SFT or GRPO step for a TPU topology on this CPU: will it fit? (exit 2 "
         "if not)",
         _aot_arguments,
         examples=["seeker-jax aot --config configs/sft.py:qwen3_vl_8b --topology v5p:2x2x1",
                   "seeker-jax aot --config configs/sft.py:qwen3_vl_4b --topology v6e:4x4 "
                   "--config.mesh.tensor=4 --json aot_4b_v6e.json",
                   "seeker-jax aot --config configs/grpo.py:qwen3_vl_8b --topology v5p:2x2x1",
                   "seeker-jax aot --decode --config configs/grpo.py:qwen3_vl_8b --topology "
                   "v5p:2x2x1 --rows 8"],
         outputs="stdout: per-chip memory (arguments, temporaries, code vs HBM), FITS / DOES NOT "
                 "FIT, FLOPs vs 6NT;\n--json OUT: the same figures as JSON. Exit 2 if it does "
                 "not fit (or on a usage error)")
def _aot(args: argparse.Namespace) -> int:
    from seeker_jax.aot.fit import run_aot
    from seeker_jax.rl.aot import compile_grpo_step, is_grpo_config

    config = _config(args)
    _check_aot_arguments(args)
    if args.decode:
        return _aot_decode(config, args)
    grpo = is_grpo_config(config)  # configs/grpo.py: the GRPO learner's update step
    print(f"aot: compiling the {'GRPO' if grpo else 'SFT'} step for {args.topology} with libtpu "
          "(minutes for real sizes); libtpu's warnings about TPU_ACCELERATOR_TYPE / "
          "TPU_WORKER_HOSTNAMES are harmless on a machine without TPUs", flush=True)
    return run_aot(config, args.topology, args.json, compile_grpo_step if grpo else None,
                   batch_per_chip=args.batch_per_chip, frames=args.frames,
                   seq_len=args.seq_len, text_tokens=args.text_tokens)


def _aot_decode(config, args: argparse.Namespace) -> int:
    import json

    from seeker_jax.aot.fit import AotError
    from seeker_jax.aot.decode import compile_decode_step, format_decode_report

    print(f"aot: compiling the sampler's decode step for {args.topology} with libtpu",
          flush=True)
    try:
        figures = compile_decode_step(config, args.topology, rows=args.rows)
    except AotError as e:
        raise UserError(str(e)) from e
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    print(format_decode_report(figures))
    return 0 if figures["fits"] else 2


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="ckpt:PATH (our checkpoint or workdir), "
                   "hf:PATH (a Hugging Face folder) or openai:URL#MODEL (any OpenAI-compatible "
                   "endpoint, e.g. openai:http://127.0.0.1:8000/v1#seeker)")
    p.add_argument("--data", required=True, type=existing_file, help="benchmark file: "
                   "V2P-Bench .jsonl, Video-MME .json, or our records (config.data_format)")
    p.add_argument("--video-root", default=None, type=existing_dir,
                   help="where video paths start (default: the data file's folder)")
    p.add_argument("--frame-root", default=None, type=existing_dir,
                   help="where visual-prompt frame paths start (default: the data file's folder)")
    p.add_argument("--workdir", required=True, type=writable_dir, help="results; rerunning "
                   "the same command skips the samples already done; another model, "
                   "protocol, data or config there is an error")
    p.add_argument("--overwrite", action="store_true", help="delete the results of another "
                   "run in --workdir and start afresh")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N samples")
    _add_config(p, "configs/eval.py:agentic")


@command("eval", "evaluate a model on V2P-Bench / Video-MME / our records (resumable)",
         _eval_arguments,
         examples=["seeker-jax eval --config configs/eval.py:v2p_official --model ckpt:runs/sft "
                   "--data v2p/V2P-Bench.jsonl --video-root v2p/videos --frame-root v2p/frames "
                   "--workdir runs/eval_v2p",
                   "seeker-jax eval --config configs/eval.py:videomme --model "
                   "openai:http://127.0.0.1:8000/v1#qwen3-vl --data videomme.json "
                   "--video-root videomme/videos --workdir runs/eval_mme"],
         outputs="WORKDIR/results.jsonl (one line per sample: the whole episode, prediction, "
                 "verdict),\nWORKDIR/summary.json, WORKDIR/summary.md (table), "
                 "WORKDIR/accuracy.png (bars with 95% CIs), WORKDIR/config.json")
def _eval(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from seeker_jax.eval.cli import run_eval_command

    summary = run_eval_command(_config(args), args.model, args.data, args.workdir,
                               args.video_root, args.frame_root, args.limit,
                               args.overwrite)
    o = summary["overall"]
    acc = "-" if o["accuracy"] is None else f"{100 * o['accuracy']:.1f}%"
    print(f"eval {summary['protocol']}: {o['correct']}/{o['n']} = {acc} ({o['unparsable']} "
          f"unparsable, {o['errors']} errors); {args.workdir}/summary.md")
    return 0


def _pipeline_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, help="the dataset to convert: a file (qa_jsonl, "
                   "llava_video, v2p) or a synthetic-world root (synth), per --config.reader")
    p.add_argument("--workdir", required=True, type=writable_dir, help="stage outputs, the "
                   "dataset, funnel.{json,md,png}; rerunning resumes (done samples are skipped)")
    p.add_argument("--ray-address", default=None, help="run the stages on Ray: 'auto' (an "
                   "existing cluster), 'local' (start one here), or an address")
    p.add_argument("--stop-after", default=None, help="stop after this stage (e.g. 2_verify)")
    _add_config(p, "configs/pipeline.py:default")


@command("pipeline", "the 4-stage synthesis: text filter, video verification, masks, render",
         _pipeline_arguments,
         examples=["seeker-jax pipeline --config configs/pipeline.py:default --input qa.jsonl "
                   "--workdir runs/pipe --config.api.model=http://127.0.0.1:8000/v1#qwen3-vl "
                   "--config.masks.model_dir=models/sam3",
                   "seeker-jax pipeline --config configs/pipeline.py:synth --input data/world "
                   "--workdir runs/pipe_synth --config.api.model=URL#MODEL --ray-address local"],
         outputs="WORKDIR/{1_text_filter,2_verify,3_masks,4_render}/ (log.jsonl, "
                 "out.array_record, rejected.jsonl, report.json),\nWORKDIR/dataset/ (records/"
                 "{train,val,test}.array_record + frames/), WORKDIR/funnel.{json,md,png}")
def _pipeline(args: argparse.Namespace) -> int:
    from seeker_jax.data.pipeline.run import STAGES, run_pipeline

    if args.stop_after is not None and args.stop_after not in STAGES:
        raise UserError(f"--stop-after {args.stop_after!r}: one of {', '.join(STAGES)}")
    use_ray = args.ray_address is not None
    if use_ray:
        import ray
        ray.init(address=None if args.ray_address == "local" else args.ray_address)
    funnel = run_pipeline(_config(args), args.input, args.workdir, use_ray=use_ray,
                          stop_after=args.stop_after, progress=True)
    print("pipeline: " + " -> ".join(str(c) for c in funnel["counts"]) +
          f" (funnel: {args.workdir}/funnel.md)")
    return 0


def _trajectories_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", required=True, help="openai:URL#MODEL of the teacher server")
    p.add_argument("--data", required=True, type=existing_dir, help="a dataset root (records/)")
    p.add_argument("--split", default="train")
    p.add_argument("--workdir", required=True, type=writable_dir)
    p.add_argument("--k", type=positive_int, default=1, help="accepted episodes per question")
    p.add_argument("--tries", type=positive_int, default=4, help="episodes tried per question")
    p.add_argument("--temperature", type=non_negative_float, default=0.7)
    p.add_argument("--max-concurrency", type=positive_int, default=8)
    _add_config(p, "configs/sft.py:tiny_synth")


@command("trajectories", "teacher rejection sampling through our env, over the OpenAI API",
         _trajectories_arguments,
         examples=["seeker-jax trajectories --teacher openai:http://127.0.0.1:8000/v1#teacher "
                   "--data runs/pipe/dataset --workdir runs/traj --config configs/sft.py:tiny_synth"],
         outputs="WORKDIR/sft/records/train.array_record (SFT reads it), WORKDIR/episodes.jsonl, "
                 "WORKDIR/acceptance.json\n(per dimension), WORKDIR/sft_sharegpt.json + "
                 "dataset_info.json (LLaMA-Factory)")
def _trajectories(args: argparse.Namespace) -> int:
    from seeker_jax.data.openai_api import ChatClient
    from seeker_jax.agents.teacher import run_trajectories
    from seeker_jax.env.config import EnvConfig
    from seeker_jax.models.tokenizer import tokenizer_from_config

    if not args.teacher.startswith("openai:"):
        raise UserError(f"--teacher {args.teacher!r}: expected openai:URL#MODEL")
    config = _config(args)
    try:
        client = ChatClient.from_spec(args.teacher.removeprefix("openai:"),
                                      max_concurrency=args.max_concurrency,
                                      cache_dir=f"{args.workdir}/api_cache")
    except ValueError as e:
        raise UserError(f"--teacher: {e}") from None
    env = EnvConfig.from_config(config.env)
    from seeker_jax.checkpointing import checkpoint as ckpt

    model_dir = ckpt.find_params(config.model.init_from).config_dir if config.model.init_from else None
    formatter = env.formatter(tokenizer_from_config(config.tokenizer, model_dir))
    out = run_trajectories(client, args.data, args.split, args.workdir, formatter,
                           env.episode_config(), k=args.k, tries=args.tries,
                           teacher_name=args.teacher, temperature=args.temperature)
    print(f"trajectories: {out['sft_records']} SFT records from {out['questions']} questions "
          f"({args.workdir}/acceptance.json)")
    return 0


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="ckpt:PATH (a seeker-jax checkpoint or workdir) or hf:PATH (HF folder)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=positive_int, default=8000, help="port to listen on")
    p.add_argument("--served-model-name", default=None,
                   help="the model id clients send (default: the folder's name)")
    p.add_argument("--batch-size", type=positive_int, default=8,
                   help="sampler rows: requests decoded at once (continuous batching)")
    p.add_argument("--max-len", type=positive_int, default=4096, help="tokens per row")
    p.add_argument("--allowed-media-root", default=None, type=existing_dir,
                   help="file:// images and videos are read only under this folder")
    p.add_argument("--max-images", type=positive_int, default=16,
                   help="images + videos per request")
    p.add_argument("--max-video-fps", type=float, default=2.0, help="ceiling on video fps")
    p.add_argument("--max-video-frames", type=positive_int, default=256,
                   help="ceiling on sampled video frames")
    p.add_argument("--max-video-seconds", type=float, default=3600.0,
                   help="longest video accepted")
    p.add_argument("--no-prefix-cache", action="store_true",
                   help="always prefill the whole conversation (for measurements)")
    p.add_argument("--shutdown-timeout", type=non_negative_float, default=10.0,
                   help="on SIGTERM, seconds to let requests in flight finish before they "
                        "end with an error (new requests get 503 meanwhile)")


@command("serve", "OpenAI-compatible chat server (tools, images, video) over our JAX model",
         _serve_arguments,
         examples=["seeker-jax serve --model ckpt:runs/sft --port 8000",
                   "seeker-jax serve --model hf:/models/Qwen3-VL-4B-Instruct "
                   "--allowed-media-root /data/videos"],
         outputs="HTTP on HOST:PORT: POST /v1/chat/completions, GET /v1/models, GET /health")
def _serve(args: argparse.Namespace) -> int:
    from seeker_jax.serve.loading import ServeConfig, build_service
    from seeker_jax.serve.media import MediaLimits
    from seeker_jax.serve.server import run

    limits = MediaLimits(allowed_root=args.allowed_media_root, max_images=args.max_images,
                         max_video_fps=args.max_video_fps, max_video_frames=args.max_video_frames,
                         max_video_seconds=args.max_video_seconds)
    config = ServeConfig(model_name=args.served_model_name, batch_size=args.batch_size,
                         max_len=args.max_len, prefix_cache=not args.no_prefix_cache,
                         limits=limits)
    service = build_service(args.model, config)
    print(f"serve: {service.model_name} on http://{args.host}:{args.port}/v1", flush=True)
    run(service, args.host, args.port, args.shutdown_timeout)
    # Every client has been answered and the server has stopped: skip the interpreter's
    # teardown of torch and XLA (seconds), so a SIGTERM'd server exits right after its drain.
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
