"""GRPO iteration throughput: our agentic learner, and single-turn side by side with TRL.

Part 1, ours, agentic: `seeker_jax.rl.grpo.train` on configs/grpo.py:tiny_synth (tools on
host threads, up to max_turns model turns) from a tiny checkpoint, for 1 + --iters
iterations; per iteration episodes/s, policy tokens/s (tokens the policy sampled) and the time
split from metrics.jsonl's row (rollout = prefill + decode + tool wait + host work; reward;
update = batching + reference / old log-probs + optimizer steps; weight refresh) as fractions
of the iteration. The first iteration compiles: it is left out of the medians. A random
tiny model never writes a tool call, so by default (--script crop) every episode's first turn
is forced, as tests/test_grpo.py does, to a well-formed crop_video call over its own record's
video: the tool runs on a host thread, its frames come back as a video, are vision-encoded and
appended to the row's cache, and the second turn is sampled. Forced tokens are policy tokens
(with the sampler's log-probs) and count in policy tokens/s; --script none samples every turn
(the episodes then end after one turn without a call).

Part 2, single-turn, ours vs TRL 1.16's GRPOTrainer, same process, same CPU, interleaved
(TRL iteration, ours, TRL, ours, ...; the first of each compiles / warms up and is left out of
the medians). TRL cannot run our tools: its tools are Python functions whose results it
renders as text (or still images) through the chat template, while ours return a video with
timestamps; so this part is single-turn. Both sides:
  - the same weights: the checkpoint is exported with seeker_jax.checkpointing.convert.export
    to an HF folder; TRL loads that folder (Qwen3VLForConditionalGeneration, fp32; its
    reference model too, from the same folder);
  - the same prompts: the records' questions as one user turn rendered by the Qwen3-VL chat
    template (our tokenizer's), as text; TRL tokenizes them with the same tokenizer (passed
    as processing_class: text-only, no processor);
  - the same n (num_generations), prompts per step, max completion length, temperature
    (top_k/top_p off), stop tokens (<|im_end|>, <|endoftext|>, via the folder's
    generation_config.json), minibatches (TRL's steps_per_generation: one generation batch,
    that many optimizer steps, old log-probs recomputed when > 1), KL coefficient (TRL beta,
    k3 both), clip epsilon, aggregation (ours token_mean = TRL loss_type "dapo"), AdamW lr,
    clip norm 1.0, no gradient checkpointing / remat;
  - the same reward: `text_reward`, our RewardModel (configs/reward.py paper preset: accuracy
    + format + parsimony) on a RewardContext made from the completion text.
  Ours: the same pieces rl/grpo.py uses (rl.rollout.Rollout with max_turns=1 over the
  jitted Sampler, RewardModel, compute_advantages, rl.grpo.update, Sampler.load_state), with
  the learner's buckets set to powers of two from 128 (TRL pads to the batch's longest row).
  TRL: transformers `generate` on a padded batch; its split in bench/grpo_trl.py.

Figures depend on the machine's load: run it on an idle machine. Prints JSON lines (one per
part and framework, then the ratio) and the thread counts.

    python bench/grpo.py [--ckpt CKPT] [--iters 3] [--workdir W]
    python bench/grpo.py --quick          # tiny settings, a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import types
from typing import Any, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

IDLE_NOTE = ("NOTE: these figures are only meaningful on an idle machine (no other jobs): "
             "load from other processes falls on both frameworks, but not evenly.")
SPLIT = ("prefill_s", "decode_s", "tool_wait_s", "reward_s", "logprobs_s", "optimizer_s",
         "refresh_s")


def tiny_checkpoint(workdir: str, env) -> str:
    """A tiny random Qwen3-VL over the real Qwen vocabulary as our checkpoint
    (seeker_jax/checkpointing/tiny.py), carrying the bench's env config."""
    from seeker_jax.checkpointing.tiny import save_tiny_checkpoint

    return save_tiny_checkpoint(os.path.join(workdir, "tiny"), env=env)


def grpo_config(args, ckpt: str, root: str, steps: int):
    """configs/grpo.py:tiny_synth from `ckpt` on the world at `root`, with the bench's sizes."""
    from seeker_jax.config import load_config

    return load_config(os.path.join(ROOT, "configs", "grpo.py") + ":tiny_synth", [
        f"--config.model.init_from={ckpt}", f"--config.data.root={root}",
        f"--config.steps={steps}", f"--config.rollout.n={args.n}",
        f"--config.rollout.prompts_per_step={args.prompts}",
        f"--config.rollout.max_new_tokens={args.max_new_tokens}",
        f"--config.rollout.minibatches={args.minibatches}",
        f"--config.rollout.temperature={args.temperature}",
        f"--config.loss.temperature={args.temperature}",
        f"--config.checkpoint_every={10**6}", "--config.plot_every=1000000"])


def median(rows: Sequence[dict], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def summary(rows: Sequence[dict], episodes_key: str = "episodes",
            tokens_key: str = "policy_tokens", split: Sequence[str] = SPLIT) -> dict[str, Any]:
    """Over the timed rows (the first, compiling, one already removed): the median seconds per
    iteration, episodes/s and policy tokens/s at that median, and each part of the split as a
    fraction of the iteration, pooled (sum of the part / sum of the iterations, so the parts
    add up; "other" is the rest: host work between the timed parts)."""
    it = median(rows, "iteration_s")
    out = {"iterations_in_median": len(rows), "iteration_s_median": round(it, 4),
           "iteration_s_all": [round(r["iteration_s"], 3) for r in rows],
           "episodes_per_s": round(median(rows, episodes_key) / it, 3),
           "policy_tokens_per_s": round(median(rows, tokens_key) / it, 2),
           "policy_tokens_per_iteration": median(rows, tokens_key)}
    total = sum(r["iteration_s"] for r in rows)
    fractions = {k.removesuffix("_s"): sum(r[k] for r in rows) / total for k in split
                 if k in rows[0]}
    fractions["other"] = max(0.0, 1.0 - sum(fractions.values()))
    out["fractions"] = {k: round(v, 4) for k, v in fractions.items()}
    return out


def agentic_summary(rows: Sequence[dict], episodes: int) -> dict[str, Any]:
    """Part 1's figures from train()'s metric rows (first row: the compiling iteration)."""
    for r in rows:
        r["episodes"] = episodes
        r["policy_tokens"] = r["response_length"] * episodes  # mean policy tokens per episode
    timed = rows[1:]
    return {"part": "agentic", "framework": "seeker_jax", "episodes_per_iteration": episodes,
            "first_iteration_s (compiles, excluded)": round(rows[0]["iteration_s"], 2),
            **summary(timed), "tool_calls_per_episode": median(timed, "tool_calls_per_episode"),
            "turns_per_episode": median(timed, "turns")}


def crop_call(record: dict) -> str:
    """A well-formed turn calling crop_video over the record's whole video, written compactly
    (about 42 tokens): a forced turn is cut at max_new_tokens like a sampled one, and a cut
    call is a malformed one (check_fits)."""
    args = {"video_path": record["video_path"], "start_time": 0.0,
            "end_time": float(record["duration"])}
    call = json.dumps({"name": "crop_video", "arguments": args}, separators=(",", ":"))
    return f"<think>crop</think><tool_call>\n{call}\n</tool_call>"


def check_fits(turns: Sequence[str], max_new_tokens: int) -> None:
    """Stops the bench if a scripted turn is longer than a turn may be (it would be cut, and
    the agentic part would time malformed calls instead of tool calls)."""
    from seeker_jax.models.tokenizer import offline_qwen_tokenizer

    tok = offline_qwen_tokenizer()
    longest = max(len(tok.encode(t)) for t in turns)
    if longest > max_new_tokens:
        raise SystemExit(f"bench/grpo.py: the scripted crop_video turn takes {longest} tokens, "
                         f"more than --max-new-tokens {max_new_tokens}; raise it")


def crop_script(config, root: str, iterations: int):
    """(script, on_step) for train(): every episode's first turn is forced to a crop_video
    call of its own record (the records train() will draw, read from the same seeded
    iterator); later turns are sampled. on_step advances the iteration the script reads."""
    from seeker_jax.rl.grpo import prompt_iterator

    r = config.rollout
    it = prompt_iterator(root, config)
    records = [next(it) for _ in range(iterations * r.prompts_per_step)]
    check_fits([crop_call(rec) for rec in records], int(r.max_new_tokens))
    at = {"iteration": 0}

    def script(episode: int, turn: int):
        if turn:
            return None
        return crop_call(records[at["iteration"] * r.prompts_per_step + episode // r.n])

    def on_step(_):
        at["iteration"] += 1
    return script, on_step


def agentic(args, ckpt: str, root: str, workdir: str) -> dict[str, Any]:
    """Part 1: 1 + iters iterations of the agentic learner; medians without the first."""
    from seeker_jax.rl.grpo import train

    config = grpo_config(args, ckpt, root, 1 + args.iters)
    config.rollout.max_turns = args.max_turns
    script, on_step = (crop_script(config, root, 1 + args.iters) if args.script == "crop"
                       else (None, None))
    out_dir = os.path.join(workdir, "agentic")
    shutil.rmtree(out_dir, ignore_errors=True)  # a fresh run, never a resume of an old one
    rows = train(config, out_dir, progress=False, script=script,
                 on_step=on_step)
    return {**agentic_summary(rows, config.rollout.prompts_per_step * config.rollout.n),
            "rollout": config.rollout.to_dict(), "loss": config.loss.to_dict()}


# ------------------------------------------------------------------ single-turn, both sides

class PromptEpisode:
    """A single-turn episode for rl.rollout.Rollout: a text prompt, one model turn, done."""

    def __init__(self, ids: np.ndarray):
        self.ids = np.asarray(ids, np.int32)

    def prompt_segment(self):
        from seeker_jax.models.chat import Segment

        zeros = np.zeros_like(self.ids)
        return Segment(self.ids, zeros, zeros)

    def step(self, text: str, ids=None):
        from seeker_jax.env.parser import extract_answer

        answer = extract_answer(text)
        return types.SimpleNamespace(done=True, answer=answer, segment=None,
                                     end_reason="answer" if answer is not None else "no_answer")


def text_prompts(records: Sequence[dict], tokenizer) -> list[str]:
    """Each record's question as one user turn, rendered by the chat template with the
    generation prompt (the text both frameworks tokenize)."""
    return [tokenizer.apply_chat_template([{"role": "user", "content": r["question"]}],
                                          tokenize=False, add_generation_prompt=True)
            for r in records]


def text_reward(rewards, text: str, record: dict) -> float:
    """Our reward (RewardModel) of one single-turn completion's text: the same function for
    both frameworks."""
    from seeker_jax.env.parser import extract_answer
    from seeker_jax.rl.rewards import from_episode

    result = types.SimpleNamespace(turns=[text], answer=extract_answer(text), calls=[],
                                   end_reason="answer", turn_stop_reasons=["stop"])
    return float(rewards.score([from_episode(result, record)])[0]["reward"])


class OursSingleTurn:
    """Our single-turn GRPO iteration from rl/grpo.py's pieces; `run(i)` returns its row."""

    def __init__(self, config, tokenizer, prompt_ids: Sequence[np.ndarray], records, rewards):
        import jax

        from seeker_jax.rl.grpo import build_reference, check_config
        from seeker_jax.rl.policy_loss import PolicyLossConfig, make_grpo_loss
        from seeker_jax.agents.rollout import Rollout, RolloutConfig, env_sampler
        from seeker_jax.training.optim import make_optimizer
        from seeker_jax.generation.sampling import SamplingParams
        from seeker_jax.sharding import make_mesh, rules_from_config
        from seeker_jax.training.train_state import create_train_state, make_train_step
        from seeker_jax.training.trainer import build_model, resolve_mesh_shape

        self.config, r = config, config.rollout
        self.loss_cfg = PolicyLossConfig.from_config(config.loss)
        check_config(config, self.loss_cfg)
        self.mesh = make_mesh(resolve_mesh_shape(config.mesh, jax.device_count()))
        self.rules = rules_from_config(config.mesh.rules)
        model, _ = build_model(config.model, self.rules)
        tx = make_optimizer(config.optimizer)
        self.state = create_train_state(model, tx, self.mesh, config.model.freeze_vision,
                                        self.rules)
        self.train_step = make_train_step(tx, make_grpo_loss(self.loss_cfg))
        self.reference = (build_reference(config, self.mesh, self.rules)
                          if self.loss_cfg.needs_reference else None)
        self.sampler = env_sampler(
            self.state.model(), tokenizer, batch_size=r.prompts_per_step * r.n,
            max_len=r.max_len, params=SamplingParams(r.temperature, r.top_k, r.top_p),
            stop_strings=(), decode_steps=r.decode_steps, max_chunk=r.max_chunk)
        self.rollout = Rollout(self.sampler, RolloutConfig(r.max_new_tokens, 1, r.num_workers))
        self.prompt_ids, self.records, self.rewards = prompt_ids, records, rewards

    def run(self, i: int) -> dict[str, float]:
        """Iteration i: prompts [i*P, (i+1)*P) of the list, n episodes each (as TRL's
        unshuffled sampler takes them)."""
        import jax

        from seeker_jax.rl.advantages import compute_advantages
        from seeker_jax.rl.grpo import rollout_seed, update

        r, P = self.config.rollout, self.config.rollout.prompts_per_step
        t0 = time.perf_counter()
        picks = [(i * P + k) % len(self.prompt_ids) for k in range(P) for _ in range(r.n)]
        episodes = [PromptEpisode(self.prompt_ids[p]) for p in picks]
        results, stats = self.rollout.run(episodes, group_size=r.n,
                                          seed=rollout_seed(self.config.seed, i))
        t1 = time.perf_counter()
        reward = np.array([text_reward(self.rewards, res.turns[0], self.records[p])
                           for res, p in zip(results, picks)])
        t2 = time.perf_counter()
        advantages = compute_advantages(self.loss_cfg.advantage, reward,
                                        np.repeat(np.arange(P), r.n))
        times = {"logprobs_s": 0.0, "optimizer_s": 0.0}
        update(self.state, self.train_step, results, advantages, np.ones(len(results), bool),
               self.config, self.loss_cfg, self.mesh, self.rules, self.reference, times)
        t3 = time.perf_counter()
        self.sampler.load_state(self.state)
        jax.block_until_ready(self.sampler.state)
        t4 = time.perf_counter()
        return {"iteration_s": t4 - t0, "episodes": len(results),
                "policy_tokens": int(sum(res.conversation.policy_mask.sum() for res in results)),
                "rollout_s": t1 - t0, "prefill_s": stats.prefill_s, "decode_s": stats.decode_s,
                "reward_s": t2 - t1, "update_s": t3 - t2, **times, "refresh_s": t4 - t3}


def single_turn(args, ckpt: str, root: str, workdir: str) -> list[dict[str, Any]]:
    """Part 2: TRL and ours interleaved on the same exported weights, prompts and reward."""
    from seeker_jax.checkpointing.convert import export
    from seeker_jax.data.records import make_dataset
    from seeker_jax.models.tokenizer import special_ids, tokenizer_from_config
    from seeker_jax.rl.rewards import RewardConfig, RewardModel

    import grpo_trl

    steps = 1 + args.iters
    config = grpo_config(args, ckpt, root, steps)
    config.rollout.max_turns = 1
    config.rollout.buckets = tuple(b for b in (128, 256, 512, 1024) if b < config.rollout.max_len
                                   ) + (config.rollout.max_len,)
    tokenizer = tokenizer_from_config(config.tokenizer)
    it = iter(make_dataset(root, config.data.split, seed=config.seed, shuffle=False,
                           num_epochs=None, resolve=False))
    records = [next(it) for _ in range(args.prompts * steps)]
    prompts = text_prompts(records, tokenizer)
    rewards = RewardModel(RewardConfig.from_config(config.reward))

    hf_dir = os.path.join(workdir, "hf")
    print(export(ckpt, hf_dir, overwrite=True, progress=False), flush=True)
    sp = special_ids(tokenizer)
    grpo_trl.write_generation_config(hf_dir, [sp.im_end, sp.endoftext], sp.endoftext)
    loss = config.loss
    trl_loss_type = {"token_mean": "dapo", "seq_mean_token_mean": "grpo"}[loss.aggregation]
    targs = grpo_trl.trl_args(
        os.path.join(workdir, "trl"), n=args.n, prompts_per_step=args.prompts,
        minibatches=args.minibatches, max_new_tokens=args.max_new_tokens,
        temperature=args.temperature, beta=loss.kl_coef, epsilon=loss.clip_low,
        loss_type=trl_loss_type, lr=config.optimizer.lr, clip_norm=config.optimizer.clip_norm,
        steps=steps, seed=config.seed)
    trl = grpo_trl.TrlBench(hf_dir, tokenizer, prompts,
                            lambda text, k: text_reward(rewards, text, records[k]),
                            list(range(len(prompts))), targs)
    ours = OursSingleTurn(config, tokenizer, [np.asarray(tokenizer.encode(
        p, add_special_tokens=False), np.int32) for p in prompts], records, rewards)
    ours_rows: list[dict] = []
    trl_rows = trl.run(lambda i: ours_rows.append(ours.run(i)))

    import torch

    shared = {"part": "single_turn", "n": args.n, "prompts_per_step": args.prompts,
              "max_completion_length": args.max_new_tokens, "temperature": args.temperature,
              "minibatches": args.minibatches, "kl_coef (TRL beta)": loss.kl_coef,
              "clip": loss.clip_low, "aggregation": f"{loss.aggregation} (TRL {trl_loss_type})",
              "lr": config.optimizer.lr, "prompt_tokens_mean": round(float(np.mean(
                  [len(tokenizer.encode(p)) for p in prompts])), 1),
              "loss": loss.to_dict()}
    out = [
        {**shared, "framework": "seeker_jax",
         "first_iteration_s (compiles, excluded)": round(ours_rows[0]["iteration_s"], 2),
         **summary(ours_rows[1:]), "rollout": config.rollout.to_dict()},
        {**shared, "framework": "trl", "trl": __import__("trl").__version__,
         "torch": torch.__version__, "transformers": __import__("transformers").__version__,
         "first_iteration_s (warm-up, excluded)": round(trl_rows[0]["iteration_s"], 2),
         **summary(trl_rows[1:], split=("generate_s", "reward_s", "logprobs_s", "update_s"))}]
    ratio = {"part": "single_turn", "ratio": "seeker_jax / trl",
             "episodes_per_s": round(out[0]["episodes_per_s"] / out[1]["episodes_per_s"], 3),
             "policy_tokens_per_s": round(out[0]["policy_tokens_per_s"]
                                          / out[1]["policy_tokens_per_s"], 3)}
    return [*out, ratio]


def threads() -> dict[str, Any]:
    import jax
    import torch

    return {"threads": {"torch_intra_op": torch.get_num_threads(),
                        "torch_inter_op": torch.get_num_interop_threads(),
                        "xla_cpu (os.cpu_count, XLA's default)": os.cpu_count(),
                        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
                        "jax_devices": [str(d) for d in jax.devices()]}}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", default="", help="our checkpoint (a `seeker-jax sft` workdir or "
                   "converted folder); default: a tiny random one made in the workdir")
    p.add_argument("--workdir", default="", help="default: a temporary folder")
    p.add_argument("--iters", type=int, default=3, help="timed iterations after the first")
    p.add_argument("--n", type=int, default=4, help="samples per prompt (num_generations)")
    p.add_argument("--prompts", type=int, default=2, help="prompts per iteration")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--max-turns", type=int, default=3, help="agentic part's model turns")
    p.add_argument("--minibatches", type=int, default=2)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--synth-num", type=int, default=16, help="records in the synthetic world")
    p.add_argument("--script", choices=("crop", "none"), default="crop",
                   help="agentic part: force each episode's first turn to a crop_video call "
                   "(a random model never calls tools), or sample every turn")
    p.add_argument("--parts", default="agentic,single_turn")
    p.add_argument("--quick", action="store_true", help="tiny settings: a smoke run")
    p.add_argument("--json", default="", help="also write the printed JSON rows to this file "
                   "as one JSON object (bench/run_all.py reads it)")
    args = p.parse_args(argv)
    if args.quick:
        args.iters, args.n, args.prompts, args.max_new_tokens = 1, 2, 2, 48  # the crop fits
        args.max_turns, args.minibatches, args.synth_num = 2, 1, 4
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        import jax

        # Identical computations compiled by both parts (or an earlier run in this workdir)
        # compile once; first iterations are excluded from the medians either way.
        jax.config.update("jax_compilation_cache_dir", os.path.join(workdir, "jax_cache"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        from seeker_jax.config import load_config
        from seeker_jax.data.synth import synthesize
        from seeker_jax.env.config import EnvConfig

        root = os.path.join(workdir, "world")
        if not os.path.isfile(os.path.join(root, "records", "train.array_record")):
            synthesize(root, args.synth_num, 0,
                       load_config(os.path.join(ROOT, "configs", "synth.py") + ":tiny"),
                       progress=False)
        env = EnvConfig.from_config(grpo_config(args, "", root, 1).env)
        ckpt = args.ckpt or tiny_checkpoint(workdir, env)
        rows = [{"config": "configs/grpo.py:tiny_synth", "ckpt": args.ckpt or
                 "tiny random (seeker_jax/checkpointing/tiny.py)", **vars(args), **threads()}]
        print(json.dumps(rows[-1]), flush=True)
        parts = args.parts.split(",")
        if "agentic" in parts:
            rows.append(agentic(args, ckpt, root, workdir))
            print(json.dumps(rows[-1]), flush=True)
        if "single_turn" in parts:
            for row in single_turn(args, ckpt, root, workdir):
                rows.append(row)
                print(json.dumps(row), flush=True)
        print(IDLE_NOTE, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bench": "grpo", "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
