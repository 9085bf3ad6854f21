"""Does the demo's recipe work? SFT (configs/sft.py:demo), then what the SFT model does on
held-out questions, then (optionally) GRPO and the same questions again.

Prints, for the SFT model:
  - teacher-forced next-token accuracy on val trajectories, split by what the token is (the
    think text, the tool-call JSON, the numbers, the answer): where a recipe fails, this says
    which part the model has not learned;
  - greedy episodes on the held-out test split: answered rate (the demo needs >= 90%),
    accuracy, reward, tool calls per episode, why episodes ended, one failing episode;
and with --grpo-steps > 0 the before/after table and the paired 95% bootstrap interval of the
accuracy gain (the "it learns" claim: the interval's low end above 0), and the accuracy of
each run split by the questions' true answers.

  python bench/demo_recipe.py --workdir /tmp/recipe               # the demo's recipe
  python bench/demo_recipe.py --workdir /tmp/recipe --grpo-steps 12
  python bench/demo_recipe.py --workdir /tmp/long --preset long   # >= 200 questions; ~55 min
  python bench/demo_recipe.py --workdir /tmp/tools --preset tools # the crop decides the answer
  python bench/demo_recipe.py --workdir /tmp/guess --preset guess --sft=--config.model.init_from=/tmp/long/sft
  python bench/demo_recipe.py --workdir /tmp/confuse --preset confuse \
      --sft=--config.model.init_from=/tmp/long/sft

Re-running with the same workdir resumes (SFT and GRPO checkpoints); results go to
WORKDIR/recipe.json. Run it on a quiet machine: it prints no timings you should compare.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import defaultdict

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def token_kind(prefix: str) -> str:
    """What the next assistant token belongs to, from the turn text before it."""
    last = max(prefix.rfind(tag) for tag in ("<think>", "<tool_call>", "<answer>", "</think>",
                                             "</tool_call>", "</answer>"))
    tail = prefix[last:] if last >= 0 else prefix
    if tail.startswith("<think>"):
        return "think"
    if tail.startswith("<tool_call>"):
        return "tool_number" if re.search(r'_time": [\d.]*$', tail) else "tool_json"
    if tail.startswith("<answer>"):
        return "answer"
    return "structure"   # tags, newlines, <|im_end|> between the parts


def teacher_forced(ckpt_dir: str, root: str, split: str = "val", limit: int = 16) -> dict:
    """Next-token argmax accuracy of the checkpoint on teacher trajectories, per token kind."""
    from seeker_jax.agents.policy import load_policy
    from seeker_jax.data.batch import collate
    from seeker_jax.data.records import read_records
    from seeker_jax.data.trajectories import build_trajectory
    from seeker_jax.models.qwen3_vl import forward

    policy = load_policy(f"ckpt:{ckpt_dir}")
    env, tok, model, formatter = policy.env, policy.tokenizer, policy.model, policy.formatter()
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for record in read_records(root, split, resolve=False)[:limit]:
        seg = build_trajectory(record, formatter, root, env.episode_config())
        logits = np.asarray(forward(model, **collate([seg]).model_inputs()).logits)[0]
        ids, learned = np.asarray(seg.input_ids), np.asarray(seg.loss_mask) > 0
        pred = logits[:-1].argmax(-1)
        start = None
        for t in range(1, len(ids)):
            if not learned[t]:
                start = None
                continue
            start = t if start is None else start
            kind = token_kind(tok.decode(ids[start:t], skip_special_tokens=False))
            hits[kind][0] += int(pred[t - 1] == ids[t])
            hits[kind][1] += 1
    return {k: {"accuracy": h[0] / h[1], "tokens": h[1]} for k, h in sorted(hits.items())}


def sampled_by_tools(ckpt_dir: str, root: str, questions: int, samples: int = 4,
                     seed: int = 3) -> dict:
    """What GRPO's reward will see: `samples` episodes at T = 1 (the policy GRPO samples) on
    each of the first `questions` train questions, grouped by which tools the episode called
    and whether a call failed, with each group's share, accuracy, format and reward. Where
    calling a tool earns less than not calling it, GRPO will learn to stop calling it."""
    from seeker_jax.agents.policy import load_policy
    from seeker_jax.cli.demo import reward_scores, run_episodes
    from seeker_jax.data.records import read_records

    records = read_records(root, "train", resolve=False)[:questions]
    records = [r for r in records for _ in range(samples)]
    judged, _ = run_episodes(load_policy(f"ckpt:{ckpt_dir}"), root, records, temperature=1.0,
                             seed=seed, batch_size=16)
    scores = reward_scores(judged, records)
    groups: dict[str, list] = defaultdict(list)
    for result, s in zip((j.outcome for j in judged), scores):
        calls = "+".join(c["name"] for c in result.calls) or "no tool"
        if any(c["error"] for c in result.calls):
            calls += " (a call failed)"
        groups[calls].append((s["accuracy"], s["format"], s["reward"]))
    return {k: {"episodes": len(v), "share": len(v) / len(judged),
                **dict(zip(("accuracy", "format", "reward"), np.mean(v, axis=0).tolist()))}
            for k, v in sorted(groups.items(), key=lambda kv: -len(kv[1]))}


def held_out_answers(workdir: str, root: str, episodes: int, eval_world: int) -> list[str]:
    """The true answers of the questions seeker_jax/cli/demo.py:run_demo evaluated, in its order."""
    from seeker_jax.data.records import SPLITS, read_records
    from seeker_jax.cli import demo

    if eval_world > 0:
        data = os.path.join(workdir, "eval_data")
        records = [r for s in SPLITS for r in read_records(data, s, resolve=False)]
    else:
        records = demo.held_out(root, episodes)
    return [str(r["answer"]) for r in records[:episodes]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--preset", default="default", help="configs/demo.py preset")
    p.add_argument("--steps", type=int, default=None, help="SFT steps (default: the preset's)")
    p.add_argument("--grpo-steps", type=int, default=None, help="GRPO iterations (default: 0, "
                   "or the preset's with --preset long)")
    p.add_argument("--episodes", type=int, default=None, help="held-out questions")
    p.add_argument("--eval-world", type=int, default=None, help="held-out questions from a "
                   "separate world of that many records (default: the preset's; 0 = the SFT "
                   "world's test split)")
    p.add_argument("--probe", type=int, default=0, metavar="N", help="sample 4 "
                   "episodes at T = 1 from the SFT checkpoint on N train questions and print "
                   "accuracy and reward by "
                   "the tools called (sampled_by_tools); 0: off")
    p.add_argument("--sft", action="append", default=[], metavar="FLAG",
                   help="an extra configs/sft.py:demo flag, as --sft=--config.steps=9 (repeat "
                        "it for more)")
    p.add_argument("--grpo", action="append", default=[], metavar="FLAG",
                   help="an extra configs/grpo.py:tiny_synth flag, as --sft")
    args = p.parse_args(argv)

    from seeker_jax.config import load_config
    from seeker_jax.cli import demo
    from seeker_jax.eval.compare import by_answer, paired_bootstrap, table

    preset = load_config(f"configs/demo.py:{args.preset}")
    steps = args.steps or preset.sft_steps or None
    grpo_steps = args.grpo_steps if args.grpo_steps is not None else (
        preset.grpo_steps if args.preset != "default" else 0)
    episodes = args.episodes or preset.episodes
    sft_flags = [*preset.sft, *args.sft]
    eval_world = preset.eval_world if args.eval_world is None else args.eval_world

    summary = demo.run_demo(args.workdir, steps, episodes, grpo_steps, sft_flags,
                            [*preset.grpo, *args.grpo], eval_world=eval_world)
    root = os.path.join(args.workdir, "sft", "data")
    sft_ckpt = os.path.join(args.workdir, "sft", "checkpoints")
    out = {"preset": args.preset, "sft_steps": summary["sft"]["steps"],
           "grpo_steps": grpo_steps, "before": summary["before"], "after": summary["after"],
           "teacher_forced": teacher_forced(sft_ckpt, root)}
    print("\nteacher-forced next-token accuracy of the SFT model on val trajectories:")
    for kind, v in out["teacher_forced"].items():
        print(f"  {kind:<12} {v['accuracy']:6.1%}  ({v['tokens']} tokens)")
    if args.probe:
        out["sampled_by_tools"] = sampled_by_tools(sft_ckpt, root, args.probe)
        print(f"\nthe SFT model's episodes at T = 1 on {args.probe} train questions x 4, by "
              "the tools called (what GRPO's reward sees):")
        for calls, g in out["sampled_by_tools"].items():
            print(f"  {calls:<44} {g['share']:6.1%} of episodes: accuracy {g['accuracy']:.2f}, "
                  f"format {g['format']:.2f}, reward {g['reward']:.3f}")
    b = summary["before"]
    verdict = "OK" if b["answered"] >= 0.9 else "FAIL (< 90%)"
    print(f"\nSFT model on {b['episodes']} held-out questions: answered {b['answered']:.1%} "
          f"[{verdict}], accuracy {b['accuracy']:.1%}, end reasons {b['end_reasons']}")
    if grpo_steps:
        gain, low, high = paired_bootstrap(np.array(b["correct"]),
                                           np.array(summary["after"]["correct"]))
        out["accuracy_gain"] = {"mean": gain, "ci95": [low, high], "significant": low > 0}
        print(table({"SFT": b, "SFT+GRPO": summary["after"]}))
        print(f"accuracy gain {gain:+.1%}, paired bootstrap 95% interval [{low:+.1%}, "
              f"{high:+.1%}]: {'significant' if low > 0 else 'not significant'}")
        print(f"tool calls per episode after GRPO: "
              f"{summary['after']['tool_calls_per_episode']:.2f} (must not collapse to 0)")
        answers = held_out_answers(args.workdir, root, episodes, eval_world)
        runs = {"SFT": b, "SFT+GRPO": summary["after"]}
        out["by_answer"] = by_answer(answers, {k: v["correct"] for k, v in runs.items()},
                                     {k: v["answers"] for k, v in runs.items()})
        print("accuracy by the true answer (and each run's most common answer there):")
        for answer, row in out["by_answer"].items():
            print(f"  {answer:<10} {row['n']:5d} questions: SFT {row['SFT']:6.1%} (says "
                  f"{row['SFT says']}), SFT+GRPO {row['SFT+GRPO']:6.1%} (says "
                  f"{row['SFT+GRPO says']})")
    with open(os.path.join(args.workdir, "recipe.json"), "w") as f:
        json.dump(out, f, indent=2)
    print(f"results in {os.path.join(args.workdir, 'recipe.json')}")
    return 0 if b["answered"] >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
