"""Stage pieces by hand-worked example: the rule text filter, strict JSON parsing and the
repair turn, stage 2's validation of windows / placeholders / boxes, the runner's torn log."""
import json

import pytest

from seeker_jax.data.testing import ChatServer, reply_text
from seeker_jax.data.openai_api import ChatClient
from seeker_jax.data.pipeline import runner
from seeker_jax.data.pipeline.llm import ask_json, parse_reply
from seeker_jax.data.pipeline.stage import Outcome, Rejected, StageSpec
from seeker_jax.data.pipeline.text_filter import RuleTextFilter, TextVerdict, rule_entity
from seeker_jax.data.pipeline.verify import Verification, check_verification, frame_size


def test_rule_filter():
    assert rule_entity("What color is the red striped circle at 1.1 s?") == "the red striped circle"
    assert rule_entity("What happens at the end of the video?") is None
    assert rule_entity("Summarize the video.") is None
    out = RuleTextFilter()({"id": "a", "question": "Where does the dog go?"})
    assert out.kept and out.value["entity"] == "the dog"
    assert RuleTextFilter()({"id": "b", "question": "Why?"}).value.reason == "no_visual_entity"


def test_parse_reply_and_repair_turn():
    assert parse_reply('```json\n{"keep": true, "entity": "the cat"}\n```', TextVerdict).keep
    with pytest.raises(ValueError, match="schema: keep"):
        parse_reply('{"entity": "x"}', TextVerdict)
    with pytest.raises(ValueError, match="schema"):
        parse_reply('{"keep": true, "extra": 1}', TextVerdict)  # extra keys are refused
    replies = iter(['{"keep": tru', '{"keep": true, "entity": "nope"}',
                    '{"keep": true, "entity": "the cat"}'])
    with ChatServer(lambda body: reply_text(next(replies))) as server:
        client = ChatClient(server.url, "m")
        check = lambda v: None if v.entity in "is the cat black?" else "entity not in question"  # noqa: E731
        got, tokens = ask_json(client, [{"role": "user", "content": "q"}], TextVerdict, check)
        assert got.entity == "the cat" and tokens > 0
        last = server.requests[-1]["messages"]
        assert len(last) == 5 and "entity not in question" in last[-1]["content"]
    with ChatServer(lambda body: reply_text("garbage")) as server:
        got, _ = ask_json(ChatClient(server.url, "m"), [{"role": "user", "content": "q"}],
                          TextVerdict, attempts=2)
        assert isinstance(got, Rejected) and got.reason == "invalid_reply" and len(server.requests) == 2


def test_verification_checks():
    ok = dict(unique=True, tag="red circle", start_time=0.5, end_time=3.0,
              question="What does <target> do?")
    assert check_verification(Verification(**ok), 4.0, 96, 64) is None
    assert "not inside the video" in check_verification(Verification(**{**ok, "end_time": 4.5}), 4.0, 96, 64)
    late = Verification(**{**ok, "start_time": 3.0})
    assert "not inside the video" in check_verification(late, 4.0, 96, 64)
    assert "2 times" in check_verification(
        Verification(**{**ok, "question": "<target> and <target>?"}), 4.0, 96, 64)
    assert "0 times" in check_verification(Verification(**{**ok, "question": "What?"}), 4.0, 96, 64)
    assert "tag is empty" in check_verification(Verification(**{**ok, "tag": " "}), 4.0, 96, 64)
    assert "not inside the 96x64" in check_verification(
        Verification(**ok, box=[0, 0, 97, 10], box_time=1.0), 4.0, 96, 64)
    assert "outside the window" in check_verification(
        Verification(**ok, box=[0, 0, 9, 10], box_time=3.5), 4.0, 96, 64)
    assert check_verification(Verification(**{**ok, "unique": False, "tag": ""}), 4.0, 96, 64) is None
    # scale 0.8083, floors, even; and a frame already small enough stays as it is
    assert frame_size(240, 320, 224 * 224) == (192, 258) and frame_size(64, 96, 224 * 224) == (64, 96)


class Upper:
    name, holds_model = "upper", False

    def __call__(self, sample):
        if sample["id"] == "boom":
            raise KeyError("question")
        return Outcome({**sample, "text": sample["text"].upper()})


def test_runner_torn_log_and_stage_errors(tmp_path):
    spec = StageSpec("test_pipeline_stages:Upper")
    samples = [{"id": i, "text": i} for i in ("a", "b", "boom", "c")]
    (tmp_path / runner.LOG).write_text(json.dumps({"id": "a", "kept": True, "tokens": 0,
                                                   "seconds": 0.0, "record": {"id": "a", "text": "A"}})
                                       + '\n{"id": "b", "ke')  # killed mid-line
    kept, report = runner.run_stage("upper", spec, samples, tmp_path)
    assert [r["text"] for r in kept] == ["A", "B", "C"]
    assert report.rejected == {"stage_error": 1}
    assert "KeyError" in report.examples["stage_error"][0]["detail"]
    entries = runner.read_log(tmp_path / runner.LOG)
    assert sorted(entries) == ["a", "b", "boom", "c"]
    with pytest.raises(ValueError, match="not unique"):
        runner.run_stage("upper", spec, samples + samples[:1], tmp_path / "x")
