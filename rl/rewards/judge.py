"""The judge for open-ended answers: a model behind an OpenAI-compatible chat API (vLLM, SGLang,
any gateway) scores an answer against the reference on the paper's rubric, 1 / 0.5 / 0.

The HTTP side (timeout, retries with backoff, bounded concurrency, counters) is
data/openai_api.py's ChatClient. On top of it the judge keeps:
  - its own on-disk cache keyed by (judge model, prompt version, question, reference, answer)
    that stores only *parsed* scores: a garbage reply is never cached, and a rerun of the same
    episodes sends no request;
  - strict parsing: the reply must be a bare score ("1", "0.5", "0") or end with a line
    "Judgement: <score>" (one such line). "I give it 1 point" is not a 1, "Judgement: 10" is
    not a 1, and a reply that merely contains a "1" is nothing;
  - `max_failures` attempts per answer (an attempt fails when the client gives up or the reply
    does not parse); after them the answer falls back to the rule (None is returned) and the
    fallback is counted. Nothing here raises on judge trouble: the rollout never dies.

The prompt is ours (the public code's is not reproduced); it states the rubric and asks for one
line "Judgement: 1", "Judgement: 0.5" or "Judgement: 0".
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from seeker_jax.data.openai_api import ApiError, ChatClient

log = logging.getLogger(__name__)

PROMPT_VERSION = "seeker-judge-v1"
SYSTEM_PROMPT = "You grade short answers to questions about videos. You are strict and fair."
RUBRIC = """Compare the model's answer with the reference answer to the question.

Scoring rubric:
- 1: the answer means the same as the reference ("red" and "it is red" agree).
- 0.5: the answer is partly right: it gets some key points of the reference but misses or
  gets wrong others ("a cup" when the reference is "a cup and a plate").
- 0: the answer contradicts the reference, misses its point, or hedges between options.

The reference is always right. Judge only the meaning, not the wording or the length.
Reply with exactly one line and nothing else: "Judgement: 1", "Judgement: 0.5" or
"Judgement: 0"."""

Item = tuple[str, str, str]  # (question, reference, answer)

_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)
_SCORE = r"(\d+(?:\.\d+)?|\.\d+)"
_BARE = re.compile(rf"^{_SCORE}$")
_LINE = re.compile(rf"^[*_\s]*judge?ment[*_\s]*[:=][*_\s]*{_SCORE}[*_\s]*\.?$", re.I)
_MENTION = re.compile(r"judge?ment\s*[*_]*\s*[:=]", re.I)
SCORES = (0.0, 0.5, 1.0)


def judge_messages(question: str, reference: str, answer: str) -> list[dict]:
    """The chat request of one judgement: a pure function of the three texts."""
    user = (f"{RUBRIC}\n\n[Question]\n{question.strip()}\n\n[Reference answer]\n"
            f"{reference.strip()}\n\n[Model answer]\n{answer.strip()}")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _score(text: str) -> float | None:
    value = float(text)
    return value if value in SCORES else None


def parse_judgement(reply: str) -> float | None:
    """1.0 / 0.5 / 0.0 from a reply that is a bare score or ends with exactly one
    "Judgement: <score>" line (a leading <think> block is skipped); None otherwise."""
    text = _THINK.sub("", reply or "", count=1).strip()
    if not text:
        return None
    bare = _BARE.match(text)
    if bare:
        return _score(bare.group(1))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if sum(bool(_MENTION.search(line)) for line in lines) != 1:
        return None
    last = _LINE.match(lines[-1])
    return _score(last.group(1)) if last else None


class JudgeCache:
    """Parsed scores on disk, one small JSON file per key (atomic writes; a torn file reads as
    a miss)."""

    def __init__(self, root: str | os.PathLike, model: str):
        self.root, self.model = Path(root), model

    def key(self, question: str, reference: str, answer: str) -> str:
        blob = json.dumps([PROMPT_VERSION, self.model, question, reference, answer],
                          ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, item: Item) -> float | None:
        path = self._path(self.key(*item))
        try:
            return _score(str(json.loads(path.read_text())["score"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, item: Item, score: float) -> None:
        path = self._path(self.key(*item))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"score": score, "model": self.model,
                                   "prompt": PROMPT_VERSION}))
        os.replace(tmp, path)


@dataclass
class JudgeStats:
    """attempts: judge requests made (each may be several HTTP calls: see the client's
    counters); judged: answers scored by the judge; cache_hits; failures: failed attempts
    (api_errors + unparsable + errors); fallbacks: answers that fell back to the rule."""

    attempts: int = 0
    judged: int = 0
    cache_hits: int = 0
    failures: int = 0
    api_errors: int = 0
    unparsable: int = 0
    errors: int = 0
    fallbacks: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items() if k != "lock"}


class Judge:
    """Scores (question, reference, answer) items; None means "fall back to the rule"."""

    def __init__(self, client: ChatClient, *, temperature: float = 0.3, max_tokens: int = 64,
                 max_failures: int = 3, cache_dir: str | os.PathLike | None = None):
        if max_failures < 1:
            raise ValueError(f"judge: max_failures must be >= 1, got {max_failures}")
        self.client = client
        self.params = {"temperature": float(temperature), "max_tokens": int(max_tokens)}
        self.max_failures = int(max_failures)
        self.cache = JudgeCache(cache_dir, client.model) if cache_dir else None
        self.stats = JudgeStats()

    def _attempt(self, messages: list[dict]) -> float | None:
        """One request; its parsed score or None (the failure is counted)."""
        self.stats.add(attempts=1)
        try:
            reply = self.client.chat(messages, **self.params).text
        except ApiError as e:
            self.stats.add(failures=1, api_errors=1)
            log.warning("judge: %s", e)
            return None
        except Exception as e:  # noqa: BLE001 - judge trouble must never end a rollout
            self.stats.add(failures=1, errors=1)
            log.warning("judge: unexpected %s: %s", type(e).__name__, e)
            return None
        score = parse_judgement(reply)
        if score is None:
            self.stats.add(failures=1, unparsable=1)
            log.warning("judge: unparsable reply %r", reply[:120])
        return score

    def score(self, question: str, reference: str, answer: str) -> float | None:
        item = (question, reference, answer)
        if self.cache is not None:
            hit = self.cache.get(item)
            if hit is not None:
                self.stats.add(cache_hits=1)
                return hit
        messages = judge_messages(*item)
        for _ in range(self.max_failures):
            score = self._attempt(messages)
            if score is not None:
                self.stats.add(judged=1)
                if self.cache is not None:
                    try:
                        self.cache.put(item, score)
                    except OSError as e:
                        log.warning("judge: cache write failed (%s)", e)
                return score
        self.stats.add(fallbacks=1)
        return None

    def score_many(self, items: Sequence[Item]) -> list[float | None]:
        """All items, up to the client's max_concurrency at once, in order."""
        if not items:
            return []
        with ThreadPoolExecutor(min(self.client.max_concurrency, len(items))) as pool:
            return list(pool.map(lambda it: self.score(*it), items))

    def metrics(self) -> dict[str, float]:
        """The judge's counters and its client's (http_calls, http_retries, ...)."""
        client = self.client.stats.as_dict()
        return {**self.stats.as_dict(), "http_calls": float(client["calls"]),
                "http_retries": float(client["retries"]),
                "http_failures": float(client["failures"]),
                "max_in_flight": float(client["max_in_flight"]),
                "seconds": float(client["seconds"])}


__all__ = ["Judge", "JudgeCache", "JudgeStats", "PROMPT_VERSION", "RUBRIC", "judge_messages",
           "parse_judgement"]
