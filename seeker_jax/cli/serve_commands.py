"""`seeker-jax` evaluation and serving commands: eval, serve."""
from __future__ import annotations

import argparse
import os
import sys

from seeker_jax.cli.args import (existing_dir, existing_file, non_negative_float, positive_int, writable_dir)
from seeker_jax.cli.common import add_config, command, resolved_config


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="ckpt:PATH (our checkpoint or workdir), "
                   "hf:PATH (a Hugging Face folder) or openai:URL#MODEL (any OpenAI-compatible "
                   "endpoint, e.g. openai:http://127.0.0.1:8000/v1#seeker)")
    p.add_argument("--data", required=True, type=existing_file, help="benchmark file: "
                   "V2P-Bench .jsonl, Video-MME .json (--config.data_format=videomme), or our "
                   "records (.jsonl or ROOT/records/SPLIT.array_record; without frame_path or "
                   "dimension: --config.data_format=synthetic; docs/data.md)")
    p.add_argument("--video-root", default=None, type=existing_dir,
                   help="where video paths start (default: the data file's folder; "
                   "ROOT for ROOT/records/SPLIT.array_record)")
    p.add_argument("--frame-root", default=None, type=existing_dir,
                   help="where visual-prompt frame paths start (default: the data file's "
                   "folder; ROOT for ROOT/records/SPLIT.array_record)")
    p.add_argument("--workdir", required=True, type=writable_dir, help="results; rerunning "
                   "the same command skips the samples already done; another model, "
                   "protocol, data or config there is an error")
    p.add_argument("--overwrite", action="store_true", help="delete the results of another "
                   "run in --workdir and start afresh")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N samples")
    add_config(p, "configs/eval.py:agentic")


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
                 "WORKDIR/accuracy.png (bars with 95% CIs),\nWORKDIR/episodes.html (every "
                 "episode with its frames, filters; open it in a browser), WORKDIR/config.json")
def _eval(args: argparse.Namespace) -> int:

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from seeker_jax.eval.cli import run_eval_command

    summary = run_eval_command(resolved_config(args), args.model, args.data, args.workdir,
                               args.video_root, args.frame_root, args.limit,
                               args.overwrite)
    o = summary["overall"]
    acc = "-" if o["accuracy"] is None else f"{100 * o['accuracy']:.1f}%"
    print(f"eval {summary['protocol']}: {o['correct']}/{o['n']} = {acc} ({o['unparsable']} "
          f"unparsable, {o['errors']} errors); {args.workdir}/summary.md")
    page = os.path.join(args.workdir, "episodes.html")
    if os.path.isfile(page):
        print(f"episodes: open {page} in a browser")
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

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
