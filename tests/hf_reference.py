"""Shared test helpers: the tiny random transformers Qwen3-VL (models/qwen3_vl/tiny.py) and
matching inputs (seeker_jax/checkpointing/tiny.py), under the names the tests use.

The reference model is built in-process from the tiny config, saved with `save_pretrained`,
and loaded into Flax with `from_pretrained`: the same path a user's checkpoint takes.
"""
from __future__ import annotations

import numpy as np
import torch

from seeker_jax.checkpointing import parity
from seeker_jax.checkpointing.parity import Inputs
from seeker_jax.checkpointing.tiny import save_tiny_checkpoint, tiny_inputs, tiny_segment
from seeker_jax.models.qwen3_vl.tiny import (IMAGE, TEXT_VOCAB, VEND, VIDEO, VSTART,  # noqa: F401
                                             build_hf, save_tiny_hf, tiny_hf_config)

make_inputs = tiny_inputs
segment = tiny_segment
save_tiny_qwen_checkpoint = save_tiny_checkpoint
hf_logits = parity.torch_logits


def torch_kwargs(inputs: Inputs) -> dict:
    return {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.arrays().items()}
