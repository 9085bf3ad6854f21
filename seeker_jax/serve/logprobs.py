"""Generated tokens' log-probs on the wire: OpenAI's `logprobs.content`, with `top_logprobs`.

Each token reads as `tokenizer.decode([id])` (special tokens kept), the same text for the
chosen token and for its alternatives; `bytes` are the token's own bytes. A byte-level BPE
token (Qwen's) may hold part of a UTF-8 character: its text is then "\\ufffd", but its bytes
are the real ones, so a client that joins the bytes of consecutive tokens gets the exact text
(OpenAI's reason for the field). The values are the sampler's learner log-probs (tempered,
untruncated; seeker_jax.generation.sampling), so a token's logprob equals its own entry in its list.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from seeker_jax.serve import protocol as P

# (ids (n,), log-probs (n,)) of one generated position, best first
Alternatives = tuple[np.ndarray, np.ndarray]


def _byte_decoder() -> dict[str, int]:
    """Byte-level BPE's printable stand-ins (GPT-2's bytes_to_unicode) -> the bytes."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {c: b for b, c in bytes_to_unicode().items()}


class TokenText:
    """id -> (text, bytes) for one tokenizer, memoised (a response repeats ids, and each
    position brings up to 20 alternatives)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._added = set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
        self._bytes_of = _byte_decoder()
        self._memo: dict[int, tuple[str, list[int]]] = {}

    def __call__(self, token_id: int) -> tuple[str, list[int]]:
        token_id = int(token_id)
        if token_id not in self._memo:
            text = self.tokenizer.decode([token_id], skip_special_tokens=False)
            piece = self.tokenizer.convert_ids_to_tokens(token_id)
            if (token_id not in self._added and isinstance(piece, str) and piece
                    and all(c in self._bytes_of for c in piece)):
                raw = [self._bytes_of[c] for c in piece]
            else:  # special / added tokens, and tokenizers that are not byte-level
                raw = list(text.encode("utf-8"))
            self._memo[token_id] = (text, raw)
        return self._memo[token_id]


def _wire(logprob: float) -> float:
    """A log-prob JSON can carry: -9999.0 (OpenAI's stand-in) for -inf or NaN."""
    logprob = float(logprob)
    return logprob if math.isfinite(logprob) else -9999.0


def choice_logprobs(token_text: TokenText, ids: Sequence[int], logprobs: Sequence[float],
                    alternatives: Sequence[Alternatives] | None, top_n: int) -> P.ChoiceLogprobs:
    """OpenAI's logprobs object for generated tokens: ids, logprobs (n,), and per position its
    alternatives (at least top_n of them; None only when top_n is 0)."""
    if top_n and (alternatives is None or len(alternatives) != len(ids)):
        raise ValueError(f"top_logprobs={top_n}: the sampler recorded alternatives for "
                         f"{0 if alternatives is None else len(alternatives)} of {len(ids)} "
                         "tokens")
    content = []
    for k, (i, lp) in enumerate(zip(ids, logprobs)):
        top = []
        if top_n:
            alt_ids, alt_lps = alternatives[k]
            for a, alp in zip(alt_ids[:top_n].tolist(), alt_lps[:top_n].tolist()):
                text, raw = token_text(a)
                top.append(P.TopLogprob(token=text, logprob=_wire(alp), bytes=raw))
        text, raw = token_text(i)
        content.append(P.TokenLogprob(token=text, logprob=_wire(lp), bytes=raw, top_logprobs=top))
    return P.ChoiceLogprobs(content=content)


__all__ = ["Alternatives", "TokenText", "choice_logprobs"]
