"""`seeker-jax demo`: the whole system end to end on the embedded default, on a CPU.

1. synthesize a tiny instance-level video world (real mp4s, masks, visual prompts, questions;
   configs/synth.py:demo);
2. SFT a tiny Qwen3-VL from scratch on teacher tool trajectories (view the prompt frame, crop
   the window the question names, answer; configs/sft.py:demo), with orbax checkpoints;
3. evaluate it on held-out records through the evaluator (seeker_jax/eval, protocol
   "answer"): greedy tool episodes in the rollout engine (jitted generation, the KV cache
   growing across tool turns, tools on host threads), accuracy by env/grading.py's rule, and
   the reward the demo's GRPO trains on, per episode;
4. GRPO from the SFT checkpoint (configs/grpo.py:tiny_synth, rl/grpo.py);
5. evaluate the GRPO checkpoint on the same records: the before/after table, one episode in
   full (the model's turns, its tool calls, what the tools showed);
6. export the final checkpoint to a Hugging Face folder and, when torch is installed, load it
   in transformers and compare logits with ours.

Everything lands in --workdir; re-running resumes SFT and GRPO from their checkpoints. The
summary is printed and written to demo_summary.json.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Sequence

import numpy as np

from seeker_jax.config import load_config

STAGES = 6


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def stage(i: int, msg: str) -> None:
    say(f"{i}/{STAGES} {msg}")


def sft_config(steps: int | None = None, overrides: Sequence[str] = ()):
    """configs/sft.py:demo (the recipe bench/demo_recipe.py checks), optionally with another
    number of steps (the schedule stretched to it), checkpointed at the end."""
    flags = []
    if steps is not None:
        flags = [f"--config.steps={steps}", f"--config.optimizer.total_steps={steps}",
                 f"--config.optimizer.warmup_steps={min(10, max(steps // 10, 0))}",
                 f"--config.checkpoint_every={steps}",
                 f"--config.eval_every={max(steps // 4, 1)}"]
    return load_config("configs/sft.py:demo", [*flags, *overrides])


def grpo_config(sft_ckpt: str, root: str, steps: int, overrides: Sequence[str] = ()):
    """configs/grpo.py:tiny_synth from the SFT checkpoint, on the SFT world's train split, with
    the demo's turn and length budgets (configs/demo.py:ROLLOUT; evaluation reads them back
    from this config), checkpointed at the end."""
    from seeker_jax.configs.demo import rollout_flags

    return load_config("configs/grpo.py:tiny_synth", [
        f"--config.model.init_from={sft_ckpt}", f"--config.data.root={root}",
        f"--config.steps={steps}", f"--config.optimizer.total_steps={steps}",
        f"--config.checkpoint_every={steps}", *rollout_flags(), *overrides])


def compare_with_transformers(hf_dir: str, model) -> float | None:
    """Max |logits diff| of the exported folder in transformers vs ours; None without torch."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    from seeker_jax.models.qwen3_vl import forward
    from seeker_jax.checkpointing.parity import make_inputs, torch_logits
    import transformers

    ref = transformers.Qwen3VLForConditionalGeneration.from_pretrained(hf_dir).eval()
    inputs = make_inputs([[("text", 8), ("image", (4, 6)), ("text", 5), ("video", (2, 4, 4)),
                           ("text", 6)]], model.config, seed=0)
    ours = np.asarray(forward(model, **inputs.arrays()).logits)
    return float(np.abs(ours - torch_logits(ref, inputs)).max())


def held_out(root: str, episodes: int) -> list[dict]:
    """The first `episodes` test records (val if the world has no test split)."""
    from seeker_jax.data.records import read_records

    records = read_records(root, "test", resolve=False) or read_records(root, "val",
                                                                        resolve=False)
    return records[:episodes]


def held_out_world(workdir: str, config, num: int) -> tuple[str, list[dict]]:
    """(root, records): a second world of `num` records from the SFT world's synth preset and
    the next seed, made once in WORKDIR/eval_data. Its videos are new (the seed is in every
    video id and drives every draw), so all of its records, every split, are held out: a
    larger evaluation set than the SFT world's test split, for a tighter interval."""
    from seeker_jax.data.records import SPLITS, read_records
    from seeker_jax.data.synth import synthesize

    root = os.path.join(workdir, "eval_data")
    if not os.path.isfile(os.path.join(root, "meta.json")):
        synthesize(root, num, int(config.seed) + 1,
                   load_config(f"configs/synth.py:{config.data.synth_preset}"))
    return root, [r for split in SPLITS for r in read_records(root, split, resolve=False)]


def reward_scores(judged: Sequence, records: Sequence[dict], reward=None
                  ) -> list[dict[str, float]]:
    """Each episode's GRPO reward and its parts, so the table shows what GRPO trains on beside
    the accuracy. reward: a GRPO config's reward group (default: configs/grpo.py:tiny_synth's,
    what the demo's GRPO trains on)."""
    from seeker_jax.rl.rewards import RewardConfig, RewardModel, from_episode

    if reward is None:
        reward = load_config("configs/grpo.py:tiny_synth").reward
    model = RewardModel(RewardConfig.from_config(reward))
    return model.score([from_episode(j.outcome, r) for j, r in zip(judged, records)])


def run_episodes(policy, root: str, records: Sequence[dict], *, batch_size: int = 8,
                 budgets: Any = None, temperature: float = 0.0, seed: int = 0):
    """Episodes of `policy` (agents/policy.py) on `records` through the evaluator (protocol
    "answer"), in the environment it trained in and with GRPO's turn and length budgets
    (`budgets`: a GRPO config's c.rollout; default configs/demo.py:ROLLOUT): greedy, or
    sampled at `temperature` (the policy GRPO trains; reproducible from `seed`). Returns
    (Judged per record, RolloutStats)."""
    from seeker_jax.configs.demo import ROLLOUT
    from seeker_jax.eval.models import InProcessBackend
    from seeker_jax.eval.protocols import get_protocol
    from seeker_jax.eval.readers import samples_from_records
    from seeker_jax.eval.runner import evaluate

    b = {k: int(budgets[k]) for k in ROLLOUT} if budgets is not None else ROLLOUT
    backend = InProcessBackend(policy, batch_size=min(batch_size, len(records)),
                               max_len=b["max_len"], max_new_tokens=b["max_new_tokens"],
                               max_turns=b["max_turns"], temperature=temperature, seed=seed,
                               num_workers=2)
    judged = evaluate(samples_from_records(records, root), backend, policy.env,
                      get_protocol("answer"))
    return [j[0] for j in judged], backend.stats


def evaluate(ckpt_dir: str, root: str, records: list[dict], label: str, reward=None,
             budgets=None):
    """Greedy episodes of checkpoint `ckpt_dir` on `records`, scored (reward: see
    reward_scores; budgets: see run_episodes): (Evaluation, Policy)."""
    from seeker_jax.agents.policy import load_policy
    from seeker_jax.eval.compare import summarize_episodes

    t0 = time.perf_counter()
    policy = load_policy(f"ckpt:{ckpt_dir}")
    judged, stats = run_episodes(policy, root, records, budgets=budgets)
    ev = summarize_episodes(judged, [s["reward"] for s in reward_scores(judged, records,
                                                                         reward)])
    ev.summary.update(tool_wait_fraction=round(stats.wait_fraction, 3),
                      seconds=round(time.perf_counter() - t0, 1),
                      correct=ev.correct.astype(int).tolist(),
                      answers=[j.outcome.answer for j in judged],
                      rewards=[round(float(x), 4) for x in ev.reward])
    s = ev.summary
    say(f"    {label}: {s['answered']:.0%} answered, accuracy {s['accuracy']:.0%}, reward "
        f"{s['reward']:.3f}, {s['tool_calls_per_episode']:.1f} tool calls each "
        f"({s['seconds']:.0f} s)")
    return ev, policy


def sft_stage(workdir: str, steps: int | None, overrides: Sequence[str]) -> dict[str, Any]:
    from seeker_jax.training.sft import train

    config = sft_config(steps, overrides)
    sft_dir = os.path.join(workdir, "sft")
    start = (f"from {config.model.init_from}" if config.model.init_from else "from scratch")
    stage(2, f"training a tiny Qwen3-VL {start} for {config.steps} steps (SFT, CPU) in "
             f"{sft_dir}")
    t0 = time.perf_counter()
    logged = train(config, sft_dir)
    val = [m["val_loss"] for m in logged if "val_loss" in m]
    losses = [m["loss"] for m in logged if "loss" in m]
    if val:
        say(f"    validation loss {' -> '.join(f'{v:.2f}' for v in val)}")
    return {"steps": int(config.steps), "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "val_loss": val,
            "seconds": round(time.perf_counter() - t0, 1)}


def grpo_stage(workdir: str, sft_ckpt: str, root: str, steps: int,
               overrides: Sequence[str]) -> dict[str, Any]:
    from seeker_jax.rl.grpo import train

    grpo_dir = os.path.join(workdir, "grpo")
    config = grpo_config(sft_ckpt, root, steps, overrides)
    r = config.rollout
    stage(4, f"GRPO from the SFT checkpoint: {steps} iterations of {r.prompts_per_step} "
             f"prompts x {r.n} samples, reward {config.reward.preset}, in {grpo_dir}")
    t0 = time.perf_counter()
    logged = train(config, grpo_dir)
    rewards = [m["reward"] for m in logged if "reward" in m]
    if rewards:
        say(f"    mean sampled reward per iteration {' '.join(f'{x:.2f}' for x in rewards)}")
    return {"steps": steps, "rewards": rewards, "dir": grpo_dir,
            "seconds": round(time.perf_counter() - t0, 1)}


def run_demo(workdir: str, steps: int | None = None, episodes: int = 16, grpo_steps: int = 8,
             overrides: Sequence[str] = (), grpo_overrides: Sequence[str] = (),
             eval_world: int = 0) -> dict[str, Any]:
    """Runs the six stages; returns (and writes) the summary. steps: SFT steps (None: the
    preset's); grpo_steps: GRPO iterations (0 skips GRPO: "after" is then the SFT model);
    eval_world > 0: evaluate on the first `episodes` records of a separate held-out world of
    that many records (held_out_world) instead of the SFT world's test split."""
    from seeker_jax.checkpointing.convert import export
    from seeker_jax.eval.compare import table
    from seeker_jax.eval.describe import describe_episode
    from seeker_jax.data.synth import prepare_data

    os.makedirs(workdir, exist_ok=True)
    summary: dict[str, Any] = {"workdir": os.path.abspath(workdir)}
    t0 = time.perf_counter()
    sft_dir = os.path.join(workdir, "sft")
    config = sft_config(steps, overrides)
    stage(1, f"synthesizing a tiny video world (configs/synth.py:{config.data.synth_preset})")
    root = prepare_data(config, sft_dir)
    summary["sft"] = sft_stage(workdir, steps, overrides)

    sft_ckpt = os.path.join(sft_dir, "checkpoints")
    if eval_world > 0:
        say(f"    a separate held-out world of {eval_world} records (seed {config.seed + 1})")
        eval_root, records = held_out_world(workdir, config, eval_world)
        records = records[:episodes]
    else:
        eval_root, records = root, held_out(root, episodes)
    stage(3, f"evaluating the SFT model on {len(records)} held-out questions (greedy tool "
             "episodes)")
    grpo = grpo_config(sft_ckpt, root, max(grpo_steps, 1), grpo_overrides)
    reward, budgets = grpo.reward, grpo.rollout   # what GRPO trains on and with
    before, policy = evaluate(sft_ckpt, eval_root, records, "SFT", reward, budgets)
    final_ckpt, after = sft_ckpt, before
    if grpo_steps > 0:
        summary["grpo"] = grpo_stage(workdir, sft_ckpt, root, grpo_steps, grpo_overrides)
        final_ckpt = os.path.join(summary["grpo"]["dir"], "checkpoints")
        stage(5, f"evaluating the GRPO model on the same {len(records)} questions")
        after, policy = evaluate(final_ckpt, eval_root, records, "GRPO", reward, budgets)
    else:
        stage(4, "GRPO skipped (--grpo-steps 0)")
        stage(5, "the SFT model is the final one")
    summary["before"], summary["after"] = before.summary, after.summary
    say("    held-out results:")
    for line in table({"SFT": before.summary, "SFT+GRPO": after.summary}).splitlines():
        say(f"      {line}")
    if grpo_steps:
        say("    (this demo's 10-minute budget is too small for GRPO to move held-out accuracy; "
            "the recorded runs that do, about an hour on 2 cores from a built SFT model: "
            "docs/results.md, bench/seek.py --protocol 3)")
    outcomes = [j.outcome for j in after.judged]
    pick = next((i for i, o in enumerate(outcomes) if o.answer is not None and o.calls), 0)
    say("    one episode in full:")
    for line in describe_episode(outcomes[pick], records[pick], eval_root, policy.env,
                                 policy.tokenizer):
        say(f"      {line}")

    t2 = time.perf_counter()
    hf_dir = os.path.join(workdir, "hf_export")
    stage(6, f"exporting the final checkpoint to a Hugging Face folder: {hf_dir}")
    export(final_ckpt, hf_dir, overwrite=True, progress=False)
    diff = compare_with_transformers(hf_dir, policy.model)
    summary["export"] = {"hf_dir": hf_dir, "transformers_max_logits_diff": diff,
                         "seconds": round(time.perf_counter() - t2, 1)}
    if diff is not None:
        say(f"    transformers loads the export; max |logits diff| vs ours {diff:.2e}")
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    with open(os.path.join(workdir, "demo_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    b, a = before.summary, after.summary
    say(f"done in {summary['seconds']:.0f} s: answered {b['answered']:.0%} -> "
        f"{a['answered']:.0%}, accuracy {b['accuracy']:.0%} -> {a['accuracy']:.0%}, reward "
        f"{b['reward']:.3f} -> {a['reward']:.3f}; summary in "
        f"{os.path.join(workdir, 'demo_summary.json')}")
    return summary
