"""Reading a multiple-choice letter out of a model's answer, robustly.

Why not `pred[0] == gt` (VideoSeeker's public reward and V2P-Bench's eval): models write
"(B)", "B.", "b", "Answer: B", "B) red", "The answer is B", or the option text itself.
The first character of "(B)" is "(", so that rule scores a right answer wrong. This module
finds the letter the answer commits to, and None when it commits to none or to several.

Rules, in order (the first that decides wins):
  1. an `<answer>...</answer>` inside the text narrows the search to its content;
  2. the whole answer is a letter, optionally in brackets or followed by "." / ")" / ":";
  3. a leading "answer", "the answer is", "option", "choice" (any case) is dropped, then 2
     is tried on the start ("B) red", "(B) red", "B. red", "B: red");
  4. exactly one standalone capital letter among the choices ("I pick C" -> C; "A or B" ->
     None; the article in "A man walks" is not a choice);
  5. the answer equals one option's text (case- and space-insensitive), given the options.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

from seeker_jax.env.parser import extract_answer

DEFAULT_LETTERS = "ABCD"
_PREFIX = re.compile(r"^\s*(?:the\s+)?(?:final\s+|correct\s+|best\s+)?(?:answer|option|choice)"
                     r"(?:\s+is)?\s*[:\-]?\s*", re.I)


def _letter_at_start(text: str, letters: str) -> str | None:
    m = re.match(rf"^\s*[\(\[]?\s*([{letters}])\s*[\)\]]?\s*(?:[.:)\]]|$|\s)", text, re.I)
    if not m:
        return None
    # "A man walks" starts with the article "A", not a choice: a bare letter followed by a
    # lowercase word is prose unless it is bracketed or punctuated.
    rest = text[m.end():]
    bracketed = bool(re.match(r"^\s*[\(\[]", text)) or bool(re.match(
        rf"^\s*[{letters}]\s*[.:)\]]", text, re.I))
    if not bracketed and rest.strip() and rest.lstrip()[0].islower():
        return None
    return m.group(1).upper()


def extract_choice(text: str | None, letters: str = DEFAULT_LETTERS,
                   options: Sequence[str] | Mapping[str, str] | None = None) -> str | None:
    """The one choice letter `text` commits to (upper case), or None (see the module doc).

    options: the option texts in letter order (or {letter: text}), for rule 5; option strings
    may carry their own "A. " prefix, which is ignored.
    """
    if text is None:
        return None
    inner = extract_answer(text)
    text = (inner if inner is not None else text).strip()
    if not text:
        return None
    letters = "".join(sorted(set(letters.upper())))
    for candidate in (text, _PREFIX.sub("", text, count=1)):
        found = _letter_at_start(candidate, letters)
        if found:
            return found
    # standalone capital letters, minus the article "A" before a lowercase word ("A man")
    tokens = {m.group(1) for m in re.finditer(rf"(?<![A-Za-z])([{letters}])(?![A-Za-z])", text)
              if not (m.group(1) == "A" and re.match(r"\s+(?!(?:or|and|nor|vs)\b)[a-z]",
                                                   text[m.end():]))}
    if len(tokens) == 1:
        return tokens.pop()
    if options:
        items = options.items() if isinstance(options, Mapping) else zip(letters, options)
        norm = _normalize(text)
        hits = [k.upper() for k, v in items if _normalize(_strip_label(v, letters)) == norm]
        if len(hits) == 1:
            return hits[0]
    return None


def _strip_label(option: str, letters: str) -> str:
    """"B. blue", "(B) blue", "B: blue" -> "blue"; a bare "blue" keeps its first letter."""
    return re.sub(rf"^\s*(?:[\(\[][{letters}][\)\]]|[{letters}]\s*[.:)])\s*", "", option,
                  flags=re.I)


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def choice_correct(text: str | None, truth: str, letters: str = DEFAULT_LETTERS,
                   options=None) -> bool:
    """Whether the extracted letter equals the truth's letter (the truth may be "(B)" too)."""
    want = extract_choice(truth, letters) or truth.strip()[:1].upper()
    got = extract_choice(text, letters, options)
    return got is not None and got == want


__all__ = ["DEFAULT_LETTERS", "choice_correct", "extract_choice"]
