"""TRL's GRPOTrainer as bench/grpo.py's single-turn reference: built on an HF folder, run one
generation batch at a time, timed by parts.

TRL 1.16 drives its own loop (`trainer.train()`), so the interleaving happens inside it: a
TrainerCallback closes a TRL iteration after `steps_per_generation` optimizer steps (one
generation batch) and then calls `between()` (our side's iteration), so the two frameworks
alternate A B A B in one process.

The time split wraps the trainer's own methods on the instance (TRL calls them through self):
  generate_s   `_generate` (transformers `generate`, padded batch, KV cache)
  reward_s     `_calculate_rewards`
  logprobs_s   `_get_per_token_logps_and_entropies` called inside
               `_generate_and_score_completions` (reference and old log-probs)
  update_s     the rest of the iteration: the loss forward, backward, clipping, AdamW step
Policy tokens are the completion tokens (completion_mask) of the generation batch.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import torch
import transformers
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer


def trl_args(out_dir: str, *, n: int, prompts_per_step: int, minibatches: int,
             max_new_tokens: int, temperature: float, beta: float, epsilon: float,
             loss_type: str, lr: float, clip_norm: float, steps: int, seed: int) -> GRPOConfig:
    """GRPOConfig matching our rollout/loss/optimizer settings: one generation batch of
    prompts_per_step * n completions, split into `minibatches` optimizer steps (TRL's
    steps_per_generation); fp32 on the CPU; no gradient checkpointing (ours: remat none)."""
    rows = prompts_per_step * n
    if rows % minibatches:
        raise ValueError(f"TRL needs prompts_per_step * n = {rows} divisible by minibatches "
                         f"{minibatches} (per_device_train_batch_size)")
    return GRPOConfig(
        output_dir=out_dir, use_cpu=True, bf16=False, fp16=False, seed=seed,
        per_device_train_batch_size=rows // minibatches, steps_per_generation=minibatches,
        gradient_accumulation_steps=1, num_generations=n, num_iterations=1,
        max_completion_length=max_new_tokens, temperature=temperature, top_p=1.0, top_k=0,
        beta=beta, epsilon=epsilon, loss_type=loss_type, learning_rate=lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=clip_norm,
        adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, max_steps=steps * minibatches,
        gradient_checkpointing=False, shuffle_dataset=False, report_to="none",
        save_strategy="no", logging_steps=10**9, disable_tqdm=True, log_completions=False,
        model_init_kwargs={"dtype": torch.float32}, dataloader_num_workers=0)


def write_generation_config(hf_dir: str, stop_ids: Sequence[int], pad_id: int) -> None:
    """TRL stops on the tokenizer's eos plus the model's generation_config eos ids: make those
    our sampler's stop tokens (<|im_end|>, <|endoftext|>)."""
    transformers.GenerationConfig(eos_token_id=list(stop_ids), pad_token_id=pad_id
                                  ).save_pretrained(hf_dir)


class _Timed:
    """Wraps a bound method; adds its seconds to `times[key]` (only while `when()` holds)."""

    def __init__(self, fn: Callable, times: dict, key: str, when: Callable[[], bool] = lambda: True):
        self.fn, self.times, self.key, self.when = fn, times, key, when

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            if self.when():
                self.times[self.key] = self.times.get(self.key, 0.0) + time.perf_counter() - t0


class TrlBench:
    """GRPOTrainer over a prompt list; `run(between)` trains and returns one row per
    generation batch (iteration): its seconds by part, episodes and policy tokens."""

    def __init__(self, hf_dir: str, tokenizer, prompts: Sequence[str],
                 reward: Callable[[str, int], float], records: Sequence[int], args: GRPOConfig):
        def reward_fn(prompts, completions, record, **_):
            return [reward(c, int(r)) for c, r in zip(completions, record)]

        reward_fn.__name__ = "text_reward"
        data = Dataset.from_dict({"prompt": list(prompts), "record": list(records)})
        self.trainer = GRPOTrainer(model=hf_dir, reward_funcs=reward_fn, args=args,
                                   train_dataset=data, processing_class=tokenizer)
        self.steps_per_iteration = args.steps_per_generation
        self.times: dict[str, float] = {}
        self.tokens = 0
        self._scoring = False
        self._wrap()

    def _wrap(self) -> None:
        t, times = self.trainer, self.times
        t._generate = _Timed(t._generate, times, "generate_s")
        t._calculate_rewards = _Timed(t._calculate_rewards, times, "reward_s")
        t._get_per_token_logps_and_entropies = _Timed(
            t._get_per_token_logps_and_entropies, times, "logprobs_s", lambda: self._scoring)
        score = t._generate_and_score_completions

        def scored(*args, **kwargs):
            self._scoring = True
            t0 = time.perf_counter()
            try:
                out = score(*args, **kwargs)
            finally:
                self._scoring = False
                times["score_s"] = times.get("score_s", 0.0) + time.perf_counter() - t0
            self.tokens += int(out["completion_mask"].sum())
            self.episodes = int(out["completion_mask"].shape[0])
            return out

        t._generate_and_score_completions = scored

    def run(self, between: Callable[[int], None]) -> list[dict[str, float]]:
        """Trains args.max_steps optimizer steps; after each generation batch's last step,
        records its row and calls between(iteration)."""
        rows: list[dict[str, float]] = []
        bench = self

        class Interleave(transformers.TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if state.global_step % bench.steps_per_iteration == 0:
                    bench.times.clear()
                    bench.tokens = 0
                    bench.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                if state.global_step % bench.steps_per_iteration:
                    return
                wall = time.perf_counter() - bench.start
                parts = {k: bench.times.get(k, 0.0) for k in
                         ("generate_s", "reward_s", "logprobs_s", "score_s")}
                rows.append({"iteration_s": wall, "episodes": bench.episodes,
                             "policy_tokens": bench.tokens, **parts,
                             "update_s": wall - parts["score_s"]})
                between(len(rows) - 1)

        self.trainer.add_callback(Interleave())
        self.trainer.train()
        return rows


__all__ = ["TrlBench", "trl_args", "write_generation_config"]
