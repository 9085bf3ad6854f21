"""Stage 1: keep QA pairs about a concrete visual entity (one that could be segmented).

`LlmTextFilter` asks an LLM for a strict JSON verdict; `RuleTextFilter` is a rule-based
stand-in for runs without an LLM (a definite noun phrase that is not the video itself).
"""
from __future__ import annotations

import re
from typing import Any

import pydantic

from seeker_jax.data.pipeline.llm import ask_json, make_client
from seeker_jax.data.pipeline.readers import options_text
from seeker_jax.data.pipeline.stage import Outcome, Rejected

SYSTEM = (
    "You filter video question-answer pairs. Keep a pair only if its question is about one "
    "concrete visual entity in the video (an object, person or animal that could be segmented "
    "in the frames), not about the whole video, the camera, audio or abstract ideas. Reply "
    'with only a JSON object: {"keep": true or false, "entity": the words of the question that '
    'name the entity (empty if none), "reason": a short reason}.')

_DET = re.compile(r"\b(the|a|an)\s+([a-z][a-z\s-]*)", re.I)
PHRASE_END = frozenset(
    "at in on of to from with by for into onto over under near when while after before and or "
    "but is are was were be does do did has have go goes went move moves moving that which who "
    "whose between during than as it its".split())
NOT_ENTITIES = frozenset(
    "video clip scene camera footage film movie narrator audio sound music background "
    "beginning start end middle time moment purpose idea theme topic story overall".split())


class TextVerdict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    keep: bool
    entity: str = ""
    reason: str = ""


def _qa_text(sample: dict[str, Any]) -> str:
    return (f"Question: {sample['question']}{options_text(sample.get('options') or {})}\n"
            f"Answer: {sample['answer']}")


class LlmTextFilter:
    name, holds_model = "text_filter", False

    def __init__(self, model: str, attempts: int = 3, json_mode: str | None = "json_schema",
                 max_tokens: int = 512, **client: Any):
        self.client, self.attempts, self.json_mode = make_client(model, **client), attempts, json_mode
        self.max_tokens = max_tokens

    def check(self, sample: dict[str, Any]):
        def check(v: TextVerdict) -> str | None:
            if v.keep and not v.entity.strip():
                return "keep is true but entity is empty"
            if v.keep and v.entity.strip().lower() not in sample["question"].lower():
                return f"entity {v.entity!r} does not occur in the question"
            return None
        return check

    def __call__(self, sample: dict[str, Any]) -> Outcome:
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": _qa_text(sample)}]
        verdict, tokens = ask_json(self.client, messages, TextVerdict, self.check(sample),
                                   attempts=self.attempts, json_mode=self.json_mode,
                                   max_tokens=self.max_tokens)
        if isinstance(verdict, Rejected):
            return Outcome(verdict, tokens)
        if not verdict.keep:
            return Outcome(Rejected("no_visual_entity", verdict.reason[:200]), tokens)
        return Outcome({**sample, "entity": verdict.entity.strip()}, tokens)


def rule_entity(question: str) -> str | None:
    """The first noun phrase 'the/a/an w1 .. wn' (up to 4 words, ending before a preposition,
    verb or conjunction) whose words do not name the video itself."""
    for m in _DET.finditer(question):
        words = []
        for word in m.group(2).split()[:4]:
            if word.lower() in PHRASE_END:
                break
            words.append(word)
        if words and not ({w.lower() for w in words} & NOT_ENTITIES):
            return f"{m.group(1)} {' '.join(words)}"
    return None


class RuleTextFilter:
    name, holds_model = "text_filter", False

    def __init__(self):
        pass

    def __call__(self, sample: dict[str, Any]) -> Outcome:
        entity = rule_entity(sample["question"])
        if entity is None:
            return Outcome(Rejected("no_visual_entity", "rule: no noun phrase naming an "
                                    "entity other than the video itself"))
        return Outcome({**sample, "entity": entity})
