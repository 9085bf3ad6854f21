"""Does GRPO teach a tiny model where to look? Issue #34's run, stage by stage, on the seek world
(data/seek.py: only a crop of the right second shows the answer). The protocols (seeds, held-out
sets, iteration counts, metrics) are docs/results.md's "GRPO teaching tool use" sections, each
fixed before its runs; this script's constants are those protocols (PROTOCOLS: 2 changes only
the task world and the held-out seed).

  python bench/seek.py --workdir /tmp/seek                    # every stage, resumable
  python bench/seek.py --workdir /tmp/seek --only perceive    # one stage (see STAGES)
  python bench/seek.py --workdir /tmp/seek --protocol 2       # protocol 2: configs/synth.py:
                                                              # seek_fixed, stages in /tmp/seek/p2
  python bench/seek.py --workdir /tmp/seek --protocol 3       # protocol 3: protocol 2's SFT
                                                              # model, a smaller GRPO step

Stages (each skipped when its result file exists, so a re-run resumes):
  data        the perception world, the task world (train/val/test) and the held-out worlds
  perceive    the perception stage: SFT from random weights on the perception records
  perception  the base's perception accuracy on held-out videos (greedy; color and shape)
  sft         SFT from the base on the imperfect teacher's task trajectories
  probes      calibration on the task world's val split, by the SFT model's answer
              log-probabilities over the 6 colors: no tool, the oracle crop, the whole video
  before      the SFT model's greedy episodes on the held-out world (tools on; and one turn,
              the no-tool ablation's start)
  grpo        GRPO from the SFT model, one run per seed, then the held-out episodes again
  notool      the ablation: GRPO with one model turn per episode (no tool result is ever
              shown), the same budget, the protocol's first GRPO seed
  sampled     a diagnostic added after the results (it chooses nothing): the SFT model's
              episodes at T = 1 (GRPO's policy) on 64 train questions x 4, by the window of
              the last crop (the evidence second, the whole video, another window, none)
  tools_off   not the protocol, only with --protocol 3 --only tools_off: the no-tool ablation
              with 4 turns, every tool call answered with an error (TOOLS_OFF below)
  explore     not the protocol, only with --only explore: 300 more task SFT steps at peak lr
              5e-3, that model's T = 1 crops, then GRPO seed 1 from it (EXPLORE_* below)
  report      per-seed and pooled tables (paired 95% bootstrap intervals), curves (reward,
              accuracy, tIoU and tool calls per iteration) in WORKDIR/report.{json,md}, *.png
Run it on a quiet machine; it prints no timings to compare.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# ---- the protocol (docs/results.md); change it only before a new, separately recorded run ----
# Held-out seed 7, not 1000 (amendment 1, docs/results.md): the prompt names the video's path,
# and "seek1000_..." is 9 tokens longer than the training world's "seek0_..."; the tiny model
# had learned its template at fixed positions and wrote garbled calls on the seed-1000 world.
WORLD_SEED, HELD_OUT_SEED, PERCEIVE_HELD_OUT_SEED = 0, 7, 1002
PERCEIVE_RECORDS, TASK_RECORDS, HELD_OUT_RECORDS, PERCEIVE_HELD_OUT = 1200, 1200, 200, 96
# The perception stage in phases (workdir, steps, peak lr), each continuing the last: after
# 300 steps the base read colors at chance on perception seed 1001, so a second phase of 600
# was added, and the base is reported on perception seed 1002, a world not used to decide it.
# (workdir, data, steps, peak lr); the second phase reads a fresh perception world (seed 2).
PERCEIVE_PHASES = (("perceive", "perceive", 300, 5e-3), ("perceive2", "perceive_more", 600, 5e-3))
SFT_STEPS, SFT_LR = 300, 2e-3
SEEDS = (1, 2, 3)
GRPO_STEPS, GRPO_LR = 10, 1e-3
PROBE_RECORDS = 60
ROLLOUT = {"max_turns": 4, "max_new_tokens": 64, "max_len": 1024}
ENV = ("--config.env.video.min_frames=4", "--config.env.video.max_frames=4",
       "--config.env.crop.max_frames=4")                       # configs/env.py:seek
SFT_FLAGS = (*ENV, "--config.data.batch_size=4", "--config.data.buckets=(768, 1024)")
# 4 prompts x 8 a step (amendment 1): 8 x 8 took 136 s an iteration here, too long for 4 runs.
GRPO_FLAGS = (*ENV, "--config.rollout.prompts_per_step=4", "--config.rollout.n=8",
              "--config.rollout.minibatches=1", "--config.optimizer.accum_steps=1",
              "--config.loss.chunk=64",
              "--config.reward.temporal_iou=True", "--config.reward.weights.temporal_iou=0.0",
              *(f"--config.rollout.{k}={v}" for k, v in ROLLOUT.items()),
              "--config.rollout.buckets=(512, 1024)")
STAGES = ("data", "perceive", "perception", "sft", "probes", "before", "grpo", "notool",
          "report", "sampled")
# Protocol 2 (docs/results.md, "protocol 2"), fixed after protocol 1's negative result and
# before any of its own runs: the same perception base (WORKDIR/perceive2), teacher, budgets
# and GRPO settings, but every video flashes around the same second, k = 3
# (configs/synth.py:seek_fixed), and a fresh held-out world (seed 8; seed 7 was looked at in
# protocol 1). Its stages live in WORKDIR/p2 and run with --protocol 2; "sampled" (the SFT
# model's crops at T = 1 on train questions) is part of it and runs before GRPO.
# Protocol 3 (docs/results.md, "protocol 3"), fixed after protocol 2's collapses and before
# its own runs: protocol 2's task world and SFT model (read from WORKDIR/p2, not rebuilt),
# a guard on GRPO's step size (peak lr 5e-4 instead of 1e-3, reached after a 3-update linear
# warmup, for 20 iterations instead of 10), fresh GRPO seeds 7, 8, 9 and a fresh held-out
# world (seed 9). Its stages live in WORKDIR/p3.
PROTOCOLS = {1: {"sub": "", "preset": "seek", "held_out_seed": HELD_OUT_SEED},
             2: {"sub": "p2", "preset": "seek_fixed", "held_out_seed": 8},
             3: {"sub": "p3", "preset": "seek_fixed", "held_out_seed": 9, "reuse": "p2",
                 "seeds": (7, 8, 9), "grpo_steps": 20, "grpo_lr": 5e-4, "warmup": 3}}
# Not part of the protocol, and not run by default (--only explore): after the negative
# result, does a stronger SFT start help? 300 more task SFT steps at peak lr 5e-3 from the
# SFT model (sft_more), its T = 1 crops (sampled_more.json), then GRPO seed 1 from it with
# the protocol's settings, evaluated on the same held-out world (explore_s1.json).
EXPLORE_STEPS, EXPLORE_LR = 300, 5e-3
# Not part of protocol 3, and not run by default (--protocol 3 --only tools_off), fixed before
# it ran: the no-tool ablation with the same turns (4), not one. The prompt is the same, but
# every tool call is answered with an error (env/profiles.py: seeker_jax_tools_off), so the
# policy can still answer after a call and GRPO can learn what answering unseen earns.
# Protocol 3's settings and first seed; its start is the SFT model under the same profile.
TOOLS_OFF = "seeker_jax_tools_off"


def base(w: str) -> str:
    """The perception stage's result: its last phase's workdir."""
    return os.path.join(w, PERCEIVE_PHASES[-1][0])


def say(msg: str) -> None:
    print(f"[seek] {msg}", flush=True)


def _done(path: str) -> bool:
    return os.path.isfile(path)


def _dump(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def data_stage(w: str, t: str, protocol: int) -> None:
    """The perception worlds under `w`, the protocol's task worlds under `t`."""
    from seeker_jax.config import load_config
    from seeker_jax.data.synth import synthesize

    p = PROTOCOLS[protocol]
    worlds = [(w, "perceive", "seek_perceive", PERCEIVE_RECORDS, WORLD_SEED),
              (w, "perceive_more", "seek_perceive", 2400, 2),
              (w, "perceive_held_out", "seek_perceive", PERCEIVE_HELD_OUT,
               PERCEIVE_HELD_OUT_SEED),
              *(() if "reuse" in p else ((t, "task", p["preset"], TASK_RECORDS, WORLD_SEED),)),
              (t, "held_out", p["preset"], HELD_OUT_RECORDS, p["held_out_seed"])]
    if protocol == 1:
        worlds.append((t, "spent_held_out_1000", "seek", HELD_OUT_RECORDS, 1000))
    for where, name, preset, num, seed in worlds:
        root = os.path.join(where, "data", name)
        if not _done(os.path.join(root, "meta.json")):
            say(f"synthesizing {name}: {num} records of configs/synth.py:{preset}, seed {seed}")
            synthesize(root, num, seed, load_config(f"configs/synth.py:{preset}"))


def _records(w: str, name: str, splits=("train", "val", "test")) -> list[dict]:
    from seeker_jax.data.records import read_records

    root = os.path.join(w, "data", name)
    return [r for s in splits for r in read_records(root, s, resolve=False)]


def sft_run(w: str, name: str, data: str, steps: int, lr: float, init_from: str = "") -> None:
    from seeker_jax.config import load_config
    from seeker_jax.training.sft import train

    workdir = os.path.join(w, name)
    flags = [f"--config.data.root={os.path.join(w, 'data', data)}", f"--config.steps={steps}",
             f"--config.optimizer.total_steps={steps}", f"--config.optimizer.lr={lr}",
             "--config.optimizer.warmup_steps=20", f"--config.checkpoint_every={steps}",
             f"--config.eval_every={steps // 3}", *SFT_FLAGS]
    if init_from:
        flags.append(f"--config.model.init_from={init_from}")
    say(f"SFT {name}: {steps} steps at lr {lr} on {data}"
        + (f", from {init_from}" if init_from else ", from random weights"))
    train(load_config("configs/sft.py:demo", flags), workdir)


def episodes(ckpt: str, root: str, records: list[dict], budgets: dict,
             temperature: float = 0.0, seed: int = 0, profile: str = "") -> dict:
    """Episodes of checkpoint `ckpt` on `records`: per question correct (the GRPO reward's
    accuracy), reward, tool calls, the last crop's tIoU with the evidence window, answer.
    `profile` replaces the checkpoint's prompt profile (env/profiles.py)."""
    import dataclasses

    from seeker_jax.agents.policy import load_policy
    from seeker_jax.cli.demo import reward_scores, run_episodes
    from seeker_jax.rl.rewards import interval_iou
    from seeker_jax.rl.rewards.context import crop_windows

    t0 = time.perf_counter()
    policy = load_policy(f"ckpt:{ckpt}")
    if profile:
        policy = dataclasses.replace(policy, env=dataclasses.replace(policy.env,
                                                                     profile=profile))
    judged, _ = run_episodes(policy, root, records, batch_size=16,
                             budgets=budgets, temperature=temperature, seed=seed)
    scores = reward_scores(judged, records)
    out = {"correct": [], "reward": [], "tool_calls": [], "tiou": [], "answers": [],
           "answered": []}
    for j, s, r in zip(judged, scores, records):
        o = j.outcome
        good = [c for c in o.calls if not c.get("error")]
        crops = crop_windows(good)
        out["correct"].append(int(s["accuracy"] >= 1.0))
        out["reward"].append(round(float(s["reward"]), 4))
        out["tool_calls"].append(len(good))
        out["tiou"].append(round(interval_iou(crops[-1], r["evidence_window"]), 4)
                           if crops else 0.0)
        out["answers"].append(o.answer)
        out["answered"].append(int(o.answer is not None))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def summary(ep: dict) -> dict:
    return {"questions": len(ep["correct"]), "accuracy": float(np.mean(ep["correct"])),
            "reward": float(np.mean(ep["reward"])), "tiou": float(np.mean(ep["tiou"])),
            "tool_calls": float(np.mean(ep["tool_calls"])),
            "answered": float(np.mean(ep["answered"]))}


def perception_stage(w: str) -> dict:
    records = _records(w, "perceive_held_out")
    ep = episodes(base(w), os.path.join(w, "data", "perceive_held_out"),
                  records, ROLLOUT)
    color = shape = 0
    for a, r in zip(ep["answers"], records):
        words = (a or "").lower().split()
        color += int(bool(words) and words[0] == r["answer"])
        shape += int(len(words) > 1 and words[1] == r["shape"])
    out = {"questions": len(records), "color_accuracy": color / len(records),
           "shape_accuracy": shape / len(records), "answered": float(np.mean(ep["answered"])),
           "chance_color": 1 / 6, "chance_shape": 1 / 4}
    say(f"perception on {len(records)} held-out questions: color {out['color_accuracy']:.1%}, "
        f"shape {out['shape_accuracy']:.1%} (chance 16.7% / 25%)")
    return out


def learned_logprobs(policy, segs) -> list[tuple[np.ndarray, ...]]:
    """Per trajectory of `segs`: the positions that predict a learned token (loss mask), those
    tokens, the model's log-probability of each and its most likely token there. One batched
    forward; logits only at those positions (the model's own head on its last hidden states)."""
    from seeker_jax.data.batch import collate
    from seeker_jax.models.qwen3_vl import forward

    hidden = forward(policy.model, **collate(segs).model_inputs(),
                     compute_logits=False).last_hidden_state
    out = []
    for row, seg in enumerate(segs):
        ids, mask = np.asarray(seg.input_ids), np.asarray(seg.loss_mask) > 0
        at = np.nonzero(mask[1:])[0]                 # predicting token at + 1
        logits = np.asarray(policy.model.logits(hidden[row, at]), np.float64)
        logp = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        out.append((at, ids[at + 1], logp[np.arange(len(at)), ids[at + 1]],
                    logits.argmax(-1)))
    return out


def probes_stage(w: str) -> dict:
    """Accuracy of the SFT model's answer, the color of highest log-probability after forced
    turns: no tool, the oracle crop [k, k + 1], the whole video."""
    from seeker_jax.agents.policy import load_policy
    from seeker_jax.data.seek import answer_turn, crop_turn
    from seeker_jax.data.trajectories import build_trajectory
    from seeker_jax.data.world import COLOR_NAMES

    policy = load_policy(f"ckpt:{os.path.join(w, 'sft')}")
    root = os.path.join(w, "data", "task")
    records = _records(w, "task", ("val",))[:PROBE_RECORDS]
    formatter, cfg = policy.formatter(), policy.env.episode_config()

    def score(record, first_turns):
        """The color whose answer turn has the highest log-probability."""
        segs = [build_trajectory({**record, "teacher_turns": [*first_turns, answer_turn(c)]},
                                 formatter, root, cfg) for c in COLOR_NAMES]
        totals = [float(lp.sum()) for _, _, lp, _ in learned_logprobs(policy, segs)]
        return COLOR_NAMES[int(np.argmax(totals))]

    out = {}
    for cond, turns in (("no tool", lambda r: []),
                        ("oracle crop", lambda r: [crop_turn(*r["evidence_window"])]),
                        ("whole-video crop", lambda r: [crop_turn(0.0, r["duration"])])):
        said = [score(r, turns(r)) for r in records]
        out[cond] = {"accuracy": float(np.mean([s == r["answer"] for s, r in zip(said, records)])),
                     "says_base_color": float(np.mean([s == r["base_color"]
                                                       for s, r in zip(said, records)]))}
        say(f"probe {cond:<17} accuracy {out[cond]['accuracy']:.1%} "
            f"(names the base color {out[cond]['says_base_color']:.1%}) on {len(records)}")
    out["questions"], out["chance"] = len(records), 1 / 5
    return out


def crop_kind(tiou: float, calls: int) -> str:
    """The last crop, from its tIoU with the evidence second: the seek world's windows are
    whole seconds (tIoU 1), the whole 8 s video (1/8) or a missing second (0)."""
    if not calls:
        return "no tool"
    return {1.0: "evidence second", 0.125: "whole video"}.get(round(tiou, 3), "another window")


def sampled_stage(w: str, sft: str = "sft") -> dict:
    records = [r for r in _records(w, "task", ("train",))[:64] for _ in range(4)]
    ep = episodes(os.path.join(w, sft), os.path.join(w, "data", "task"), records, ROLLOUT,
                  temperature=1.0, seed=11)
    groups: dict[str, list[int]] = {}
    for c, t, n in zip(ep["correct"], ep["tiou"], ep["tool_calls"]):
        groups.setdefault(crop_kind(t, n), []).append(c)
    out = {k: {"share": len(v) / len(records), "accuracy": float(np.mean(v))}
           for k, v in sorted(groups.items(), key=lambda kv: -len(kv[1]))}
    for k, v in out.items():
        say(f"sampled at T = 1: {k:<16} {v['share']:6.1%} of episodes, accuracy "
            f"{v['accuracy']:.1%}")
    return out


def grpo_settings(w: str, seed: int, extra=(), sft: str = "sft", src: str = "",
                  protocol: int = 1):
    """The GRPO config of a protocol's run: from `src`/`sft` on `src`'s task world (`src`
    defaults to `w`), with the protocol's iterations, peak lr and warmup."""
    from seeker_jax.cli.demo import grpo_config

    p, src = PROTOCOLS[protocol], src or w
    steps, lr = p.get("grpo_steps", GRPO_STEPS), p.get("grpo_lr", GRPO_LR)
    return grpo_config(os.path.join(src, sft), os.path.join(src, "data", "task"), steps,
                       [*GRPO_FLAGS, f"--config.optimizer.lr={lr}",
                        f"--config.optimizer.warmup_steps={p.get('warmup', 0)}",
                        f"--config.seed={seed}", *extra])


def grpo_run(w: str, name: str, seed: int, extra=(), sft: str = "sft", src: str = "",
             protocol: int = 1) -> None:
    """GRPO (grpo_settings) into `w`/`name`."""
    from seeker_jax.rl.grpo import train

    config = grpo_settings(w, seed, extra, sft, src, protocol)
    o = config.optimizer
    say(f"GRPO {name}: seed {seed}, {config.steps} iterations of 4 prompts x 8 at peak lr "
        f"{o.lr}" + (f" after {o.warmup_steps} warmup updates" if o.warmup_steps else ""))
    train(config, os.path.join(w, name))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--protocol", type=int, choices=sorted(PROTOCOLS), default=1,
                   help="1: the first run (docs/results.md); 2: one flash second for every "
                        "video (configs/synth.py:seek_fixed), its stages under WORKDIR/p2; "
                        "3: protocol 2's SFT model (its stages run first where missing), GRPO "
                        "with a guarded step, under WORKDIR/p3")
    p.add_argument("--only", choices=(*STAGES, "explore", "tools_off"), action="append",
                   help="run only these stages")
    p.add_argument("--seeds", type=int, nargs="+",
                   help="GRPO seeds (default: the protocol's, 1 2 3 or 7 8 9 for protocol 3; "
                        "others are runs beyond the protocol, reported apart in "
                        "WORKDIR/report_seeds_*)")
    args = p.parse_args(argv)
    w, protocol = args.workdir, args.protocol
    proto_seeds = PROTOCOLS[protocol].get("seeds", SEEDS)
    seeds = tuple(args.seeds or proto_seeds)
    t = os.path.join(w, PROTOCOLS[protocol]["sub"])    # the protocol's task stages
    # where its task world and SFT model live (protocol 3 reuses protocol 2's)
    src = os.path.join(w, PROTOCOLS[protocol].get("reuse", PROTOCOLS[protocol]["sub"]))
    reused = src != t
    os.makedirs(t, exist_ok=True)
    stages = args.only or STAGES
    if "explore" in stages and protocol != 1:
        p.error("--only explore belongs to protocol 1")
    held_root = os.path.join(t, "data", "held_out")
    one_turn = {**ROLLOUT, "max_turns": 1}
    if "data" in stages:
        data_stage(w, t, protocol)
    previous = ""
    for name, data, steps, lr in PERCEIVE_PHASES:
        if "perceive" in stages and not _done(os.path.join(w, name, "done")):
            sft_run(w, name, data, steps, lr, init_from=previous)
            open(os.path.join(w, name, "done"), "w").close()
        previous = os.path.join(w, name)
    if "perception" in stages and not _done(os.path.join(w, "perception.json")):
        _dump(os.path.join(w, "perception.json"), perception_stage(w))
    if reused and not _done(os.path.join(src, "sft", "done")):
        first = int(PROTOCOLS[protocol]["reuse"][1:])
        say(f"protocol {protocol} starts from protocol {first}'s SFT model, not in {src}: "
            f"running protocol {first}'s data, perceive and sft stages first")
        main(["--workdir", w, "--protocol", str(first),
              *(a for s in ("data", "perceive", "sft") for a in ("--only", s))])
    if "sft" in stages and not reused and not _done(os.path.join(t, "sft", "done")):
        sft_run(t, "sft", "task", SFT_STEPS, SFT_LR, init_from=base(w))
        open(os.path.join(t, "sft", "done"), "w").close()
    if protocol == 2 and "sampled" in stages and not _done(os.path.join(t, "sampled.json")):
        _dump(os.path.join(t, "sampled.json"), sampled_stage(t))
    if "probes" in stages and not reused and not _done(os.path.join(t, "probes.json")):
        _dump(os.path.join(t, "probes.json"), probes_stage(t))
    held = _records(t, "held_out") if os.path.isdir(held_root) else []
    if "before" in stages and not _done(os.path.join(t, "before.json")):
        sft = os.path.join(src, "sft")
        out = {"tools": episodes(sft, held_root, held, ROLLOUT),
               "one_turn": episodes(sft, held_root, held, one_turn)}
        say(f"SFT model, held-out: {summary(out['tools'])}; one turn: "
            f"{summary(out['one_turn'])}")
        _dump(os.path.join(t, "before.json"), out)
    for name, seed, extra, budgets in (
            *((f"grpo_s{s}", s, (), ROLLOUT) for s in seeds if "grpo" in stages),
            *((("notool", proto_seeds[0], ("--config.rollout.max_turns=1",), one_turn),)
              if "notool" in stages else ())):
        result = os.path.join(t, f"{name}.json")
        if _done(result):
            continue
        if not _done(os.path.join(t, name, "done")):
            grpo_run(t, name, seed, extra, src=src, protocol=protocol)
            open(os.path.join(t, name, "done"), "w").close()
        ep = episodes(os.path.join(t, name), held_root, held, budgets)
        say(f"{name}, held-out: {summary(ep)}")
        _dump(result, ep)
    if protocol == 1 and "sampled" in stages and not _done(os.path.join(w, "sampled.json")):
        _dump(os.path.join(w, "sampled.json"), sampled_stage(w))
    if "explore" in stages and not _done(os.path.join(w, "explore_s1.json")):
        explore_stage(w, held_root, held)
    if "tools_off" in stages:
        if protocol != 3:
            p.error("--only tools_off belongs to protocol 3")
        tools_off_stage(t, src, held_root, held, proto_seeds[0])
    if "report" in stages:
        from seek_report import report, report_name
        report(t, seeds, report_name(seeds, proto_seeds))
    return 0


def tools_off_stage(t: str, src: str, held_root: str, held: list[dict], seed: int) -> None:
    """Beyond protocol 3 (TOOLS_OFF above): the ablation with the tools answering errors."""
    before_path = os.path.join(t, "before.json")
    before = json.load(open(before_path))
    if "tools_off" not in before:
        before["tools_off"] = episodes(os.path.join(src, "sft"), held_root, held, ROLLOUT,
                                       profile=TOOLS_OFF)
        say(f"SFT model with {TOOLS_OFF}, held-out: {summary(before['tools_off'])}")
        _dump(before_path, before)
    if not _done(os.path.join(t, "tools_off", "done")):
        grpo_run(t, "tools_off", seed, (f"--config.env.profile={TOOLS_OFF}",), src=src,
                 protocol=3)
        open(os.path.join(t, "tools_off", "done"), "w").close()
    if not _done(os.path.join(t, "tools_off.json")):
        ep = episodes(os.path.join(t, "tools_off"), held_root, held, ROLLOUT)  # its own env
        say(f"tools_off, held-out: {summary(ep)}")
        _dump(os.path.join(t, "tools_off.json"), ep)


def explore_stage(w: str, held_root: str, held: list[dict]) -> None:
    """Protocol 1's exploration (EXPLORE_* above)."""
    if not _done(os.path.join(w, "sft_more", "done")):
        sft_run(w, "sft_more", "task", EXPLORE_STEPS, EXPLORE_LR,
                init_from=os.path.join(w, "sft"))
        open(os.path.join(w, "sft_more", "done"), "w").close()
    if not _done(os.path.join(w, "sampled_more.json")):
        _dump(os.path.join(w, "sampled_more.json"), sampled_stage(w, "sft_more"))
    if not _done(os.path.join(w, "before_more.json")):
        ep = episodes(os.path.join(w, "sft_more"), held_root, held, ROLLOUT)
        say(f"sft_more, held-out: {summary(ep)}")
        _dump(os.path.join(w, "before_more.json"), ep)
    if not _done(os.path.join(w, "explore_s1", "done")):
        grpo_run(w, "explore_s1", SEEDS[0], sft="sft_more")
        open(os.path.join(w, "explore_s1", "done"), "w").close()
    ep = episodes(os.path.join(w, "explore_s1"), held_root, held, ROLLOUT)
    say(f"explore_s1, held-out: {summary(ep)}")
    _dump(os.path.join(w, "explore_s1.json"), ep)


if __name__ == "__main__":
    sys.exit(main())
