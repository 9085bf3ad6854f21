"""The one answer extractor (env/answers.py): what an answer commits to, or nothing.

A hand-written table of real-looking answers (letters, colors, counts, directions; hedges,
negations and reasoning that mentions other options included), each with the verdict a careful
grader gives, and hypothesis properties: adding a second candidate to a correct answer never
keeps the credit, and the plain correct answer always gets it. The official rule's failure on
"(A)" (VideoSeeker's reward / V2P-Bench: pred[0] == gt) is shown too."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seeker_jax.env.answers import (choice_correct, extra_words, extract_choice,
                                    normalize_words, states_reference)

OPTIONS = ["A. red", "B. blue", "C. a small green cube", "D. none of the above"]

# (answer, the letter it commits to or None); options OPTIONS
LETTERS = [
    # plain forms
    ("B", "B"), ("(B)", "B"), ("B.", "B"), ("b", "B"), ("Answer: B", "B"), ("(B) blue", "B"),
    ("B. blue", "B"), ("B: blue", "B"), ("[C]", "C"), (" d ", "D"), ("The answer is C.", "C"),
    ("the correct option is (A)", "A"), ("Option D", "D"), ("The answer is b.", "B"),
    ("<think>A or B?</think><answer>(B)</answer>", "B"), ("<answer> C </answer>", "C"),
    ("I pick C because it is green", "C"), ("I'd go with D", "D"), ("It's C", "C"),
    ("The answer is definitely A", "A"), ("Probably C", "C"),
    # option text
    ("a small green cube", "C"), ("Blue", "B"), ("The answer is blue", "B"),
    # the cases: the letter committed to, wherever the reasoning mentions others
    ("The answer is A because B is wrong", "A"), ("I choose A over B", "A"),
    ("A is correct", "A"), ("Not A", None),
    ("A, not B", "A"), ("B is the answer, not A", "B"), ("It's not B, it's C", "C"),
    ("C, because A and B are wrong", "C"), ("A and B are wrong, so D", "D"),
    ("Option B is wrong, so the answer is C", "C"), ("Neither A nor B; C", "C"),
    ("B doesn't fit, A does", "A"), ("It could be A, but it's B", "B"),
    ("The answer is B; A is a distractor", "B"), ("B is better than A", "B"),
    ("A because it is red", "A"), ("Between A and C, I choose C", "C"),
    # hedges, two commitments, negations: nothing
    ("A or B", None), ("Either A or B", None), ("The answer is A/B", None),
    ("The answer is A (or B)", None), ("B, or maybe C", None), ("A. Or maybe B", None),
    ("Maybe A or B", None), ("A, B, C or D", None), ("The answer is A. Actually, it's C.", None),
    ("I would not choose A", None), ("The answer is not A", None), ("A is not correct", None),
    ("I'm torn between A and B", None),
    # the letter and the text disagree: "B) red" when red is A
    ("B) red", None),
    # not a choice
    ("A man walks in", None), ("E", None), ("I don't know", None), ("", None), (None, None),
    ("<answer></answer>", None),
]


@pytest.mark.parametrize("text,want", LETTERS)
def test_extract_choice(text, want):
    assert extract_choice(text, options=OPTIONS) == want


Q_COLOR = "What color is the object in the red box at 2.0 s?"
Q_COUNT = "How many times does the object in the red box stop?"
Q_DIR = "In which direction does the circled object move between 1.0 s and 3.0 s?"
Q_DO = "What does the circled object do after it appears?"

# (answer, reference, question, credited)
OPEN = [
    # colors
    ("red", "red", Q_COLOR, True), ("It is red.", "red", Q_COLOR, True),
    ("Red", "red", Q_COLOR, True), ("The color is red", "red", Q_COLOR, True),
    ("It looks red", "red", Q_COLOR, True),
    ("The object in the red box is blue", "blue", Q_COLOR, True),
    ("At 2.0 s it is blue", "blue", Q_COLOR, True),
    ("red or blue", "red", Q_COLOR, False), ("red, blue", "red", Q_COLOR, False),
    ("blue and red", "blue", Q_COLOR, False), ("red/blue", "red", Q_COLOR, False),
    ("maybe red", "red", Q_COLOR, False), ("either red or orange", "red", Q_COLOR, False),
    ("red, blue, green, yellow, purple, orange", "red", Q_COLOR, False),
    ("It is not red", "red", Q_COLOR, False), ("blue", "red", Q_COLOR, False),
    ("reddish orange", "red", Q_COLOR, False),
    # counts
    ("3", "3", Q_COUNT, True), ("three", "3", Q_COUNT, True),
    ("It stops 3 times", "3", Q_COUNT, True),
    ("one", "1", Q_COUNT, True), ("3-4", "3", Q_COUNT, False), ("3 or 4", "3", Q_COUNT, False),
    ("about 3", "3", Q_COUNT, False), ("at least 3", "3", Q_COUNT, False),
    ("3 to 4 times", "3", Q_COUNT, False), ("2, one", "2", Q_COUNT, False),
    ("between 2 and 4", "3", Q_COUNT, False), ("4", "3", Q_COUNT, False),
    # directions
    ("left", "left", Q_DIR, True), ("It moves left.", "left", Q_DIR, True),
    ("up and to the left", "up and to the left", Q_DIR, True),
    ("left", "up and to the left", Q_DIR, False),
    ("up and to the left", "left", Q_DIR, False),
    ("left or right", "left", Q_DIR, False), ("left, then right", "left", Q_DIR, False),
    ("It turns left.", "it turns left", Q_DO, True),
    ("It does not turn left.", "it turns left", Q_DO, False),
    ("it turns right", "it turns left", Q_DO, False),
    ("It doesn't move", "it does not move", Q_DO, True),
    ("It moves left, then turns red.", "moves left, then turns red", Q_DO, True),
    ("It turns red, then moves left.", "moves left, then turns red", Q_DO, False),
    # free text
    ("the red one", "red", Q_COLOR, True),
    ("a cup or a plate", "a cup", "What is on the table?", False),
    ("a cup, a plate and a fork", "a cup", "What is on the table?", False),
    ("", "red", Q_COLOR, False), ("red", "", Q_COLOR, False),
]


@pytest.mark.parametrize("answer,reference,question,want", OPEN)
def test_states_reference(answer, reference, question, want):
    assert states_reference(answer, reference, question) is want


def test_table_is_large_enough():
    assert len(LETTERS) + len(OPEN) >= 60


def test_extra_words_say_what_was_added():
    assert extra_words("red or blue", "red", Q_COLOR) == ["or", "blue"]
    assert extra_words("It is red", "red", Q_COLOR) == []
    assert extra_words("blue", "red", Q_COLOR) is None            # the reference is absent
    assert normalize_words("It doesn't turn THREE times.") == ["it", "does", "not", "turn",
                                                               "3", "times"]


def test_official_first_character_rule_fails_on_brackets():
    official = lambda pred, gt: pred[0] == gt  # noqa: E731 - VideoSeeker's / V2P's rule
    assert not official("(A)", "A")
    assert choice_correct("(A)", "A") and choice_correct("a.", "(A)")
    assert not choice_correct("B", "A") and not choice_correct(None, "A")


def test_bare_options_keep_their_first_letter():
    assert extract_choice("blue", options=["red", "blue", "cyan", "dark"]) == "B"
    assert extract_choice("dark", options={"A": "red", "D": "dark"}) == "D"


def test_more_letters():
    assert extract_choice("F)", letters="ABCDEF") == "F"
    assert extract_choice("F)") is None


# ---------------------------------------------------------------- properties

VALUES = {"color": (["red", "blue", "green", "yellow", "purple", "orange"], Q_COLOR),
          "count": (["0", "1", "2", "3", "4", "5", "six", "seven"], Q_COUNT),
          "direction": (["left", "right", "up", "down"], Q_DIR)}
PLAIN = ["{a}", "It is {a}.", "The answer is {a}", "{a}."]
HEDGED = ["{a} or {b}", "{b} or {a}", "{a}, {b}", "{a} and {b}", "{a}/{b}", "either {a} or {b}",
          "{a}, maybe {b}", "{a} or possibly {b}", "{a}, {b}, or something else", "{a}-{b}",
          "It is {a} or {b}.", "The answer is {a}, or perhaps {b}", "{b}, then {a}",
          "between {a} and {b}", "{a} (or {b})"]


@st.composite
def open_cases(draw):
    kind = draw(st.sampled_from(sorted(VALUES)))
    values, question = VALUES[kind]
    a, b = draw(st.lists(st.sampled_from(values), min_size=2, max_size=2, unique=True))
    return a, b, question, draw(st.sampled_from(PLAIN)), draw(st.sampled_from(HEDGED))


@settings(max_examples=300, deadline=None)
@given(open_cases())
def test_a_second_candidate_never_keeps_the_credit_open(case):
    a, b, question, plain, hedged = case
    assert states_reference(plain.format(a=a), a, question)
    assert not states_reference(hedged.format(a=a, b=b), a, question), hedged.format(a=a, b=b)


LETTER_PLAIN = ["{a}", "({a})", "Answer: {a}", "The answer is {a}.", "I choose {a}",
                "{a} is correct", "The answer is {a} because {b} is wrong"]
LETTER_HEDGED = ["{a} or {b}", "{b} or {a}", "{a}/{b}", "{a}, {b}", "{a} and {b}",
                 "Either {a} or {b}", "{a}, or maybe {b}", "The answer is {a} or {b}",
                 "The answer is {a}. Actually, it is {b}.", "{a}. Or perhaps {b}",
                 "({a}) or ({b})", "{a} (or {b})", "I choose {a} or {b}"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from("ABCD"), min_size=2, max_size=2, unique=True),
       st.sampled_from(LETTER_PLAIN), st.sampled_from(LETTER_HEDGED))
def test_a_second_candidate_never_keeps_the_credit_mc(pair, plain, hedged):
    a, b = pair
    assert choice_correct(plain.format(a=a, b=b), a)
    assert not choice_correct(hedged.format(a=a, b=b), a), hedged.format(a=a, b=b)
