"""The open-ended judge against a real HTTP server on 127.0.0.1 (tests/chat_server.py): good
replies on the 1 / 0.5 / 0 rubric, strict parsing, 500s, timeouts, garbage, truncated JSON, the
on-disk cache, bounded concurrency. The RewardModel always returns scores and counts fallbacks."""
import itertools
import threading

import pytest

from chat_server import ChatServer, Reply, completion, reply_text
from seeker_jax.rl.rewards import (JudgeConfig, RewardConfig, RewardContext, RewardModel,
                                   judge_messages, parse_judgement)

Q, REF = "What does the circled object do after it appears?", "it turns left"


def ctx(answer, form="open", reference=REF, question=Q):
    turns = [f"<think>x</think><answer>{answer}</answer>"]
    return RewardContext(question, answer, reference, form, turns=turns)


def model(server, cache_dir="", **judge):
    judge = {"timeout_s": 2.0, "retries": 1, "backoff_s": 0.01, "max_failures": 2,
             "concurrency": 4, **judge}
    cfg = RewardConfig(judge=JudgeConfig(spec=f"{server.url}#judge", cache_dir=str(cache_dir),
                                         **judge))
    return RewardModel(cfg)


def answer_of(body):
    """The model answer inside a judge request (what a real judge would read)."""
    return body["messages"][-1]["content"].rsplit("[Model answer]\n", 1)[1]


def by_answer(table):
    return lambda body: reply_text(table[answer_of(body)])


@pytest.mark.parametrize("reply,want", [
    ("Judgement: 1", 1.0), ("Judgement: 0.5", 0.5), ("Judgement: 0", 0.0), ("1", 1.0),
    ("0.5", 0.5), ("0", 0.0), (" Judgement: 1.0 ", 1.0), ("judgment: 0.50", 0.5),
    ("**Judgement:** 1", 1.0), ("Judgement: 1.", 1.0),
    ("The answer names the same turn.\nJudgement: 1", 1.0),
    ("<think>Maybe 0.5? No, it is 1.</think>\nJudgement: 1", 1.0),
    # strict: none of these is a score
    ("I give it 1 point", None), ("Judgement: 1 point", None), ("Judgement: 10", None),
    ("Judgement: 0.7", None), ("The answer is 1", None), ("", None), ("Judgement:", None),
    ("Judgement: 1\nJudgement: 0", None), ("Judgement: 1\nActually, wait.", None),
    ("1 or 0.5", None), ("Judgement: -1", None), ("Score: 1", None), ("1/1", None),
])
def test_parse_judgement_is_strict(reply, want):
    assert parse_judgement(reply) == want


def test_good_replies_score_the_rubric():
    table = {"It turns left.": "Judgement: 1", "It turns.": "Judgement: 0.5",
             "It jumps.": "Judgement: 0"}
    with ChatServer(by_answer(table)) as server:
        m = model(server)
        contexts = [ctx(a) for a in table] + [ctx("B", "mc", "B"), ctx("It turns left.")]
        scores = m.score(contexts)
    assert [s["accuracy"] for s in scores] == [1.0, 0.5, 0.0, 1.0, 1.0]
    # paper weights, format 1, gated parsimony (0 tools): pays only the fully right answers
    assert [s["reward"] for s in scores] == pytest.approx([1.0, 0.8 * 0.5 + 0.15, 0.15, 1.0, 1.0])
    assert len(server.requests) == 3            # mc never asks; the repeated answer asked once
    body = server.requests[0]
    assert body["model"] == "judge" and body["temperature"] == 0.3
    assert body["messages"] == judge_messages(Q, REF, answer_of(body))
    met = m.metrics()
    assert met["judge/judged"] == 3 and met["judge/fallbacks"] == 0
    assert met["rewards/open_judged"] == 4 and met["rewards/open_by_rule"] == 0


def test_a_reply_that_merely_contains_1_falls_back_to_the_rule():
    with ChatServer(lambda body: reply_text("I give it 1 point")) as server:
        m = model(server, max_failures=2)
        scores = m.score([ctx("it goes right"), ctx("It turns left")])
    # not taken as 1: the rule scores them (0: a different answer; 1: it states the reference)
    assert [s["accuracy"] for s in scores] == [0.0, 1.0]
    met = m.metrics()
    assert len(server.requests) == 4 and met["judge/unparsable"] == 4
    assert met["judge/fallbacks"] == 2 and met["rewards/open_by_rule"] == 2


@pytest.mark.parametrize("bad", [
    Reply(500, b'{"error": "boom"}'),
    Reply(200, b"<html>garbage</html>"),
    Reply(200, b'{"choices": [{"message": {"content": "Judgement: 1'),   # truncated JSON
    Reply(200, completion("Judgement: 1"), delay_s=1.0),                  # past the timeout
], ids=["500", "garbage", "truncated_json", "timeout"])
def test_failures_fall_back_and_are_counted(bad):
    with ChatServer(lambda body: bad) as server:
        m = model(server, timeout_s=0.3, retries=1, max_failures=2)
        scores = m.score([ctx("it goes right"), ctx("it turns left")])
    assert [s["accuracy"] for s in scores] == [0.0, 1.0]       # the rule, not the judge
    met = m.metrics()
    assert met["judge/fallbacks"] == 2 and met["judge/api_errors"] == 4
    assert met["judge/http_calls"] == 2 * 2 * 2                 # items x attempts x (1 + retry)
    assert len(server.requests) == 8


def test_recovers_after_transient_failures_and_mixed_trouble():
    count = itertools.count()
    bad = [Reply(500, b"down"), Reply(200, b"garbage"), Reply(200, b'{"choices": [{"mess'),
           Reply(200, completion("Judgement: 0.5"), delay_s=1.0)]
    lock = threading.Lock()

    def handler(body):
        with lock:
            n = next(count)
        return bad[n] if n < len(bad) else reply_text("Judgement: 0.5")

    with ChatServer(handler) as server:
        m = model(server, timeout_s=0.3, retries=2, max_failures=3, concurrency=2)
        scores = m.score([ctx(f"answer {i}") for i in range(4)])
    # every answer got its judgement in the end (retries and attempts absorb the trouble)
    assert [s["accuracy"] for s in scores] == [0.5] * 4
    met = m.metrics()
    assert met["judge/judged"] == 4 and met["judge/fallbacks"] == 0
    # each bad reply costs exactly one more request: 4 bad + 4 good
    assert len(server.requests) == 8 and met["judge/http_calls"] == 8
    assert met["judge/http_retries"] == 8 - met["judge/attempts"]


def test_breaker_stops_asking_a_dead_judge_for_the_rest_of_the_batch():
    with ChatServer(lambda body: Reply(503, b"down")) as server:
        m = model(server, retries=0, max_failures=1, concurrency=1, breaker=3)
        scores = m.score([ctx(f"It turns left, take {i}.") for i in range(10)])
        assert [s["accuracy"] for s in scores] == [1.0] * 10     # all by the rule
        assert len(server.requests) == 3
        met = m.metrics()
        assert met["judge/fallbacks"] == 10 and met["judge/skipped"] == 7
        m.score([ctx("It turns left, once more.")])               # a new batch asks again
        assert len(server.requests) == 4
    with ChatServer(lambda body: Reply(503, b"down")) as server:
        m = model(server, retries=0, max_failures=1, concurrency=1, breaker=0)   # off
        m.score([ctx(f"It turns left, take {i}.") for i in range(5)])
        assert len(server.requests) == 5 and m.metrics()["judge/skipped"] == 0


def test_unreachable_judge_never_raises():
    cfg = RewardConfig(judge=JudgeConfig(spec="http://127.0.0.1:9/v1#judge", timeout_s=0.5,
                                         retries=0, backoff_s=0.01, max_failures=1))
    m = RewardModel(cfg)
    scores = m.score([ctx("It turns left."), ctx("no idea")])
    assert [s["accuracy"] for s in scores] == [1.0, 0.0]
    assert m.metrics()["judge/fallbacks"] == 2


def test_cache_hit_avoids_a_request_and_garbage_is_not_cached(tmp_path):
    with ChatServer(lambda body: reply_text("Judgement: 0.5")) as server:
        first = model(server, cache_dir=tmp_path).score([ctx("It turns.")])
    assert len(server.requests) == 1 and first[0]["accuracy"] == 0.5
    with ChatServer(lambda body: Reply(500, b"down")) as server:   # a new run, judge down
        m = model(server, cache_dir=tmp_path)
        again = m.score([ctx("It turns.")])
        assert again == first and server.requests == [] and m.metrics()["judge/cache_hits"] == 1
        # a different question is a different key: it asks (and falls back)
        m.score([ctx("It turns.", question="What colour is it?")])
        assert len(server.requests) == 4 and m.metrics()["judge/fallbacks"] == 1
    with ChatServer(lambda body: reply_text("I give it 1 point")) as server:
        model(server, cache_dir=tmp_path, max_failures=1).score([ctx("It spins.")])
    with ChatServer(lambda body: reply_text("Judgement: 0")) as server:
        m = model(server, cache_dir=tmp_path)
        assert m.score([ctx("It spins.")])[0]["accuracy"] == 0.0   # asked: garbage not cached
        assert len(server.requests) == 1 and m.metrics()["judge/cache_hits"] == 0


def test_concurrency_is_bounded():
    with ChatServer(lambda body: Reply(200, completion("Judgement: 1"), delay_s=0.2)) as server:
        m = model(server, concurrency=3)
        scores = m.score([ctx(f"It turns left, take {i}.") for i in range(9)])
    assert [s["accuracy"] for s in scores] == [1.0] * 9
    assert 1 < server.max_in_flight <= 3 and len(server.requests) == 9
