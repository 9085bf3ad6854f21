"""The OpenAI-compatible chat client against a real HTTP server on 127.0.0.1 (seeker_jax/data/testing.py):
good replies, 500s, 429s, timeouts, garbage, truncated JSON, the cache, concurrency and the rate
limit."""
import itertools

import numpy as np
import pytest

from seeker_jax.data.testing import ChatServer, Reply, completion, reply_text
from seeker_jax.data.openai_api import (ApiError, ChatClient, TokenBucket, image_data_url,
                                        parse_model_url, request_key)

MSG = [{"role": "user", "content": "hi"}]


def client(server, **kw):
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("timeout_s", 2.0)
    return ChatClient(server.url, "judge", **kw)


def test_good_reply_and_request_body():
    with ChatServer(lambda body: reply_text("Judgement: 1")) as server:
        res = client(server, defaults={"temperature": 0.3}).chat(MSG, max_tokens=5)
    assert res.text == "Judgement: 1" and res.finish_reason == "stop" and not res.cached
    assert server.requests == [{"model": "judge", "messages": MSG, "temperature": 0.3,
                                "max_tokens": 5}]
    assert res.usage["prompt_tokens"] == 10


@pytest.mark.parametrize("bad", [
    Reply(500, b'{"error": "boom"}'),
    Reply(200, b"<html>garbage</html>"),
    Reply(200, b'{"choices": [{"message": {"content": "trunc'),
    Reply(200, {"choices": []}),
    Reply(429, b"slow down"),
])
def test_retries_until_a_good_reply(bad):
    count = itertools.count()
    with ChatServer(lambda body: bad if next(count) < 2 else reply_text("ok")) as server:
        c = client(server, max_retries=3)
        assert c.chat(MSG).text == "ok"
    assert len(server.requests) == 3 and c.stats.retries == 2 and c.stats.failures == 0


def test_gives_up_with_a_clear_error_after_retries():
    with ChatServer(lambda body: Reply(503, b"down")) as server:
        c = client(server, max_retries=2)
        with pytest.raises(ApiError, match=r"HTTP 503.*after 3 attempts") as info:
            c.chat(MSG)
    assert info.value.status == 503 and len(server.requests) == 3 and c.stats.failures == 1


def test_client_errors_are_not_retried():
    with ChatServer(lambda body: Reply(400, b'{"error": "bad model"}')) as server:
        c = client(server, max_retries=3)
        with pytest.raises(ApiError, match="HTTP 400"):
            c.chat(MSG)
    assert len(server.requests) == 1


def test_timeout_then_success():
    count = itertools.count()
    with ChatServer(lambda body: Reply(200, completion("late"), delay_s=1.0) if next(count) == 0
                    else reply_text("on time")) as server:
        c = client(server, timeout_s=0.3, max_retries=1)
        assert c.chat(MSG).text == "on time"
    assert c.stats.retries == 1


def test_unreachable_server():
    c = ChatClient("http://127.0.0.1:9/v1", "m", max_retries=1, backoff_s=0.01, timeout_s=0.5)
    with pytest.raises(ApiError, match="no answer from"):
        c.chat(MSG)


def test_cache_answers_without_a_request(tmp_path):
    with ChatServer(lambda body: reply_text("cached answer")) as server:
        first = client(server, cache_dir=tmp_path).chat(MSG, temperature=0.0)
        again = client(server, cache_dir=tmp_path).chat(MSG, temperature=0.0)
        other = client(server, cache_dir=tmp_path).chat(MSG, temperature=0.5)
    assert (first.text, again.text) == ("cached answer", "cached answer")
    assert again.cached and not first.cached and not other.cached
    assert len(server.requests) == 2  # the third differs in temperature: a new key


def test_chat_many_bounded_concurrency_and_errors_in_place():
    def handler(body):
        text = body["messages"][0]["content"]
        return Reply(400, b"no") if text == "bad" else Reply(200, completion(text.upper()),
                                                            delay_s=0.1)

    with ChatServer(handler) as server:
        c = client(server, max_concurrency=4)
        reqs = [([{"role": "user", "content": w}], {}) for w in
                ["a", "b", "bad", "c", "d", "e", "f", "g", "h"]]
        out = c.chat_many(reqs)
    assert [o.text if not isinstance(o, ApiError) else "ERR" for o in out] == \
        ["A", "B", "ERR", "C", "D", "E", "F", "G", "H"]
    assert server.max_in_flight <= 4 and c.stats.max_in_flight <= 4
    assert server.max_in_flight >= 3  # the limit is actually reached, not serialized


def test_rate_limit_spaces_calls(monkeypatch):
    """On a fake clock (sleep advances it): the bucket's waits, hand-worked, not timed. A rate
    of 16/s keeps every time a binary fraction, so the fake clock's sums are exact."""
    import seeker_jax.data.openai_api as api

    clock = {"now": 100.0}
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        clock["now"] += s

    monkeypatch.setattr(api.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(api.time, "sleep", sleep)
    bucket = TokenBucket(rate=16.0, burst=1)
    stamps = []
    for _ in range(6):
        bucket.acquire()
        stamps.append(clock["now"] - 100.0)
    # 1 token at once, then one every 1/16 s: 5 waits of 0.0625 s, nothing more
    assert stamps == [0.0, 0.0625, 0.125, 0.1875, 0.25, 0.3125]
    assert sleeps == [0.0625] * 5
    clock["now"] += 1.0  # idle for 1 s: a burst of 3 refills to at most 3 tokens
    burst = TokenBucket(rate=16.0, burst=3)
    sleeps.clear()
    for _ in range(3):
        burst.acquire()
    assert sleeps == []
    burst.acquire()
    assert sleeps == [0.0625]


def test_helpers():
    assert parse_model_url("http://127.0.0.1:8000/v1#qwen") == ("http://127.0.0.1:8000/v1", "qwen")
    with pytest.raises(ValueError, match="URL#MODEL"):
        parse_model_url("qwen")
    url = image_data_url(np.zeros((4, 4, 3), np.uint8))
    assert url.startswith("data:image/png;base64,")
    assert request_key({"a": 1, "b": 2}) == request_key({"b": 2, "a": 1})
