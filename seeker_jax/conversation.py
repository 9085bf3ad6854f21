"""What a sampler row holds once generated: the conversation's tokens, policy mask, sampling
log-probs and pixels, and the full-forward recomputation of those log-probs (what a learner
does, and what checks that the cache path and the plain forward agree).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seeker_jax.models.chat import Segment, concat_segments
from seeker_jax.models.qwen3_vl.modeling import Qwen3VLForConditionalGeneration, forward
from seeker_jax.sampling import SamplingParams, learner_logprobs


@dataclass
class Turn:
    """One generated turn: ids (n,), their sampling log-probs (n,), and why it stopped."""

    ids: np.ndarray
    logprobs: np.ndarray
    stop_reason: str


@dataclass
class Conversation:
    """Everything one row holds: ids, types (0 text, 1 image, 2 video), policy_mask (1 where
    the policy sampled the token), logprobs (0 elsewhere), all (L,); the appended segments
    carry the pixels (`model_inputs` concatenates them)."""

    input_ids: np.ndarray
    mm_token_type_ids: np.ndarray
    policy_mask: np.ndarray
    logprobs: np.ndarray
    segments: list[Segment]

    def model_inputs(self) -> dict:
        """Keyword arguments for the model's forward over the whole conversation (batch 1)."""
        pixels = concat_segments(self.segments)
        return dict(input_ids=self.input_ids[None], mm_token_type_ids=self.mm_token_type_ids[None],
                    pixel_values=pixels.pixel_values, image_grid_thw=pixels.image_grid_thw,
                    pixel_values_videos=pixels.pixel_values_videos,
                    video_grid_thw=pixels.video_grid_thw)


def batch_conversations(convs: Sequence[Conversation], length: int | None = None,
                        pad_id: int = 0) -> dict:
    """Right-padded model inputs (B, L) for several conversations, pixels in row order.

    Pass `length` to pad to a fixed size (fewer compilations of the forward).
    """
    L = length or max(len(c.input_ids) for c in convs)
    B = len(convs)
    ids = np.full((B, L), pad_id, np.int32)
    types, mask = np.zeros((B, L), np.int32), np.zeros((B, L), np.int32)
    for b, c in enumerate(convs):
        n = len(c.input_ids)
        ids[b, :n], types[b, :n], mask[b, :n] = c.input_ids, c.mm_token_type_ids, 1
    pixels = concat_segments([s for c in convs for s in c.segments])
    return dict(input_ids=ids, attention_mask=mask, mm_token_type_ids=types,
                pixel_values=pixels.pixel_values, image_grid_thw=pixels.image_grid_thw,
                pixel_values_videos=pixels.pixel_values_videos,
                video_grid_thw=pixels.video_grid_thw)


@partial(jax.jit, static_argnames=("graphdef", "params", "chunk"))
def _token_logprobs(state, hidden, targets, *, graphdef, params, chunk):
    """Policy log-probs of targets (B, L) from hidden states (B, L, D), `chunk` positions at a
    time so that (B, chunk, V) logits are the most ever held."""
    model = nnx.merge(graphdef, state)
    B, L, D = hidden.shape
    h = hidden.reshape(B, L // chunk, chunk, D).swapaxes(0, 1)
    t = targets.reshape(B, L // chunk, chunk).swapaxes(0, 1)
    lp = jax.lax.map(lambda xs: learner_logprobs(model.logits(xs[0]), xs[1], params.temperature,
                                                 params.suppress_ids), (h, t))
    return lp.swapaxes(0, 1).reshape(B, L)


def recompute_logprobs(model: Qwen3VLForConditionalGeneration, convs: Sequence[Conversation],
                       params: SamplingParams, length: int | None = None, chunk: int = 128
                       ) -> list[np.ndarray]:
    """Log-probs (L,) of every conversation's tokens under the sampling policy, from one full
    forward (0 at the first token). Where policy_mask is 1 they must equal `logprobs`."""
    n = length or max(len(c.input_ids) for c in convs)
    L = -(-n // chunk) * chunk
    inputs = batch_conversations(convs, L)
    hidden = forward(model, **inputs, compute_logits=False).last_hidden_state
    targets = np.zeros_like(inputs["input_ids"])
    targets[:, :-1] = inputs["input_ids"][:, 1:]
    graphdef, state = nnx.split(model)
    lp = np.asarray(_token_logprobs(state, hidden, jnp.asarray(targets), graphdef=graphdef,
                                    params=params, chunk=min(chunk, L)))
    return [np.concatenate([[0.0], lp[b, :len(c.input_ids) - 1]]).astype(np.float32)
            for b, c in enumerate(convs)]


__all__ = ["Conversation", "Turn", "batch_conversations", "recompute_logprobs"]
