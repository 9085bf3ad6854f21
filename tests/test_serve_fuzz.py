"""A bounded fuzz of `seeker-jax serve` on 127.0.0.1 (hypothesis, raw HTTP): request bodies built
from the OpenAI schema with hostile values in every slot (wrong types, huge numbers, lone
surrogates, NULs, deep nesting, unknown fields, media URLs that point outside the root or at
playlists), raw bytes, and random methods and paths. Every answer must be a complete HTTP
response below 500: an OpenAI-shaped error, a completion, or a stream that ends in [DONE] or an
error event; the connection is never dropped, and the file outside the media root is never
read."""
import base64
import io
import json
import os

import httpx2 as httpx  # what this openai client is built on
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from seeker_jax.checkpointing.tiny import save_tiny_checkpoint
from seeker_jax.env.testing import write_index_video
from seeker_jax.serve.loading import ServeConfig
from seeker_jax.serve.media import MediaLimits
from seeker_jax.serve.testing import serve_in_thread

HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The media root (an image, a clip, a symlink out, two playlists) and the secret file
    beside it."""
    base = tmp_path_factory.mktemp("fuzz")
    root, outside = base / "root", base / "outside"
    root.mkdir(), outside.mkdir()
    secret = write_index_video(outside / "secret.mp4", 6)
    write_index_video(root / "clip.mp4", 6)
    Image.fromarray(np.zeros((40, 56, 3), np.uint8)).save(root / "frame.png")
    os.symlink(secret, root / "link.mp4")
    (root / "list.mp4").write_bytes(b"ffconcat version 1.0\nfile link.mp4\n")
    (root / "hls.m3u8").write_bytes(b"#EXTM3U\n#EXTINF:1,\nlink.mp4\n#EXT-X-ENDLIST\n")
    return root, outside, secret


@pytest.fixture(scope="module")
def server(tmp_path_factory, world):
    ckpt = save_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny")))
    cfg = ServeConfig(model_name="tiny", batch_size=4, max_len=256, decode_steps=4,
                      default_max_tokens=3,
                      limits=MediaLimits(allowed_root=str(world[0]), max_images=3,
                                         max_video_seconds=5.0, max_image_pixels=256 * 256))
    with serve_in_thread(f"ckpt:{ckpt}", config=cfg) as running:
        yield running


@pytest.fixture(scope="module")
def watch(world):
    """Whether the secret outside the root gets read: its access time, set to 1 s, changes on
    any read (relatime). None on a mount that does not record access times."""
    secret = world[2]
    os.utime(secret, (1, os.stat(secret).st_mtime))
    with open(secret, "rb") as f:
        f.read(1)
    works = os.stat(secret).st_atime != 1
    os.utime(secret, (1, os.stat(secret).st_mtime))
    return (lambda: os.stat(secret).st_atime != 1) if works else None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _png(h: int, w: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def urls(world) -> st.SearchStrategy:
    root, outside, secret = world
    rel = os.path.relpath(secret, "/tmp")
    pool = [
        f"file://{root}/frame.png", f"file://{root}/clip.mp4", f"file://{root}/link.mp4",
        f"file://{root}/list.mp4", f"file://{root}/hls.m3u8", f"file://{secret}",
        f"file://{root}/../outside/secret.mp4", f"file://{root}/%2e%2e/outside/secret.mp4",
        f"file://{root}/frame\x00.png", str(secret), "file://frame.png", "file:///etc/passwd",
        "http://127.0.0.1:1/a.png", "data:image/png;base64," + _b64(_png(24, 32)),
        "data:image/png;base64," + _b64(_png(2, 600)), "data:image/png;base64,%%%",
        "data:video/mp4;base64," + _b64(f"ffconcat version 1.0\nfile {rel}\n".encode()),
        "data:video/mp4;base64," + _b64(f"ffconcat version 1.0\nfile '{secret}'\n".encode()),
        "data:video/mp4;base64," + _b64(f"#EXTM3U\n#EXTINF:1,\n{secret}\n".encode()),
        "data:video/mp4;base64," + _b64((root / "clip.mp4").read_bytes()),
        "data:video/png;base64," + ",".join([_b64(_png(32, 32))] * 2),
        "data:video/png;base64," + ",".join([_b64(_png(2, 640))] * 2), "data:", "",
    ]
    return st.sampled_from(pool) | st.text(max_size=30)


SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b"])
SAFE = st.text(st.characters(exclude_categories=["Cs"]), max_size=16)
TEXT = SAFE | SURROGATES | st.sampled_from(["\x00", "\n\r", "<think>", "<tool_call>",
                                            "<|im_end|>", "x" * 5000])
LEAF = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | TEXT
        | st.floats(allow_nan=False, allow_infinity=False))
JSONISH = st.recursive(LEAF, lambda c: st.lists(c, max_size=3)
                       | st.dictionaries(TEXT, c, max_size=3), max_leaves=12)


def deep(n: int):
    value: object = "x"
    for _ in range(n):
        value = [value]
    return value


HOSTILE = JSONISH | st.sampled_from([deep(100), {"a": deep(70)}, -1, 10**30, 1e308, ""])
TOOL = {"type": "function", "function": {"name": "crop_video", "description": "crop",
                                         "parameters": {"type": "object", "properties": {
                                             "start_time": {"type": "number"}}}}}


def valid_bodies(world) -> st.SearchStrategy:
    """Requests a client might send: mostly valid, with media URLs from the hostile pool."""
    url = urls(world)
    part = (st.fixed_dictionaries({"type": st.just("text"), "text": SAFE})
            | st.fixed_dictionaries({"type": st.just("image_url"),
                                     "image_url": st.fixed_dictionaries({"url": url})})
            | st.fixed_dictionaries({"type": st.just("video_url"), "video_url":
                                     st.fixed_dictionaries({"url": url}, optional={
                                         "timestamps": st.lists(st.floats(0, 4), max_size=2),
                                         "fps": st.floats(0.5, 1e9)})}))
    content = SAFE | st.lists(part, min_size=1, max_size=2)
    call = st.fixed_dictionaries({"id": SAFE, "type": st.just("function"), "function":
                                  st.fixed_dictionaries({"name": st.just("crop_video"),
                                                         "arguments": st.sampled_from(
                                                             ['{"start_time": 1}', "{}"])})})
    turn = st.one_of(
        st.tuples(st.fixed_dictionaries({"role": st.just("assistant"), "content": SAFE}),
                  st.fixed_dictionaries({"role": st.just("user"), "content": content})),
        st.tuples(st.fixed_dictionaries({"role": st.just("assistant"),
                                         "tool_calls": st.lists(call, min_size=1, max_size=2)}),
                  st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": SAFE,
                                         "content": content})))
    messages = st.builds(lambda system, first, turns: system + [first] + [m for t in turns
                                                                           for m in t],
                         st.lists(st.fixed_dictionaries({"role": st.just("system"),
                                                         "content": SAFE}), max_size=1),
                         st.fixed_dictionaries({"role": st.just("user"), "content": content}),
                         st.lists(turn, max_size=2))
    return st.fixed_dictionaries(
        {"model": st.just("tiny"), "messages": messages},
        optional={"temperature": st.sampled_from([0.0, 0.0, 1e-9, 0.7, 1.3, 2.0]),
                  "top_p": st.sampled_from([1.0, 0.9, 1e-9]),
                  "top_k": st.sampled_from([-1, 0, 40, 10**12]), "n": st.integers(1, 3),
                  "seed": st.integers(-2**80, 2**80), "max_tokens": st.integers(1, 4),
                  "stream": st.sampled_from([True, True, False]), "logprobs": st.just(True),
                  "top_logprobs": st.sampled_from([0, 3]),
                  "stop": st.lists(SAFE.filter(bool), max_size=3),
                  "tools": st.just([TOOL]),
                  "tool_choice": st.sampled_from(["auto", "none", "required", {
                      "type": "function", "function": {"name": "crop_video"}}]),
                  "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
                  "return_token_ids": st.booleans(), "user": SAFE})


FIELDS = ["model", "messages", "temperature", "top_p", "top_k", "n", "seed", "max_tokens",
          "max_completion_tokens", "stream", "logprobs", "top_logprobs", "stop", "tools",
          "tool_choice", "stream_options", "response_format", "presence_penalty",
          "logit_bias", "parallel_tool_calls", "return_token_ids"]


def _mutate(body: dict, where: tuple, value) -> dict:
    """body with one slot replaced: ("top", key), ("message", i, key) or ("part", i, j, key);
    a slot an earlier mutation destroyed falls back to the message, then to `messages`."""
    body = json.loads(json.dumps(body))
    if where[0] != "top":
        msgs = body.get("messages")
        msg = msgs[where[1] % len(msgs)] if isinstance(msgs, list) and msgs else None
        if isinstance(msg, dict):
            content = msg.get("content")
            part = (content[where[2] % len(content)]
                    if where[0] == "part" and isinstance(content, list) and content else None)
            (part if isinstance(part, dict) else msg)[where[-1]] = value
            return body
        where = ("top", "messages")
    body[where[1]] = value
    return body


def bodies(world) -> st.SearchStrategy:
    """Valid-looking bodies with up to three slots replaced by hostile values (wrong types,
    huge or negative numbers, lone surrogates, NULs, deep nesting, unknown keys)."""
    where = (st.tuples(st.just("top"), st.sampled_from(FIELDS) | TEXT)
             | st.tuples(st.just("message"), st.integers(0, 5),
                         st.sampled_from(["role", "content", "tool_calls", "tool_call_id",
                                          "name", "reasoning_content"]) | TEXT)
             | st.tuples(st.just("part"), st.integers(0, 5), st.integers(0, 2),
                         st.sampled_from(["type", "text", "image_url", "video_url"]) | TEXT))
    mutations = st.lists(st.tuples(where, HOSTILE), max_size=3)

    def apply(body, muts):
        for w, v in muts:
            body = _mutate(body, w, v)
        return body
    return st.builds(apply, valid_bodies(world), mutations)


def check(r: httpx.Response) -> None:
    """A complete answer below 500, in OpenAI's shapes."""
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code >= 400:
        err = r.json()["error"]
        assert isinstance(err["message"], str) and err["code"] == r.status_code
        return
    if r.headers["content-type"].startswith("text/event-stream"):
        events = [line[len("data: "):] for line in r.text.split("\n") if line.startswith("data: ")]
        assert events, r.text[:300]
        for e in events[:-1]:
            assert "choices" in json.loads(e)
        last = events[-1]
        assert last == "[DONE]" or "error" in json.loads(last), last[:300]
        return
    body = r.json()
    for choice in body.get("choices", []):
        message = choice["message"]
        if not message.get("tool_calls"):
            assert isinstance(message["content"], str)


def send(server, content: bytes, method: str = "POST", path: str = "/chat/completions"
         ) -> httpx.Response:
    return httpx.request(method, server.url + path, content=content, timeout=300,
                         headers={"content-type": "application/json"})


def fuzz_bodies(server, world, watch, **budget) -> None:
    @settings(deadline=None, database=None, suppress_health_check=HEALTH, **budget)
    @given(body=bodies(world))
    def run(body):
        raw = json.dumps(body)  # lone surrogates travel as \\ud800 escapes
        check(send(server, raw.encode()))
        if watch is not None:
            assert not watch(), f"read the secret outside the root with {raw[:300]}"

    run()


def test_fuzzed_bodies_get_no_5xx_and_never_read_outside_the_root(server, world, watch):
    fuzz_bodies(server, world, watch, max_examples=40, derandomize=True)


@pytest.mark.slow
def test_fuzzed_bodies_longer(server, world, watch):
    """The same fuzz, 600 more examples drawn at random (a failure prints its seed)."""
    fuzz_bodies(server, world, watch, max_examples=600)


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(raw=st.binary(max_size=300) | st.text(max_size=200).map(str.encode)
       | st.sampled_from([b"{" * 5000, b'{"model": "tiny", "messages": [{"role": "user", "'
                                       b'content": "\xed\xa0\x80"}]}', b"NaN", b"[]", b"{}",
                          b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}],'
                          b' "temperature": Infinity}']))
def test_fuzzed_raw_bytes_get_a_4xx(server, raw):
    r = send(server, raw)
    assert 400 <= r.status_code < 500 and "message" in r.json()["error"]


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
       path=st.sampled_from(["/chat/completions", "/models", "/../health", "/x", "/chat"])
       | st.text(alphabet="abc/%.-_~", max_size=20).map(lambda p: "/" + p))
def test_fuzzed_methods_and_paths_get_no_5xx(server, method, path):
    r = send(server, b"{}", method, path)
    assert r.status_code < 500
    if r.status_code >= 400:
        assert r.json()["error"]["code"] == r.status_code
