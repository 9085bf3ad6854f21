"""`seeker-jax demo`: the whole system end to end on the embedded default, on a CPU.

1. synthesize a tiny instance-level video world (real mp4s, masks, visual prompts, questions);
2. SFT a tiny Qwen3-VL from scratch on teacher tool trajectories (view the prompt frame, crop
   the evidence window, answer), with orbax checkpoints (re-running resumes);
3. run tool-using episodes with the trained model on held-out records: jitted generation, the
   KV cache growing across tool turns, tools on host threads;
4. export the trained checkpoint to a Hugging Face folder and, when torch is installed, load it
   in transformers and compare logits with ours.

Everything lands in --workdir; the summary is printed and written to demo_summary.json.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any, Sequence

import numpy as np

from seeker_jax.config import load_config


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def sft_config(steps: int, overrides: Sequence[str] = ()):
    """The tiny_synth SFT preset, shortened to `steps` (with a higher peak learning rate, so a
    from-scratch model picks up the trajectory format in ~100 steps), checkpointed at the end."""
    return load_config("configs/sft.py:tiny_synth", [
        f"--config.steps={steps}", f"--config.optimizer.total_steps={steps}",
        "--config.optimizer.lr=0.01",
        f"--config.checkpoint_every={steps}", f"--config.eval_every={max(steps // 4, 1)}",
        *overrides])


def run_episodes(model, root: str, records: list[dict], ckpt_dir: str, batch_size: int = 4,
                 max_len: int = 2048, max_new_tokens: int = 160):
    """Greedy tool-using episodes of `model` on `records` (paths relative to root), in the
    environment and with the tokenizer saved in the SFT checkpoint `ckpt_dir` (the frames,
    prompt and rounds SFT trained on)."""
    from seeker_jax import checkpoint as ckpt
    from seeker_jax.env.episode import Episode
    from seeker_jax.env.records import SampleRecord
    from seeker_jax.rl.rollout import Rollout, RolloutConfig, env_sampler
    from seeker_jax.sampling import SamplingParams

    env, tokenizer = ckpt.read_env_config(ckpt_dir), ckpt.read_tokenizer(ckpt_dir)
    formatter, episode_config = env.formatter(tokenizer), env.episode_config()
    episodes = [Episode(SampleRecord.from_dict(r), formatter, root, episode_config)
                for r in records]
    sampler = env_sampler(model, tokenizer, batch_size=batch_size, max_len=max_len,
                          params=SamplingParams(temperature=0.0))
    rollout = Rollout(sampler, RolloutConfig(max_new_tokens=max_new_tokens,
                                             max_turns=env.max_rounds + 1, num_workers=2))
    return rollout.run(episodes)


def score(results, records: list[dict]) -> dict[str, Any]:
    """Answer accuracy (letter match for multiple choice), answers given, tool use."""
    correct, calls = [], []
    for res, rec in zip(results, records):
        answer, truth = (res.answer or "").strip(), str(rec["answer"]).strip()
        if rec.get("question_form") == "mc":
            correct.append(answer[:1].upper() == truth[:1].upper() and bool(answer))
        else:
            correct.append(answer.lower() == truth.lower())
        calls.append(len(res.calls))
    n = max(len(results), 1)
    return {"episodes": len(results), "accuracy": sum(correct) / n,
            "answered": sum(r.answer is not None for r in results) / n,
            "tool_calls_per_episode": sum(calls) / n,
            "end_reasons": dict(Counter(r.end_reason for r in results))}


def compare_with_transformers(hf_dir: str, model) -> float | None:
    """Max |logits diff| of the exported folder in transformers vs ours; None without torch."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    from seeker_jax.models.qwen3_vl import forward
    from seeker_jax.parity import make_inputs, torch_logits
    import transformers

    ref = transformers.Qwen3VLForConditionalGeneration.from_pretrained(hf_dir).eval()
    inputs = make_inputs([[("text", 8), ("image", (4, 6)), ("text", 5), ("video", (2, 4, 4)),
                           ("text", 6)]], model.config, seed=0)
    ours = np.asarray(forward(model, **inputs.arrays()).logits)
    return float(np.abs(ours - torch_logits(ref, inputs)).max())


def run_demo(workdir: str, steps: int = 100, episodes: int = 8,
             overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Runs the four stages; returns (and writes) the summary."""
    from seeker_jax import checkpoint as ckpt
    from seeker_jax.convert import export
    from seeker_jax.data.records import read_records
    from seeker_jax.sft import train

    os.makedirs(workdir, exist_ok=True)
    summary: dict[str, Any] = {"workdir": os.path.abspath(workdir)}
    t0 = time.perf_counter()
    config = sft_config(steps, overrides)
    sft_dir = os.path.join(workdir, "sft")
    say(f"1-2/4 synthesizing a tiny video world and training a tiny Qwen3-VL for {steps} "
        f"steps (SFT, CPU) in {sft_dir}")
    logged = train(config, sft_dir)
    val = [m["val_loss"] for m in logged if "val_loss" in m]
    losses = [m["loss"] for m in logged if "loss" in m]
    summary["sft"] = {"steps": steps, "first_loss": losses[0] if losses else None,
                      "last_loss": losses[-1] if losses else None,
                      "val_loss": val, "seconds": round(time.perf_counter() - t0, 1)}
    if val:
        say(f"    validation loss {' -> '.join(f'{v:.2f}' for v in val)}")

    t1 = time.perf_counter()
    root = os.path.join(sft_dir, "data")
    records = (read_records(root, "test", resolve=False) or
               read_records(root, "val", resolve=False))[:episodes]
    model = ckpt.load_model(os.path.join(sft_dir, "checkpoints"))
    say(f"3/4 running {len(records)} tool-using episodes with the trained model (greedy)")
    results, stats = run_episodes(model, root, records, os.path.join(sft_dir, "checkpoints"))
    summary["episodes"] = {**score(results, records),
                           "tool_wait_fraction": round(stats.wait_fraction, 3),
                           "seconds": round(time.perf_counter() - t1, 1)}
    for res, rec in list(zip(results, records))[:2]:
        say(f"    Q: {rec['question'].splitlines()[0][:90]}")
        turns = " | ".join(" ".join(t.split())[:100] for t in res.turns)
        say(f"    model: {turns}")
        say(f"    -> answer {res.answer!r} (truth {rec['answer']!r}), {res.end_reason}")

    t2 = time.perf_counter()
    hf_dir = os.path.join(workdir, "hf_export")
    say(f"4/4 exporting to a Hugging Face folder: {hf_dir}")
    export(os.path.join(sft_dir, "checkpoints"), hf_dir, overwrite=True, progress=False)
    diff = compare_with_transformers(hf_dir, model)
    summary["export"] = {"hf_dir": hf_dir, "transformers_max_logits_diff": diff,
                         "seconds": round(time.perf_counter() - t2, 1)}
    if diff is not None:
        say(f"    transformers loads the export; max |logits diff| vs ours {diff:.2e}")
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    with open(os.path.join(workdir, "demo_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    e = summary["episodes"]
    say(f"done in {summary['seconds']:.0f} s: SFT loss {summary['sft']['first_loss']:.2f} -> "
        f"{summary['sft']['last_loss']:.2f}; episodes: {e['answered']:.0%} answered, accuracy "
        f"{e['accuracy']:.0%}, {e['tool_calls_per_episode']:.1f} tool calls each; "
        f"summary in {os.path.join(workdir, 'demo_summary.json')}")
    return summary
