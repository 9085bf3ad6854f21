"""Accuracy: did the answer say what the reference says?

Multiple choice is a rule (env/answers.py's extractor, not the official `pred[0] == gt`, which
scores "(A)" wrong). Open-ended answers are scored by a judge model (rl/rewards/judge.py) on
the paper's rubric 1 / 0.5 / 0; its score is computed by `RewardModel` beforehand and passed in
as `judgement`. Without one (no judge configured, or the judge failed) a conservative rule
scores the answer: 1 when it states the reference, else 0.

An answer of `max_answer_chars` or more scores 0 whatever it says: long answers that list
every possibility are how a judge is farmed (the official code does the same).
"""
from __future__ import annotations

import re

from seeker_jax.env.answers import DEFAULT_LETTERS, choice_correct
from seeker_jax.env.parser import MAX_ANSWER_CHARS
from seeker_jax.rl.rewards.context import RewardContext
from seeker_jax.rl.rewards.registry import register_reward

LETTERS = "ABCDEFGH"
JUDGE_SCORES = (0.0, 0.5, 1.0)
_ARTICLES = {"a", "an", "the"}
_NEGATIONS = {"not", "no", "never", "none", "nothing", "nobody", "neither", "nor", "without"}
_NUMBERS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
_SLACK_WORDS = 8  # "it is red" states "red"; a paragraph that mentions red somewhere does not


def _usable(answer: str | None, max_answer_chars: int) -> bool:
    return bool(answer and answer.strip()) and len(answer) < max_answer_chars


def choice_letters(options: list[str] | None) -> str:
    """The letters of the choices: A.. for the given options, A-D when none are given."""
    if not options:
        return DEFAULT_LETTERS
    if len(options) > len(LETTERS):
        raise ValueError(f"accuracy_mc: {len(options)} options; at most {len(LETTERS)} supported")
    return LETTERS[:len(options)]


@register_reward("accuracy_mc")
def accuracy_mc(ctx: RewardContext, max_answer_chars: int = MAX_ANSWER_CHARS) -> float:
    """1 when the answer commits to the reference's letter ("B", "(B)", "b", "Answer: B",
    "B) red", the option's text), else 0 (no letter, two letters, a wrong one)."""
    if not _usable(ctx.answer, max_answer_chars):
        return 0.0
    letters = choice_letters(ctx.options)
    return float(choice_correct(ctx.answer, ctx.reference, letters, ctx.options))


def normalize_words(text: str) -> list[str]:
    """Lower case, punctuation and articles dropped, number words as digits."""
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return [_NUMBERS.get(w, w) for w in words if w not in _ARTICLES]


def _contains(words: list[str], part: list[str]) -> bool:
    n = len(part)
    return any(words[i:i + n] == part for i in range(len(words) - n + 1))


@register_reward("accuracy_open_rule")
def accuracy_open_rule(ctx: RewardContext, max_answer_chars: int = MAX_ANSWER_CHARS) -> float:
    """The fallback for open-ended answers: 1 when the answer is the reference (normalized),
    or a short sentence stating it ("it is red" for "red") without a negation the reference
    lacks; else 0. It never gives 0.5: partial credit needs a judge."""
    if not _usable(ctx.answer, max_answer_chars):
        return 0.0
    got, want = normalize_words(ctx.answer), normalize_words(ctx.reference)
    if not want:
        return 0.0
    if got == want:
        return 1.0
    negated = (set(got) & _NEGATIONS) - set(want)
    short = len(got) <= len(want) + _SLACK_WORDS
    return float(short and not negated and _contains(got, want))


@register_reward("accuracy_open")
def accuracy_open(ctx: RewardContext, judgement: float | None = None,
                  max_answer_chars: int = MAX_ANSWER_CHARS) -> float:
    """The judge's score (1 / 0.5 / 0) when there is one, else `accuracy_open_rule`."""
    if not _usable(ctx.answer, max_answer_chars):
        return 0.0
    if judgement is None:
        return accuracy_open_rule(ctx, max_answer_chars)
    if float(judgement) not in JUDGE_SCORES:
        raise ValueError(f"accuracy_open: judgement {judgement!r} is not one of {JUDGE_SCORES}")
    return float(judgement)


@register_reward("accuracy")
def accuracy(ctx: RewardContext, judgement: float | None = None,
             max_answer_chars: int = MAX_ANSWER_CHARS) -> float:
    """`accuracy_mc` for multiple choice (a judgement is ignored there), `accuracy_open`
    otherwise."""
    if ctx.question_form == "mc":
        return accuracy_mc(ctx, max_answer_chars)
    return accuracy_open(ctx, judgement, max_answer_chars)


__all__ = ["JUDGE_SCORES", "accuracy", "accuracy_mc", "accuracy_open", "accuracy_open_rule",
           "choice_letters", "normalize_words"]
