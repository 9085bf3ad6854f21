"""`--model ckpt:PATH | hf:PATH` -> a ChatService (model, tokenizer, env config, engine)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from seeker_jax.errors import UserError
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


def load_spec(spec: str):
    """(model, tokenizer, env config) of "ckpt:PATH" (our checkpoint or workdir: its
    env_config.json gives the tokenizer and the video sampling) or "hf:PATH" (an HF folder:
    its own tokenizer, the default env config)."""
    from seeker_jax.env.config import EnvConfig

    kind, sep, path = spec.partition(":")
    if not sep or kind not in ("ckpt", "hf") or not path:
        raise UserError(f"--model {spec!r}: use ckpt:PATH (a seeker-jax checkpoint or "
                         "workdir) or hf:PATH (a Hugging Face folder)")
    if not os.path.exists(path):
        raise UserError(f"--model {spec!r}: {path} does not exist")
    if kind == "ckpt":
        from seeker_jax.checkpointing.checkpoint import load_model, read_env_config, read_tokenizer

        return load_model(path), read_tokenizer(path), read_env_config(path)
    from seeker_jax.models.qwen3_vl import from_pretrained
    from seeker_jax.models.tokenizer import load_tokenizer

    return from_pretrained(path), load_tokenizer(path), EnvConfig()


def build_service(spec: str, config: ServeConfig = ServeConfig()) -> ChatService:
    model, tokenizer, env = load_spec(spec)
    engine = Engine(model, tokenizer, batch_size=config.batch_size, max_len=config.max_len,
                    decode_steps=config.decode_steps, max_chunk=config.max_chunk,
                    prefix_cache=config.prefix_cache)
    name = config.model_name or os.path.basename(os.path.normpath(spec.partition(":")[2]))
    return ChatService(engine, env, name, config.limits, config.default_max_tokens)
