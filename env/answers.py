"""Reading what a model's answer commits to: a multiple-choice letter, or an open-ended
statement of the reference. The one extractor behind GRPO's accuracy reward, `passk`, the
demo's held-out evaluation and `seeker-jax eval` (protocol "agentic").

Why rules this strict: GRPO maximizes whatever the reward pays. An extractor that credits
"A or B", or "red, blue or green" when the reference is red, pays a hedging policy on every
question, and the same extractor scoring evaluation then hides it. So an answer either commits
to one thing or scores 0. (VideoSeeker's public reward and V2P-Bench's eval use `pred[0] ==
gt`, which scores "(B)" wrong because its first character is "(".)

Multiple choice, `extract_choice` (the first rule that decides wins):
  1. an `<answer>...</answer>` inside the text narrows the search to its content;
  2. the whole answer is a letter: "B", "(B)", "b", "B.", "[C]";
  3. the letters mentioned are read in groups ("A or B", "A, B and C", "A/B" are one group)
     and each group gets a role from its clause:
       committed   it opens the answer ("B) red", "C because ..."), follows a commitment
                   ("the answer is", "Answer:", "I choose", "it's", "so") or is followed by
                   one ("is correct", "is the answer");
       negated     a negation before it ("not", "rather than", "over", "neither ... nor",
                   "rule out") or after it ("is wrong", "is incorrect", "can be ruled out");
       hedged      "maybe", "perhaps", "could be", "or" before it;
       mentioned   anything else (reasoning that discusses an option);
     the answer is the one committed letter, provided no committed group holds two letters,
     no other letter is committed or hedged, and the letter itself is never negated. With no
     commitment, a single mentioned letter (never negated) is the answer ("Probably C");
  4. with no letter at all, the answer equals one option's text ("blue", "The answer is
     blue"), given the options.
  The capital "A" before a lowercase word is the article ("A man walks in"), not a choice,
  except before words that follow a letter ("A because ...", "A is correct", "A or B");
  a lowercase letter counts only alone, bracketed "(b)", or right after a commitment
  ("answer: b.").

Open-ended without a judge, `states_reference`: credit a plain statement of the reference
and nothing else. Words are compared normalized (lower case, punctuation and articles
dropped, "n't" as "not", number words as digits). The answer must contain the reference's
words in order; what is left, after removing phrases of 3+ words restated from the question
("the object in the red box"), may hold only filler ("it is", "the answer is", "looks") and
single words of the question. It scores 0 with any of:
  - a negation the reference lacks ("it does not turn left");
  - a hedge or disjunction word ("or", "maybe", "either", "about", "at least", ...);
  - a conjunction that lists ("and", "then", "plus") outside the reference;
  - another value of a color, direction or count ("red and blue", "3-4", "left, then right"),
    or any other word.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

from seeker_jax.env.parser import extract_answer

DEFAULT_LETTERS = "ABCD"

# ---------------------------------------------------------------- multiple choice

_WHOLE = re.compile(r"^\s*[\(\[]?\s*([A-Za-z])\s*[\)\]]?\s*[.:!]?\s*$")
# A standalone letter, optionally bracketed; not part of a word, a hyphenated word ("A-D",
# "T-shirt") or a contraction ("A's").
_MENTION = re.compile(r"(?<![\w\-'’])([\(\[]\s*)?([A-Za-z])(\s*[\)\]])?(?![\w\-'’])")
# Words after which a capital "A" is a letter, not the article ("A because", "A is").
_LETTER_FOLLOWERS = frozenset(
    "is was seems looks appears because since as or and nor vs versus over rather instead "
    "must should would could can cannot fits matches best then but though although also too "
    "here for it wins works holds remains stands does doesn isn wasn will".split())
# Between two letters of one group: "A or B", "A, B and C", "A/B", "A (or B)", "A vs. B".
_CONNECTOR = re.compile(
    r"^[\s,/&()\[\]]*(?:(?:and/or|or|and|nor|vs\.?|versus)\b[\s,]*)?"
    r"(?:(?:maybe|perhaps|possibly|probably|even|else|alternatively)\b[\s,]*)?"
    r"(?:(?:option|choice|letter)s?\b\s*)?[\s(\[]*$", re.I)
_LABEL = r"(?:\s*(?:option|choice|letter)s?)?\s*$"
_COMMIT_BEFORE = re.compile(
    r"(?:\b(?:answer|option|choice|letter|one|it|that|this|which)\s*(?:is|'s|’s|would be|must be|"
    r"should be|will be|=|:|-|–)"
    r"|\banswer|\bchoose|\bchose|\bchoosing|\bpick|\bpicked|\bpicking|\bselect|\bselected|"
    r"\bselecting|\bgo with|\bgoing with|\bgo for|\bopt for|\bi say|\bi'd say|\bi would say|"
    r"\bso|\bthus|\btherefore|\bhence|\bmust be|\bhas to be|\bclearly|\bdefinitely|=>|->|→)"
    + _LABEL, re.I)
_HEDGE_BEFORE = re.compile(
    r"(?:\bmaybe|\bperhaps|\bpossibly|\bprobably|\bcould be|\bmight be|\bmay be|\bor|\beither|"
    r"\balternatively|\botherwise|\bor else)" + _LABEL, re.I)
_NEGATION_WORDS = re.compile(
    r"\b(?:not|no|never|neither|nor|except|over|than|instead|unlike|eliminate[sd]?|eliminating|"
    r"exclude[sd]?|excluding|rule|ruled|ruling|against|without|dismiss|reject|rejected|"
    r"cannot|can't|won't|isn't|aren't|wasn't)\b|n't\b", re.I)
_NEG_AFTER = re.compile(
    r"^[\s)\]]*(?:(?:is|are|was|were|seems?|looks?|appears?|would be|must be|can be|could be|"
    r"should be|has been|have been)\s+(?:also\s+|clearly\s+|definitely\s+|obviously\s+)?"
    r"(?:not\b|wrong|incorrect|false|impossible|unlikely|ruled out|eliminated|excluded|"
    r"a distractor|inconsistent|out\b)|isn't|aren't|wasn't|doesn't|don't|does not|do not|"
    r"cannot|can't|fails?\b)", re.I)
_AFFIRM_AFTER = re.compile(
    r"^[\s,)\]]*(?:(?:is|seems|looks|appears|must be|should be|would be)\s+(?:clearly\s+|"
    r"definitely\s+|also\s+)?(?:the\s+)?(?:correct|right|best|true|answer|most likely|"
    r"likeliest|only (?:one|option|answer))|fits|matches|it is|wins)\b", re.I)
_CLAUSE_END = re.compile(r"[.;!?]|\bbut\b|\bhowever\b", re.I)
_COMMIT_PREFIX = re.compile(
    r"^\s*(?:(?:so|thus|therefore)\s*,?\s*)?(?:(?:my|the)\s+)?(?:final\s+|correct\s+|best\s+)?"
    r"(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*|^\s*(?:it|this|that)\s*(?:is|'s|’s)\s+", re.I)


def _mentions(text: str, letters: str) -> list[tuple[int, int, str]]:
    """(start, end, LETTER) of each letter the text may be naming (module doc, rule 3)."""
    out = []
    for m in _MENTION.finditer(text):
        letter = m.group(2)
        if letter.upper() not in letters:
            continue
        bracketed = bool(m.group(1)) and bool(m.group(3))
        after = text[m.end():]
        if letter.islower():
            # "a"/"b" in prose are words or labels; a lowercase letter counts bracketed, or
            # right after a commitment and before the end of the clause ("answer: b.").
            if not (bracketed or (_COMMIT_BEFORE.search(text[:m.start()])
                                  and re.match(r"^\s*(?:[.,;:!?)]|$)", after))):
                continue
        elif letter == "A" and not bracketed and not m.group(3):
            word = re.match(r"^\s+([a-z]+)", after)
            if word and word.group(1) not in _LETTER_FOLLOWERS:
                continue  # the article: "A man walks in"
        out.append((m.start(), m.end(), letter.upper()))
    return out


def _groups(text: str, mentions: list[tuple[int, int, str]]) -> list[tuple[int, int, list[str]]]:
    """Mentions joined only by connectors ("A or B", "A, B and C") -> (start, end, letters)."""
    groups: list[tuple[int, int, list[str]]] = []
    for start, end, letter in mentions:
        if groups and _CONNECTOR.match(text[groups[-1][1]:start]):
            s, _, ls = groups[-1]
            groups[-1] = (s, end, ls + [letter])
        else:
            groups.append((start, end, [letter]))
    return groups


def _clause_before(text: str) -> str:
    """The tail of `text` after its last clause boundary (sentence end, "but")."""
    cuts = list(_CLAUSE_END.finditer(text))
    return text[cuts[-1].end():] if cuts else text


def _clause_after(text: str) -> str:
    m = _CLAUSE_END.search(text)
    return text[:m.start()] if m else text


def _negated(before: str, after: str) -> bool:
    """A negation in the last few words before the letter (within its clause, after the last
    comma: "B doesn't fit, A does" does not negate A), or a negative predicate after it
    ("is wrong")."""
    clause = _clause_before(before).rsplit(",", 1)[-1]
    words = re.sub(r"\bno doubt\b", "", clause, flags=re.I).split()[-4:]
    return bool(_NEGATION_WORDS.search(" ".join(words))) or bool(_NEG_AFTER.match(after))


def extract_choice(text: str | None, letters: str = DEFAULT_LETTERS,
                   options: Sequence[str] | Mapping[str, str] | None = None) -> str | None:
    """The one choice letter `text` commits to (upper case), or None (see the module doc).

    options: the option texts in letter order (or {letter: text}), for rule 4; option strings
    may carry their own "A. " prefix, which is ignored.
    """
    if text is None:
        return None
    inner = extract_answer(text)
    text = (inner if inner is not None else text).strip()
    if not text:
        return None
    letters = "".join(sorted(set(letters.upper())))
    whole = _WHOLE.match(text)
    if whole:
        return whole.group(1).upper() if whole.group(1).upper() in letters else None
    groups = _groups(text, _mentions(text, letters))
    if not groups:
        return _by_option_text(text, letters, options)
    committed, negated, mentioned = set(), set(), set()
    hedged: dict[str, int] = {}  # letter -> where its hedge starts
    for i, (start, end, group) in enumerate(groups):
        before = text[groups[i - 1][1] if i else 0:start]
        after = _clause_after(text[end:groups[i + 1][0] if i + 1 < len(groups) else None])
        if _negated(before, after):
            negated.update(group)
        elif (not text[:start].strip() or _COMMIT_BEFORE.search(text[:start])
              or _AFFIRM_AFTER.match(after)):
            if len(set(group)) > 1:
                return None  # commits to several: "A or B", "The answer is A/B"
            committed.update(group)
            committed_at = start
        elif _HEDGE_BEFORE.search(before):
            hedged.update(dict.fromkeys(group, start))
        else:
            mentioned.update(group)
    if len(committed) > 1:
        return None
    if committed:
        (letter,) = committed
        # a hedge after the commitment reopens it ("B, or maybe C"); one before it is
        # reasoning ("It could be A, but it's B")
        if any(at > committed_at for other, at in hedged.items() if other != letter):
            return None
    elif len(mentioned | set(hedged)) == 1:
        (letter,) = mentioned | set(hedged)
    else:
        return None
    if letter in negated:
        return None
    if _contradicts_options(text, letter, letters, options):
        return None
    return letter


def _option_items(options: Sequence[str] | Mapping[str, str], letters: str
                  ) -> list[tuple[str, str]]:
    items = options.items() if isinstance(options, Mapping) else zip(letters, options)
    return [(k.upper(), _normalize(_strip_label(v, letters))) for k, v in items]


def _by_option_text(text: str, letters: str, options) -> str | None:
    """Rule 4: the answer (a commitment prefix dropped) equals exactly one option's text."""
    if not options:
        return None
    norm = _normalize(_COMMIT_PREFIX.sub("", text, count=1))
    hits = [k for k, v in _option_items(options, letters) if v and v == norm]
    return hits[0] if len(hits) == 1 else None


def _contradicts_options(text: str, letter: str, letters: str, options) -> bool:
    """"B. red" when B is blue and A is red: the letter and the text disagree."""
    if not options:
        return False
    m = re.match(rf"^\s*[\(\[]?\s*{letter}\s*[\)\]]?\s*[.:)\-]\s*(.+)$", text, re.I)
    if not m:
        return False
    said = _normalize(m.group(1))
    texts = dict(_option_items(options, letters))
    return said != texts.get(letter) and said in {v for k, v in texts.items() if k != letter}


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


# ---------------------------------------------------------------- open-ended

_ARTICLES = frozenset({"a", "an", "the"})
# "one" stays a word ("the red one"); a reference "1" also matches it (_references).
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split()) if i != 1}
NEGATIONS = frozenset({"not", "no", "never", "none", "nothing", "nobody", "neither", "nor",
                       "without"})
HEDGES = frozenset(
    "or either maybe perhaps possibly probably likely unlikely might could may guess unsure "
    "uncertain unclear approximately approx about around roughly nearly almost least "
    "most some somewhere range between alternatively otherwise else".split())
CONJUNCTIONS = frozenset("and then plus also as well both followed after before while "
                         "vs versus".split())
COLORS = frozenset(
    "red orange yellow green blue purple violet pink brown black white gray grey cyan "
    "magenta teal navy maroon beige gold golden silver turquoise lime indigo tan olive".split())
DIRECTIONS = frozenset(
    "left right up down top bottom above below upward upwards downward downwards forward "
    "forwards backward backwards leftward rightward clockwise counterclockwise anticlockwise "
    "north south east west toward towards away still stationary inward outward".split())
FILLER = frozenset(
    "it its s is was are were be being been answer final my i think believe see object target "
    "marked thing one this that color colour seems looks appears to so which here me".split())
_CONTRACTIONS = ((r"\bcan't\b", "can not"), (r"\bwon't\b", "will not"), (r"n't\b", " not"))
_RESTATED_MIN = 3  # a phrase of this many words copied from the question is a restatement


def normalize_words(text: str) -> list[str]:
    """Lower case, "n't" as "not", punctuation and articles dropped, number words as digits."""
    text = text.lower().replace("’", "'")
    for pattern, repl in _CONTRACTIONS:
        text = re.sub(pattern, repl, text)
    words = re.sub(r"[^\w\s]|_", " ", text).split()
    return [_NUMBER_WORDS.get(w, w) for w in words if w not in _ARTICLES]


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def _find(words: list[str], part: list[str]) -> int | None:
    n = len(part)
    return next((i for i in range(len(words) - n + 1) if words[i:i + n] == part), None)


def _drop_restated(words: list[str], question: list[str]) -> list[str]:
    """`words` without the runs of _RESTATED_MIN+ words that also run in the question."""
    grams = {tuple(question[i:i + _RESTATED_MIN])
             for i in range(len(question) - _RESTATED_MIN + 1)}
    keep = [True] * len(words)
    for i in range(len(words) - _RESTATED_MIN + 1):
        if tuple(words[i:i + _RESTATED_MIN]) in grams:
            keep[i:i + _RESTATED_MIN] = [False] * _RESTATED_MIN
    return [w for w, k in zip(words, keep) if k]


def _references(want: list[str]) -> list[list[str]]:
    """The reference's words, and with "1" as "one" (normalize_words keeps "one" a word)."""
    if not want:
        return []
    return [want] + ([["one" if w == "1" else w for w in want]] if "1" in want else [])


def _is_value(word: str) -> bool:
    """A value of an attribute a question asks for: a color, a direction, a count."""
    return word in COLORS or word in DIRECTIONS or word.isdigit()


def extra_words(answer: str, reference: str, question: str = "") -> list[str] | None:
    """The answer's words that are not the reference, filler or the question restated (in
    order); None when the answer does not contain the reference at all."""
    got = normalize_words(answer)
    for want in _references(normalize_words(reference)):
        at = _find(got, want)
        if at is not None:
            break
    else:
        return None
    rest = _drop_restated(got[:at], normalize_words(question)) + \
        _drop_restated(got[at + len(want):], normalize_words(question))
    q = {_stem(w) for w in normalize_words(question)}
    allowed = set(want)
    numeric = any(w.isdigit() for w in want)
    out = []
    for w in rest:
        if w == "one" and numeric:
            out.append(w)  # "2, one": another count
            continue
        if w in allowed or w in FILLER:
            continue
        plain = not (w in NEGATIONS or w in HEDGES or w in CONJUNCTIONS or _is_value(w))
        if plain and _stem(w) in q:
            continue
        out.append(w)
    return out


def states_reference(answer: str | None, reference: str, question: str = "") -> bool:
    """Whether an open-ended answer plainly states the reference and nothing else (module
    doc): "It is red." for "red" yes; "red or blue", "red, blue", "3-4", "it does not turn
    left", "maybe red" no."""
    if not answer or not answer.strip() or not normalize_words(reference):
        return False
    extra = extra_words(answer, reference, question)
    return extra is not None and not extra



__all__ = ["COLORS", "DEFAULT_LETTERS", "DIRECTIONS", "HEDGES", "choice_correct",
           "extra_words", "extract_choice", "normalize_words",
           "states_reference"]
