"""`--model ckpt:PATH | hf:PATH` -> a ChatService (model, tokenizer, env config, engine)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from seeker_jax.agents.policy import load_policy
from seeker_jax.serve.engine import Engine
from seeker_jax.serve.media import MediaLimits
from seeker_jax.serve.serving import ChatService


@dataclass(frozen=True)
class ServeConfig:
    """Server settings (the `seeker-jax serve` flags). model_name None: the folder's name."""

    model_name: str | None = None
    batch_size: int = 8
    max_len: int = 4096
    decode_steps: int = 8
    max_chunk: int = 512
    default_max_tokens: int = 512
    prefix_cache: bool = True
    limits: MediaLimits = MediaLimits()


def build_service(spec: str, config: ServeConfig = ServeConfig()) -> ChatService:
    """"ckpt:PATH" (our checkpoint or workdir: its env config gives the tokenizer and the video
    sampling) or "hf:PATH" (an HF folder: its own tokenizer, the default env config) as a
    chat service (agents/policy.py's load_policy reads it)."""
    policy = load_policy(spec)
    model, tokenizer, env = policy.model, policy.tokenizer, policy.env
    engine = Engine(model, tokenizer, batch_size=config.batch_size, max_len=config.max_len,
                    decode_steps=config.decode_steps, max_chunk=config.max_chunk,
                    prefix_cache=config.prefix_cache)
    name = config.model_name or os.path.basename(os.path.normpath(spec.partition(":")[2]))
    return ChatService(engine, env, name, config.limits, config.default_max_tokens)
