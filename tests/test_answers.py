"""Multiple-choice letter extraction on a table of real-looking answers, nasty ones included,
and the official rule's failure on "(A)" (VideoSeeker's reward / V2P-Bench: pred[0] == gt)."""
import pytest

from seeker_jax.env.answers import choice_correct, extract_choice

OPTIONS = ["A. red", "B. blue", "C. a small green cube", "D. none of the above"]


@pytest.mark.parametrize("text,want", [
    ("B", "B"), ("(B)", "B"), ("B.", "B"), ("b", "B"), ("Answer: B", "B"), ("B) red", "B"),
    ("(B) blue", "B"), ("B. blue", "B"), ("B: blue", "B"), ("[C]", "C"), (" d ", "D"),
    ("The answer is C.", "C"), ("the correct option is (A)", "A"), ("Option D", "D"),
    ("<think>A or B?</think><answer>(B)</answer>", "B"),
    ("<answer> C </answer>", "C"),
    ("I pick C because it is green", "C"),
    ("a small green cube", "C"),            # the option text itself
    ("Blue", "B"),
    ("A or B", None),                       # commits to two
    ("", None), (None, None), ("<answer></answer>", None),
    ("A man walks in", None),              # the article, not a choice
    ("E", None),                            # not among the letters
    ("I don't know", None),
])
def test_extract_choice(text, want):
    assert extract_choice(text, options=OPTIONS) == want


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
