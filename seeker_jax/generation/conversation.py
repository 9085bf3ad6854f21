"""What a sampler row holds once generated: the conversation's tokens, policy mask, sampling
log-probs and pixels, and the full-forward recomputation of those log-probs (what a learner
does, and what checks that the cache path and the plain forward agree).

A Conversation collates like any other conversation (seeker_jax.data.batch.collate): its
policy_mask is the batch's loss_mask, its segments' pixels are its pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seeker_jax.data.batch import collate
from seeker_jax.training.losses import lm_head_weight, token_logprobs
from seeker_jax.models.chat import Segment, concat_segments
from seeker_jax.models.qwen3_vl.modeling import Qwen3VLForConditionalGeneration, forward
from seeker_jax.generation.sampling import SamplingParams, learner_logprobs


@dataclass
class Turn:
    """One generated turn: ids (n,), their sampling log-probs (n,), and why it stopped; with
    a sampler's top_n > 0, each position's top_n alternatives under the same distribution,
    best first: top_ids (n, top_n) int32 and top_logprobs (n, top_n) float32 (else None)."""

    ids: np.ndarray
    logprobs: np.ndarray
    stop_reason: str
    top_ids: np.ndarray | None = None
    top_logprobs: np.ndarray | None = None


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

    @property
    def loss_mask(self) -> np.ndarray:
        """What a batch learns from a rollout: the policy's tokens (collate reads loss_mask)."""
        return self.policy_mask

    def _pixels(self, name: str):
        return getattr(concat_segments(self.segments), name)

    pixel_values = property(lambda self: self._pixels("pixel_values"))
    image_grid_thw = property(lambda self: self._pixels("image_grid_thw"))
    pixel_values_videos = property(lambda self: self._pixels("pixel_values_videos"))
    video_grid_thw = property(lambda self: self._pixels("video_grid_thw"))

    def model_inputs(self) -> dict:
        """Keyword arguments for the model's forward over the whole conversation (batch 1)."""
        pixels = concat_segments(self.segments)
        return dict(input_ids=self.input_ids[None], mm_token_type_ids=self.mm_token_type_ids[None],
                    pixel_values=pixels.pixel_values, image_grid_thw=pixels.image_grid_thw,
                    pixel_values_videos=pixels.pixel_values_videos,
                    video_grid_thw=pixels.video_grid_thw)


def batch_conversations(convs: Sequence[Conversation], length: int | None = None) -> dict:
    """Right-padded model inputs (B, L) for several conversations, pixels in row order: the
    forward's keyword arguments of `collate(convs, length)` (the one batch path)."""
    return collate(convs, length).model_inputs()


def _temperature_only(params: SamplingParams) -> bool:
    """Whether the learner's distribution is plain softmax(logits / T) (no suppressed ids;
    top-k / top-p never enter it): then token_logprobs computes it chunk by chunk."""
    return not params.suppress_ids


@partial(jax.jit, static_argnames=("graphdef", "temperature", "suppress_ids", "chunk"))
def _suppressed_logprobs(state, hidden, targets, *, graphdef, temperature, suppress_ids, chunk):
    """sampling.learner_logprobs with suppressed ids, `chunk` loss positions at a time:
    hidden (B, K, D), targets (B, K)."""
    model = nnx.merge(graphdef, state)
    B, K, D = hidden.shape
    h = hidden.reshape(B, K // chunk, chunk, D).swapaxes(0, 1)
    t = targets.reshape(B, K // chunk, chunk).swapaxes(0, 1)
    lp = jax.lax.map(lambda xs: learner_logprobs(model.logits(xs[0]), xs[1], temperature,
                                                 suppress_ids), (h, t))
    return lp.swapaxes(0, 1).reshape(B, K)


@partial(jax.jit, static_argnames=("graphdef", "temperature", "chunk"))
def _tempered_logprobs(state, hidden, targets, *, graphdef, temperature, chunk):
    model = nnx.merge(graphdef, state)
    weight, transposed = lm_head_weight(model)
    return token_logprobs(hidden, weight, transposed, targets, chunk, temperature)


def recompute_logprobs(model: Qwen3VLForConditionalGeneration, convs: Sequence[Conversation],
                       params: SamplingParams, length: int | None = None, chunk: int = 128
                       ) -> list[np.ndarray]:
    """Learner log-probs (L,) of every conversation's policy tokens, from one full forward over
    `collate(convs, length)` (0 where policy_mask is 0): the tempered, untruncated distribution
    (sampling.learner_logprobs), which is what the sampler records. Where policy_mask is 1
    they must equal `logprobs`.

    Only the loss positions (the tokens before policy tokens) go through the vocabulary
    projection. Greedy tokens are scored at temperature 1 (as the sampler records them).
    """
    batch = collate(convs, length, multiple=chunk)
    inputs = batch.model_inputs()
    hidden = forward(model, **inputs, compute_logits=False).last_hidden_state
    index = jnp.asarray(batch.loss_index)
    h = jnp.take_along_axis(hidden, index[..., None], axis=1)
    targets = jnp.take_along_axis(jnp.asarray(batch.input_ids), index + 1, axis=1)
    graphdef, state = nnx.split(model)
    K = index.shape[1]
    if _temperature_only(params):
        lp = _tempered_logprobs(state, h, targets, graphdef=graphdef, chunk=min(chunk, K),
                                temperature=1.0 if params.greedy else float(params.temperature))
    else:
        lp = _suppressed_logprobs(state, h, targets, graphdef=graphdef, chunk=min(chunk, K),
                                  temperature=1.0 if params.greedy else float(params.temperature),
                                  suppress_ids=tuple(params.suppress_ids))
    lp = np.asarray(lp)
    out = []
    for b, c in enumerate(convs):
        row = np.zeros(len(c.input_ids), np.float32)
        n = int(batch.loss_weight[b].sum())
        row[batch.loss_index[b, :n] + 1] = lp[b, :n]
        out.append(row)
    return out


__all__ = ["Conversation", "Turn", "batch_conversations", "recompute_logprobs"]
