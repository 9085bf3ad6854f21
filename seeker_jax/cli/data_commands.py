"""`seeker-jax` data commands: synth, tool, pipeline, trajectories, data (import, show)."""
from __future__ import annotations

import argparse
import sys

from seeker_jax.cli.args import (existing_dir, existing_file, non_negative_float, non_negative_int,
                                 positive_int, writable_dir)
from seeker_jax.cli.common import add_config, command, resolved_config
from seeker_jax.errors import UserError


def _synth_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=writable_dir, help="dataset root to write")
    p.add_argument("--num", type=positive_int, required=True, help="number of records (questions)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--workers", type=positive_int, default=1, help="processes making videos")
    add_config(p, "configs/synth.py:default")


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

    meta = synthesize(args.out, args.num, args.seed, resolved_config(args), workers=args.workers)
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


def _pipeline_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, help="the dataset to convert: a file (qa_jsonl, "
                   "llava_video, v2p) or a synthetic-world root (synth), per --config.reader")
    p.add_argument("--workdir", required=True, type=writable_dir, help="stage outputs, the "
                   "dataset, funnel.{json,md,png}; rerunning resumes (done samples are skipped)")
    p.add_argument("--ray-address", default=None, help="run the stages on Ray: 'auto' (an "
                   "existing cluster), 'local' (start one here), or an address")
    p.add_argument("--stop-after", default=None, help="stop after this stage (e.g. 2_verify)")
    add_config(p, "configs/pipeline.py:default")


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
    funnel = run_pipeline(resolved_config(args), args.input, args.workdir, use_ray=use_ray,
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
    add_config(p, "configs/sft.py:tiny_synth")


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
    config = resolved_config(args)
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


_IMPORT_EXAMPLES = [
    "seeker-jax data import my_records.jsonl --out data/mine --val-fraction 0.1 "
    "--test-fraction 0.1",
    "seeker-jax data import v2p/data/V2P-Bench.jsonl --root v2p/videos --frame-root "
    "v2p/frames --out data/v2p --split test --link",
    "seeker-jax data import runs/traj/sft_sharegpt.json --root runs/pipe/dataset --out "
    "data/sft --format sharegpt",
]
_IMPORT_OUTPUTS = ("OUT/records/<split>.array_record (what sft, grpo, eval and passk read), "
                   "OUT/videos/, OUT/frames/\n(copied, or linked with --link; files already "
                   "under OUT stay), OUT/import.json (counts, skipped records)")
_SHOW_EXAMPLES = ["seeker-jax data show data/mine --split train --index 0",
                  "seeker-jax data show data/mine --config configs/sft.py:qwen3_vl_4b "
                  "--config.model.init_from=runs/convert/4b"]
_SHOW_OUTPUTS = ("stdout: the record (JSON), then its SFT training sequence as text: tool turns "
                 "included, vision\ntokens as <|video_pad|>xN, tokens that carry the loss "
                 "inside [[ ]]; token, loss and bucket counts")


def _subcommand(sub, name: str, help: str, examples: list[str], outputs: str):
    """A `seeker-jax data NAME` parser with its own examples and outputs in --help."""
    epilog = "\n".join(["examples:", *(f"  {e}" for e in examples), "", "outputs:",
                        *(f"  {line}" for line in outputs.splitlines())])
    p = sub.add_parser(name, help=help, description=help, epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the Python traceback for user errors too")
    return p


def _fraction(text: str) -> float:
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not below 1")
    return value


def _data_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", required=True, metavar="{import,show}")
    imp = _subcommand(sub, "import", "check records and write them as a dataset root that "
                      "sft, grpo and eval read (docs/data.md)", _IMPORT_EXAMPLES, _IMPORT_OUTPUTS)
    imp.add_argument("input", type=existing_file,
                     help=".jsonl / .json (our records, V2P-Bench, generic QA, LLaVA-Video, "
                     "ShareGPT) or .parquet (verl)")
    imp.add_argument("--out", required=True, type=writable_dir, help="dataset root to write")
    imp.add_argument("--format", default="auto",
                     help="auto (told from the file), records, v2p (the same format), qa_jsonl, "
                     "llava_video, sharegpt or verl (seeker_jax/data/importing.py)")
    imp.add_argument("--root", default=None, type=existing_dir,
                     help="where the input's relative paths start (default: its folder)")
    imp.add_argument("--frame-root", default=None, type=existing_dir,
                     help="where relative frame paths start (default: --root)")
    imp.add_argument("--split", default="train",
                     help="the split the records go to (those not sent to val/test by the "
                     "fractions); default train")
    imp.add_argument("--val-fraction", type=_fraction, default=0.0,
                     help="share of videos (all their questions) sent to val, by a hash of "
                     "video_id")
    imp.add_argument("--test-fraction", type=_fraction, default=0.0,
                     help="share of videos sent to test, likewise")
    imp.add_argument("--link", action="store_true",
                     help="symlink videos and frames instead of copying them")
    imp.add_argument("--overwrite", action="store_true", help="replace existing split files")
    imp.add_argument("--skip-invalid", action="store_true",
                     help="leave bad records out (counted in import.json) instead of stopping")
    show = _subcommand(sub, "show", "print one record and the exact SFT training sequence it "
                       "becomes (which tokens carry the loss)", _SHOW_EXAMPLES, _SHOW_OUTPUTS)
    show.add_argument("root", type=existing_dir, help="a dataset root (ROOT/records/)")
    show.add_argument("--split", default="train")
    show.add_argument("--index", type=non_negative_int, default=0, help="which record")
    add_config(show, "configs/sft.py:tiny_synth")


@command("data", "import your own records as a dataset, and show what SFT trains on",
         _data_arguments, examples=[_IMPORT_EXAMPLES[0], _SHOW_EXAMPLES[0]],
         outputs=f"import: {_IMPORT_OUTPUTS}\nshow: {_SHOW_OUTPUTS}")
def _data(args: argparse.Namespace) -> int:
    return _data_import(args) if args.data_command == "import" else _data_show(args)


def _data_import(args: argparse.Namespace) -> int:
    from seeker_jax.data.importing import import_records

    summary = import_records(args.input, args.out, fmt=args.format, root=args.root,
                             frame_root=args.frame_root, split=args.split,
                             val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                             link=args.link, overwrite=args.overwrite,
                             skip_invalid=args.skip_invalid)
    counts = ", ".join(f"{split} {n}" for split, n in summary["splits"].items())
    print(f"data import: {sum(summary['splits'].values())} record(s) ({summary['format']}) into "
          f"{args.out} ({counts}; assets {summary['assets']})")
    if summary["skipped"]:
        print(f"warning: data import: skipped {len(summary['skipped'])} bad record(s), first: "
              f"{summary['skipped'][0]} (all in {args.out}/import.json)", file=sys.stderr)
    for note in summary["notes"]:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _data_show(args: argparse.Namespace) -> int:
    import json

    from seeker_jax.data.show import LOSS_CLOSE, LOSS_OPEN, show_record

    config = resolved_config(args)
    model_dir = None
    if config.model.init_from:
        from seeker_jax.checkpointing.checkpoint import find_params

        model_dir = find_params(config.model.init_from).config_dir
    try:
        shown = show_record(args.root, args.split, args.index, config, model_dir)
    except IndexError as e:
        raise UserError(str(e)) from None
    print(f"record {args.index} of {args.root}/records/{args.split}.array_record:")
    print(json.dumps(shown.record, indent=2, ensure_ascii=False))
    if shown.text is not None:
        print(f"\nSFT sequence ({shown.tokens} tokens, {shown.loss_tokens} carry the loss, "
              f"inside {LOSS_OPEN} {LOSS_CLOSE}; bucket {shown.bucket}):")
        print(shown.text)
    if shown.dropped:
        print(f"\n{shown.dropped}")
    return 0
