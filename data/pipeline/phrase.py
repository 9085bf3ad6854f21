"""Stage 4's optional LLM phrasing: the question with `<target>` replaced by a natural reference
to the drawn mark, written by an LLM over the OpenAI chat API instead of the template.

The template phrase ("the object inside the green triangle") is what the mark really is, so
the LLM is given it and asked only to make the sentence read naturally. Its reply is strict
JSON ({"question": ...}, pydantic) and is checked before it is used:
  - no `<target>` is left;
  - the words that identify the mark (its colour, its shape or kind, a set-of-mark label's
    number: `mark_words`) all occur, so the question still points at the drawn prompt;
  - every piece of the template outside the placeholder occurs unchanged (spaces and case
    aside), so the question itself, and so its answer, is not altered.
An invalid reply is answered with the error and asked again (llm.ask_json); when the attempts
run out the template's phrasing is used and the record says so (phrase_source
"template_fallback", phrase_error): a sample is never lost to a bad phrasing.
"""
from __future__ import annotations

import re
from typing import Any

import pydantic

from seeker_jax.data.pipeline.llm import ask_json, make_client
from seeker_jax.data.pipeline.stage import Rejected
from seeker_jax.data.visual_prompt import PLACEHOLDER, fill_placeholder

# Words of a template phrase that name the mark itself (kind or shape); colours are added
# from the rendered prompt's own colour name.
MARK_WORDS = frozenset(
    "rectangle box contour outline outlined ellipse circle oval triangle scribble point dot "
    "arrow mark marked label labeled labelled number".split())

SYSTEM = ("You rewrite one question about a video so that it reads naturally. The question "
          f"contains the placeholder {PLACEHOLDER}; replace it with a natural reference to the "
          "object that is marked in the video, using the given description of the mark (keep its "
          "colour and the kind of mark). Change nothing else in the question. Reply with only a "
          'JSON object: {"question": "<the rewritten question>"}.')


class PhraseReply(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    question: str


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def mark_words(phrase: str, color: str | None) -> list[str]:
    """The words a rewrite must keep: the mark's colour (when the phrase names it), the mark
    words of the template phrase, and its numbers (a set-of-mark label)."""
    text = phrase.lower()
    words = [w for w in re.findall(r"[a-z]+", text) if w in MARK_WORDS]
    if color and _norm(color) in _norm(text):
        words = [*_norm(color).split(), *words]
    return list(dict.fromkeys([*words, *re.findall(r"\d+", text)]))


def check_rewrite(template: str, phrase: str, color: str | None, question: str) -> str | None:
    """Why `question` is not an acceptable rewrite of `template` (None if it is)."""
    text = _norm(question)
    if PLACEHOLDER.lower() in text:
        return f"the question still contains {PLACEHOLDER}"
    missing = [w for w in mark_words(phrase, color) if not re.search(rf"\b{re.escape(w)}\b", text)]
    if missing:
        return f"the reference to the mark must keep the words {missing} (from {phrase!r})"
    for piece in template.split(PLACEHOLDER):
        piece = _norm(piece).strip(" ,;:")
        if len(piece) > 2 and piece not in text:
            return f"the rest of the question must stay as it is; {piece!r} is missing"
    return None


class LlmPhrase:
    """`stem(template, phrase, color)` -> (question stem, API tokens, source, error or None)."""

    def __init__(self, model: str, attempts: int = 3, json_mode: str | None = "json_schema",
                 max_tokens: int = 512, **client: Any):
        self.client, self.attempts, self.json_mode = make_client(model, **client), attempts, json_mode
        self.max_tokens = max_tokens

    def stem(self, template: str, phrase: str, color: str | None
             ) -> tuple[str, int, str, str | None]:
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Question: {template}\nThe mark: {phrase}"}]
        reply, tokens = ask_json(
            self.client, messages, PhraseReply,
            lambda r: check_rewrite(template, phrase, color, r.question),
            attempts=self.attempts, json_mode=self.json_mode, max_tokens=self.max_tokens)
        if isinstance(reply, Rejected):
            return fill_placeholder(template, phrase), tokens, "template_fallback", reply.detail
        return reply.question.strip(), tokens, "llm", None


__all__ = ["LlmPhrase", "MARK_WORDS", "PhraseReply", "check_rewrite", "mark_words"]
