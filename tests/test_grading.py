"""env/grading.py's verdict on records, hand-worked: multiple choice by the committed letter
(options as a synthetic {letter: text} dict, a list, or inside the question as V2P-Bench has
them), open-ended by a plain statement of the reference, and the answer-length cap."""
import pytest

from seeker_jax.env.grading import answer_correct, is_multiple_choice
from seeker_jax.env.parser import MAX_ANSWER_CHARS
from seeker_jax.env.records import SampleRecord

MC = {"question": "What color is it?\nA. red\nB. blue", "answer": "B", "question_form": "mc",
      "options": {"A": "red", "B": "blue", "C": "green", "D": "pink"}}
OPEN = {"question": "What color is the marked object?", "answer": "blue",
        "question_form": "open"}
V2P = {"question": "Which one?\n(A) x\n(B) y", "answer": "A"}  # no form, no options


@pytest.mark.parametrize("record,answer,right", [
    (MC, "B", True), (MC, "(B)", True), (MC, "The answer is B.", True), (MC, "blue", True),
    (MC, "A", False), (MC, "A or B", False), (MC, "red", False), (MC, None, False),
    (MC, "", False),
    ({**MC, "options": ["red", "blue", "green", "pink"]}, "blue", True),
    ({**MC, "options": ["red", "blue", "green", "pink"]}, "C", False),
    (OPEN, "blue", True), (OPEN, "It is blue.", True), (OPEN, "blue or red", False),
    (OPEN, "maybe blue", False), (OPEN, "red", False),
    (V2P, "(A)", True), (V2P, "B", False),
])
def test_verdicts(record, answer, right):
    assert answer_correct(answer, record) is right
    assert answer_correct(answer, SampleRecord.from_dict(
        {"video_id": "v", "video_path": "v.mp4", **record})) is right


def test_forms_and_the_length_cap():
    assert is_multiple_choice(MC) and is_multiple_choice(V2P) and not is_multiple_choice(OPEN)
    assert not is_multiple_choice({**V2P, "question_form": "open"})
    assert not answer_correct("B" + " " * MAX_ANSWER_CHARS, MC)
    assert not answer_correct("blue" + "." * MAX_ANSWER_CHARS, OPEN)
