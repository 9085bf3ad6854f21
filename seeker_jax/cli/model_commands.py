"""`seeker-jax` checkpoint and compile commands: convert, export, parity, aot."""
from __future__ import annotations

import argparse
import os

from seeker_jax.cli.args import (existing_dir, non_negative_float, non_negative_int,
                                 positive_int, writable_dir, writable_file)
from seeker_jax.cli.common import add_config, command, resolved_config
from seeker_jax.errors import UserError


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

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from seeker_jax.checkpointing.parity import run_parity

    errors = run_parity(args.hf_dir, args.tol, args.seed)
    return 0 if max(errors.values()) <= args.tol else 1


def _aot_arguments(p: argparse.ArgumentParser) -> None:
    add_config(p, "configs/sft.py:qwen3_vl_8b")
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
    p.add_argument("--memory-only", action="store_true", help="skip the per-layer cost probes "
                   "of a scanned step: memory and fit only, no FLOPs or projection (faster)")
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

    config = resolved_config(args)
    _check_aot_arguments(args)
    if args.decode:
        return _aot_decode(config, args)
    grpo = is_grpo_config(config)  # configs/grpo.py: the GRPO learner's update step
    print(f"aot: compiling the {'GRPO' if grpo else 'SFT'} step for {args.topology} with libtpu "
          "(minutes for real sizes); libtpu's warnings about TPU_ACCELERATOR_TYPE / "
          "TPU_WORKER_HOSTNAMES are harmless on a machine without TPUs", flush=True)
    return run_aot(config, args.topology, args.json, compile_grpo_step if grpo else None,
                   batch_per_chip=args.batch_per_chip, frames=args.frames,
                   seq_len=args.seq_len, text_tokens=args.text_tokens,
                   cost=not args.memory_only)


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
