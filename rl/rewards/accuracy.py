"""Accuracy: did the answer say what the reference says?

Multiple choice is a rule (env/answers.py's extractor, not the official `pred[0] == gt`, which
scores "(A)" wrong). Open-ended answers are scored by a judge model (rl/rewards/judge.py) on
the paper's rubric 1 / 0.5 / 0; its score is computed by `RewardModel` beforehand and passed in
as `judgement`. Without one (no judge configured, or the judge failed) a conservative rule
scores the answer: 1 when it plainly states the reference and nothing else, else 0 (a hedge,
a list, a range or another candidate value scores 0: env/answers.py's `states_reference`, the
same extractor evaluation and `passk` use).

An answer of `max_answer_chars` or more scores 0 whatever it says: long answers that list
every possibility are how a judge is farmed (the official code does the same).
"""
from __future__ import annotations

import re

from seeker_jax.env.answers import DEFAULT_LETTERS, choice_correct, states_reference
from seeker_jax.env.parser import MAX_ANSWER_CHARS
from seeker_jax.rl.rewards.context import RewardContext
from seeker_jax.rl.rewards.registry import register_reward

LETTERS = "ABCDEFGH"
JUDGE_SCORES = (0.0, 0.5, 1.0)


def answer_usable(answer: str | None, max_answer_chars: int) -> bool:
    """Worth scoring (and sending to a judge): not empty and under the length limit."""
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
    if not answer_usable(ctx.answer, max_answer_chars):
        return 0.0
    letters = choice_letters(ctx.options)
    options = labeled_options(ctx.options, letters) if ctx.options else None
    return float(choice_correct(ctx.answer, ctx.reference, letters, options))


def labeled_options(options: list[str], letters: str) -> list[str]:
    """Options as "B. blue". env/answers.py strips a leading letter label from each option
    before it compares texts, and on a bare option it strips the first letter of the word
    itself ("blue" -> "lue"); an explicit label keeps the text whole. Options that already
    carry their label are kept."""
    return [o if re.match(rf"^\s*(?:[\(\[]{l}[\)\]]|{l}\s*[.:)])", o, re.I) else f"{l}. {o}"
            for l, o in zip(letters, options)]


@register_reward("accuracy_open_rule")
def accuracy_open_rule(ctx: RewardContext, max_answer_chars: int = MAX_ANSWER_CHARS) -> float:
    """The fallback for open-ended answers: 1 when the answer plainly states the reference
    ("it is red" for "red"), else 0: a negation, a hedge ("red or blue", "maybe red"), a list
    ("red, blue"), a range ("3-4") or any word beyond the reference, filler and the question
    restated (env/answers.py's states_reference). It never gives 0.5: partial credit needs a
    judge."""
    if not answer_usable(ctx.answer, max_answer_chars):
        return 0.0
    return float(states_reference(ctx.answer, ctx.reference, ctx.question))


@register_reward("accuracy_open")
def accuracy_open(ctx: RewardContext, judgement: float | None = None,
                  max_answer_chars: int = MAX_ANSWER_CHARS) -> float:
    """The judge's score (1 / 0.5 / 0) when there is one, else `accuracy_open_rule`."""
    if not answer_usable(ctx.answer, max_answer_chars):
        return 0.0
    if judgement is None:
        return accuracy_open_rule(ctx, max_answer_chars)
    if float(judgement) not in JUDGE_SCORES:
        raise ValueError(f"accuracy_open: judgement {judgement!r} is not one of {JUDGE_SCORES}")
    return float(judgement)


@register_reward("accuracy")
def accuracy_reward(ctx: RewardContext, judgement: float | None = None,
             max_answer_chars: int = MAX_ANSWER_CHARS) -> float:
    """`accuracy_mc` for multiple choice (a judgement is ignored there), `accuracy_open`
    otherwise."""
    if ctx.question_form == "mc":
        return accuracy_mc(ctx, max_answer_chars)
    return accuracy_open(ctx, judgement, max_answer_chars)


__all__ = ["JUDGE_SCORES", "accuracy_mc", "accuracy_open", "accuracy_open_rule",
           "accuracy_reward", "answer_usable", "choice_letters", "labeled_options"]
