"""A model that plays episodes: its weights, the tokenizer it was trained with and the
environment it was trained in, loaded once from `ckpt:PATH` or `hf:PATH`; and the rollout
engine (sampler + agent loop) that runs its episodes.

Why one loader: evaluation, `passk`, the demo and `serve` all need the three together. A
checkpoint carries its tokenizer and env config (frames, prompt profile, tool rounds) beside
the weights; a caller that reads the weights and takes the default environment silently shows
the model something it never trained on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from seeker_jax.agents.rollout import Rollout, RolloutConfig, env_sampler
from seeker_jax.env.config import EnvConfig
from seeker_jax.errors import UserError
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams
from seeker_jax.models.chat import ChatFormatter

SPEC_HELP = ("use ckpt:PATH (a seeker-jax checkpoint or workdir) or hf:PATH (a Hugging Face "
             "folder)")


@dataclass(frozen=True)
class Policy:
    """model: the Flax model; tokenizer: the one it was trained with; env: its environment
    (the checkpoint's saved env config; the default one for an HF folder, `saved_env` False)."""

    model: Any
    tokenizer: Any
    env: EnvConfig
    saved_env: bool = True

    def formatter(self) -> ChatFormatter:
        return self.env.formatter(self.tokenizer)

    def sampler(self, *, batch_size: int, max_len: int, temperature: float = 0.0,
                seed: int = 0, **kwargs: Any) -> Sampler:
        """A sampler for tool episodes (env_sampler): greedy at temperature 0, else sampled
        (reproducible from `seed`)."""
        return env_sampler(self.model, self.tokenizer, batch_size=batch_size, max_len=max_len,
                           params=SamplingParams(temperature), seed=seed, **kwargs)

    def rollout(self, *, batch_size: int, max_len: int, max_new_tokens: int,
                max_turns: int | None = None, temperature: float = 0.0, seed: int = 0,
                num_workers: int = 8, max_response_tokens: int = 0) -> Rollout:
        """The agent loop over `sampler(...)`; max_turns defaults to the environment's tool
        rounds plus the answer turn; max_response_tokens caps each episode after its prompt
        (0: only the row; agents/rollout.py)."""
        turns = self.env.max_rounds + 1 if max_turns is None else max_turns
        sampler = self.sampler(batch_size=batch_size, max_len=max_len, temperature=temperature,
                               seed=seed)
        return Rollout(sampler, RolloutConfig(max_new_tokens, turns, num_workers,
                                              max_response_tokens))


def load_policy(spec: str) -> Policy:
    """`ckpt:PATH` (our checkpoint, a manager root or a workdir: its tokenizer and env config
    come with it) or `hf:PATH` (a Hugging Face folder: its own tokenizer, the default env
    config). Raises UserError naming what is wrong."""
    kind, sep, path = spec.partition(":")
    if not sep or kind not in ("ckpt", "hf") or not path:
        raise UserError(f"--model {spec!r}: {SPEC_HELP}")
    if not os.path.exists(path):
        raise UserError(f"--model {spec!r}: {path} does not exist")
    if kind == "ckpt":
        from seeker_jax.checkpointing.checkpoint import load_model, read_env_config, read_tokenizer

        return Policy(load_model(path), read_tokenizer(path), read_env_config(path))
    from seeker_jax.models.qwen3_vl import from_pretrained
    from seeker_jax.models.tokenizer import load_tokenizer

    return Policy(from_pretrained(path), load_tokenizer(path), EnvConfig(), saved_env=False)


__all__ = ["Policy", "SPEC_HELP", "load_policy"]
