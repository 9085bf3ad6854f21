"""`seeker-jax` training commands: sft, grpo, passk, demo."""
from __future__ import annotations

import argparse
import os
import sys

from seeker_jax.cli.args import (existing_dir, non_negative_int,
                                 positive_int, writable_dir)
from seeker_jax.cli.common import add_config, command, resolved_config
from seeker_jax.errors import UserError


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
    add_config(p, "configs/sft.py:tiny_synth")


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

    config = resolved_config(args)
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
                        "--config.rollout.temperature or another checkpoint, or train on "
                        "the unfiltered split (--config.data.split=train)")


def _grpo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", required=True, type=writable_dir, help="checkpoints, "
                   "metrics.jsonl, tb/, reward.png, tools.png, config; rerunning the same "
                   "command resumes exactly from the latest checkpoint")
    _add_resume_arguments(p)
    add_config(p, "configs/grpo.py:tiny_synth")


@command("grpo", "GRPO on tool episodes from an SFT checkpoint (resumable, exact)",
         _grpo_arguments,
         examples=["seeker-jax grpo --workdir runs/grpo --config configs/grpo.py:tiny_synth "
                   "--config.model.init_from=runs/sft",
                   "seeker-jax grpo --workdir runs/grpo8b --config configs/grpo.py:qwen3_vl_8b "
                   "--config.model.init_from=ckpt/sft8b --config.data.root=data/v2p "
                   "--config.data.split=rl"],
         outputs="WORKDIR/metrics.jsonl (reward and components, accuracy, tool use, KL, clip "
                 "fraction, entropy, times per step),\nWORKDIR/reward.png, WORKDIR/tools.png, "
                 "WORKDIR/tb/ (sampled episodes as text too),\nWORKDIR/episodes/iteration_<N>"
                 ".html (a few sampled episodes), WORKDIR/checkpoints/<step>/ (orbax), "
                 "WORKDIR/config.json")
def _grpo(args: argparse.Namespace) -> int:
    from seeker_jax.rl.grpo import train
    from seeker_jax.training.run_config import check_resume_config

    config = resolved_config(args)
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
    add_config(p, "configs/grpo.py:tiny_synth")


@command("passk", "pass@k filter: keep the questions an SFT model solves sometimes (the RL split)",
         _passk_arguments,
         examples=["seeker-jax passk --ckpt runs/sft --data runs/sft/data --k 8",
                   "seeker-jax passk --ckpt ckpt/sft8b --data data/v2p --k 8 "
                   "--config configs/grpo.py:paper_8b"],
         outputs="DATA/records/<out-split>.array_record (the kept records), "
                 "DATA/passk_<out-split>.json (funnel and per-question successes);\nstdout: "
                 "the funnel")
def _passk(args: argparse.Namespace) -> int:

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
                            args.limit, seed=args.seed,
                            **rollout_budgets(resolved_config(args).rollout))
    print(f"passk k={args.k}: {funnel['questions']} questions -> {funnel['never_solved']} never "
          f"solved, {funnel['always_solved']} always solved -> {funnel['kept']} kept "
          f"(pass@1 {funnel['pass@1']:.3f}, pass@k {funnel['pass@k']:.3f}) in split "
          f"{args.out_split!r}")
    if funnel["kept"] == 0:
        print(f"warning: passk kept no question: each was solved in all {args.k} samples or in "
              f"none, so split {args.out_split!r} is empty and GRPO would have nothing to "
              "learn from; raise --k or --config.rollout.temperature, give more "
              "--config.rollout.max_new_tokens, use a checkpoint that solves some of them, "
              "or run grpo on the unfiltered split (--config.data.split=train)",
              file=sys.stderr)
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
         examples=["seeker-jax demo  # about 8 minutes on 2 CPU cores",
                   "seeker-jax demo --workdir /tmp/demo --grpo-steps 0 --episodes 8"],
         outputs="WORKDIR/sft/ (data/, checkpoints/, metrics.jsonl, config.json), "
                 "WORKDIR/grpo/ (checkpoints/, metrics.jsonl, plots),\nWORKDIR/hf_export/ "
                 "(HF folder), WORKDIR/demo_summary.json; rerunning with the same WORKDIR "
                 "resumes SFT and GRPO")
def _demo(args: argparse.Namespace) -> int:

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from seeker_jax.cli.demo import run_demo

    run_demo(args.workdir, args.steps, args.episodes, args.grpo_steps)
    return 0
