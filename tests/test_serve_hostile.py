"""`seeker-jax serve` against hostile input, on 127.0.0.1 through the official openai client and
raw HTTP (a tiny random checkpoint over the Qwen vocabulary):

- media stay under --allowed-media-root: an ffconcat or HLS playlist, sent as `data:video/mp4`
  or as a file under the root, never makes FFmpeg open a video outside it (400; the secret
  file's access time shows it was never read), and refusals never tell whether a path
  outside the root exists;
- every parsing and media failure is a 4xx in OpenAI's error shape: nested JSON, NaN, lone
  surrogates, NUL bytes, aspect ratios over 200, a body over the size limit, unknown routes
  and methods, tool_choice without tools; unknown field names are never echoed in a header;
- content is the same in both modes (trimmed at its ends), and always a string without tool
  calls.
"""
import base64
import io
import json
import os
import socket
import tempfile

import av
import httpx2 as httpx  # what this openai client is built on
import numpy as np
import openai
import pytest
from PIL import Image

from seeker_jax.checkpointing.tiny import save_tiny_checkpoint
from seeker_jax.env.testing import write_index_video
from seeker_jax.env.video import VideoError, VideoFile
from seeker_jax.serve.loading import ServeConfig
from seeker_jax.serve.media import MediaLimits
from seeker_jax.serve.serving import ChatService
from seeker_jax.serve.testing import serve_in_thread

TOOLS = [{"type": "function", "function": {"name": "crop_video", "description": "crop",
                                           "parameters": {"type": "object", "properties": {
                                               "start_time": {"type": "number"}}}}}]


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    return save_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """(root, outside): the media root, and a folder beside it holding secret.mp4, which a
    symlink inside the root points at."""
    base = tmp_path_factory.mktemp("media")
    root, outside = base / "root", base / "outside"
    root.mkdir(), outside.mkdir()
    write_index_video(outside / "secret.mp4", 10)
    write_index_video(root / "clip.mp4", 10)
    os.symlink(outside / "secret.mp4", root / "secretlink.mp4")
    (root / "playlist.mp4").write_bytes(b"ffconcat version 1.0\nfile secretlink.mp4\n")
    (root / "hls.mp4").write_bytes(b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n"
                                   b"secretlink.mp4\n#EXT-X-ENDLIST\n")
    return root, outside


@pytest.fixture(scope="module")
def server(ckpt_dir, dirs):
    cfg = ServeConfig(model_name="tiny", batch_size=4, max_len=512, decode_steps=4,
                      default_max_tokens=4,
                      limits=MediaLimits(allowed_root=str(dirs[0]), max_video_seconds=10.0))
    with serve_in_thread(f"ckpt:{ckpt_dir}", config=cfg) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="none", max_retries=0, timeout=300)


def post(server, body, **kw) -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(server.url + "/chat/completions", content=content,
                      headers={"content-type": "application/json"}, timeout=300, **kw)


def user(*parts, **extra) -> dict:
    return {"model": "tiny", "max_tokens": 2, "temperature": 0,
            "messages": [{"role": "user", "content": list(parts)}], **extra}


def video_part(url: str) -> dict:
    return {"type": "video_url", "video_url": {"url": url}}


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def data_url(raw: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def png(h: int, w: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def refused(r: httpx.Response, status: int = 400) -> str:
    """The message of an OpenAI-shaped refusal with this status."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == status
    assert err["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    return err["message"]


class AccessWatch:
    """Whether a file was read, by its access time: set to 1 s, it changes on any read
    (relatime updates an atime older than the mtime). `works` is False on a noatime mount."""

    def __init__(self, path):
        self.path = path
        self.arm()
        with open(path, "rb") as f:
            f.read(1)
        self.works = self.read()
        self.arm()

    def arm(self) -> None:
        os.utime(self.path, (1, os.stat(self.path).st_mtime))

    def read(self) -> bool:
        return os.stat(self.path).st_atime != 1


# ----------------------------------------------------------------------------- media root

def test_playlists_never_open_a_video_outside_the_root(server, dirs):
    root, outside = dirs
    secret = outside / "secret.mp4"
    watch = AccessWatch(secret)
    rel_tmp = os.path.relpath(secret, tempfile.gettempdir())
    playlists = [
        f"ffconcat version 1.0\nfile {rel_tmp}\n".encode(),  # the case
        f"ffconcat version 1.0\nfile '{secret}'\n".encode(),
        f"#EXTM3U\n#EXTINF:1.0,\n{secret}\n#EXT-X-ENDLIST\n".encode(),
        f'<?xml version="1.0"?><MPD><BaseURL>{secret}</BaseURL></MPD>'.encode(),
    ]
    for raw in playlists:
        for mime in ("video/mp4", "application/octet-stream"):
            msg = refused(post(server, user(video_part(data_url(raw, mime)))))
            assert "is not a" in msg and "video" in msg and str(outside) not in msg
    for name in ("playlist.mp4", "hls.mp4", "secretlink.mp4"):
        msg = refused(post(server, user(video_part(f"file://{root / name}"))))
        assert str(outside) not in msg
    if watch.works:
        assert not watch.read(), "the server read a file outside the media root"
    # a real video under the root still works, as a file and as bytes
    assert post(server, user(video_part(f"file://{root / 'clip.mp4'}"))).status_code == 200
    raw = (root / "clip.mp4").read_bytes()
    assert post(server, user(video_part(data_url(raw, "video/mp4")))).status_code == 200
    # the bytes must be what the type says: an mp4 is not video/webm
    assert "not a video/webm file" in refused(
        post(server, user(video_part(data_url(raw, "video/webm")))))


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_video_file_opens_only_its_own_container(dirs, tmp_path, backend):
    """The one video opener (env.video.VideoFile, behind the tools, the pipeline, evaluation
    and serve): a playlist is refused before FFmpeg sees it, whatever it is named; an mp4
    header in front of a playlist is no way around it; uploads decode from memory."""
    root, outside = dirs
    watch = AccessWatch(outside / "secret.mp4")
    for name in ("playlist.mp4", "hls.mp4"):
        with pytest.raises(VideoError, match="not a video file in a supported container"):
            _ = VideoFile(root / name, backends=(backend,)).info
    disguised = tmp_path / "disguised.mp4"
    disguised.write_bytes(b"\x00\x00\x00\x14ftypisom\x00\x00\x02\x00isom"
                          + b"\nffconcat version 1.0\nfile secret.mp4\n" * 4)
    os.symlink(outside / "secret.mp4", tmp_path / "secret.mp4")
    with pytest.raises(VideoError, match="corrupt or not a video") as info:
        _ = VideoFile(disguised, backends=(backend,)).info
    assert str(tmp_path) not in str(info.value)  # named by its name, never its path
    if watch.works:
        assert not watch.read()
    raw = (root / "clip.mp4").read_bytes()
    from_bytes = VideoFile.from_bytes(raw, "upload", backends=(backend,))
    from_file = VideoFile(root / "clip.mp4", backends=(backend,))
    assert from_bytes.info == from_file.info
    np.testing.assert_array_equal(from_bytes.read(np.array([0, 9])),
                                  from_file.read(np.array([0, 9])))


def test_refusals_do_not_tell_what_exists_outside_the_root(server, dirs):
    root, outside = dirs

    def message(url):
        return refused(post(server, user(video_part(url))))

    there, absent = outside / "secret.mp4", outside / "absent.mp4"
    assert message(f"file://{there}").replace(str(there), "P") == \
        message(f"file://{absent}").replace(str(absent), "P")
    for target in (there, absent):  # a playlist naming either: the same refusal
        raw = f"ffconcat version 1.0\nfile '{target}'\n".encode()
        assert message(data_url(raw, "video/mp4")) == message(data_url(
            f"ffconcat version 1.0\nfile '{there}'\n".encode(), "video/mp4"))
    for url in (f"file://{root}/../outside/secret.mp4", f"file://{root}/%2e%2e/outside/x.mp4",
                "file://relative/clip.mp4", f"file://{root}/clip\u0000.mp4", "clip.mp4"):
        refused(post(server, user(video_part(url))))


# ----------------------------------------------------------------------------- no 5xx

def test_malformed_json_is_a_400(server):
    deep = '{"model": "tiny", "messages": ' + "[" * 50_000 + "]" * 50_000 + "}"
    assert "nested deeper" in refused(post(server, deep))
    params = {"type": "object"}
    for _ in range(70):
        params = {"type": "object", "properties": {"x": params}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": params}}]
    assert "nested deeper than 64" in refused(post(server, user({"type": "text", "text": "hi"},
                                                                 tools=tools)))
    args = "[" * 20_000 + "]" * 20_000
    body = {"model": "tiny", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "crop_video", "arguments": args}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}]}
    assert "nested deeper" in refused(post(server, body))
    assert "not JSON" in refused(post(server, '{"model": "tiny", "temperature": NaN, '
                                              '"messages": [{"role": "user", "content": "x"}]}'))
    for raw in (b"\xff\xfe\x00garbage", b"[1, 2]", b'"just a string"', b""):
        refused(post(server, raw))


@pytest.mark.parametrize("where", ["content", "system", "model", "stop", "tool", "key", "raw"])
def test_lone_surrogates_are_a_400(server, where):
    s = "bad \ud800 text"
    body = {"model": "tiny", "max_tokens": 2,
            "messages": [{"role": "system", "content": "be brief"},
                         {"role": "user", "content": "hi"}]}
    if where == "content":
        body["messages"][1]["content"] = [{"type": "text", "text": s}]
    elif where == "system":
        body["messages"][0]["content"] = s
    elif where == "model":
        body["model"] = s
    elif where == "stop":
        body["stop"] = [s]
    elif where == "tool":
        body["tools"] = [{"type": "function", "function": {"name": s}}]
    else:
        body[s] = 1
    raw = json.dumps(body)  # ensure_ascii: "\ud800" on the wire
    if where == "raw":  # the surrogate's own UTF-8-style bytes, which json.loads lets through
        raw = json.dumps(body).encode().replace(b'"hi"', b'"h\xed\xa0\x80i"')
    assert "surrogate" in refused(post(server, raw))


def test_media_failures_are_a_400(server, dirs):
    root = dirs[0]
    assert "longer side" in refused(post(server, user(image_part(data_url(png(2, 500),
                                                                           "image/png")))))
    tall = [png(600, 2)] * 2
    frames = "data:video/png;base64," + ",".join(base64.b64encode(f).decode() for f in tall)
    assert "longer side" in refused(post(server, user(video_part(frames))))
    wide = root / "wide.mp4"
    with av.open(str(wide), "w") as c:
        st = c.add_stream("libx264", rate=10)
        st.width, st.height, st.pix_fmt = 1024, 4, "yuv420p"
        for _ in range(4):
            c.mux(st.encode(av.VideoFrame.from_ndarray(np.zeros((4, 1024, 3), np.uint8),
                                                       format="rgb24")))
        c.mux(st.encode())
    assert "longer side" in refused(post(server, user(video_part(f"file://{wide}"))))
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert "not a readable image" in refused(post(server, user(image_part(data_url(
        eps, "image/png")))))
    for url in (f"file://{root}/clip\u0000.png", "data:image/png;base64,@@@",
                "data:image/png,notbase64", "data:video/ogg;base64,AAAA", "ftp://x/y.png"):
        refused(post(server, user(image_part(url))))
        refused(post(server, user(video_part(url))))


def test_size_limit_is_a_413_before_the_body_is_read(server):
    port = int(server.url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{")
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.partition(b"\r\n\r\n")[2]) < int(
                reply.lower().partition(b"content-length: ")[2].partition(b"\r\n")[0] or 0):
            data = s.recv(65536)
            if not data:
                break
            reply += data
    head, _, body = reply.decode().partition("\r\n\r\n")
    assert " 413 " in head.partition("\r\n")[0]
    assert "over the server's limit" in json.loads(body)["error"]["message"]


def test_routes_methods_and_unknown_fields(server):
    base = server.url.rsplit("/v1", 1)[0]
    assert "no route" in refused(httpx.get(base + "/v1/nothing", timeout=30), 404)
    r = httpx.get(server.url + "/chat/completions", timeout=30)
    assert "not allowed" in refused(r, 405) and "POST" in r.headers["allow"]
    refused(httpx.post(server.url + "/models", timeout=30), 405)
    # unknown field names are logged, never echoed into headers: a newline, 70 KB, non-ASCII
    for name in ("x\r\nset-cookie: a=b", "ü" * 35_000, "\u2028名前"):
        r = post(server, user({"type": "text", "text": "hi"}, **{name: 1}))
        assert r.status_code == 200
        assert "set-cookie" not in r.headers and "x-seeker-ignored-fields" not in r.headers
        assert sum(len(k) + len(v) for k, v in r.headers.items()) < 1000


def test_tool_choice_without_tools_is_a_400(client):
    msgs = [{"role": "user", "content": "hi"}]
    for choice in ("required", {"type": "function", "function": {"name": "crop_video"}}):
        for tools in ({}, {"tools": []}):
            with pytest.raises(openai.BadRequestError, match="needs tools") as info:
                client.chat.completions.create(model="tiny", messages=msgs, tool_choice=choice,
                                               max_tokens=2, **tools)
            body = info.value.body
            assert body.get("error", body)["param"] == "tool_choice"
    for choice in ("auto", "none"):  # allowed without tools (nothing to force)
        client.chat.completions.create(model="tiny", messages=msgs, tool_choice=choice,
                                       max_tokens=2)


def test_extreme_sampling_values_are_served(server):
    for extra in ({"top_k": 10**12}, {"temperature": 1e-40, "logprobs": True},
                  {"top_p": 1e-30, "temperature": 2.0}, {"seed": -10**30},
                  {"max_tokens": 10**18, "stop": ["\n"] * 16}, {"n": 4, "temperature": 1.5}):
        r = post(server, {"model": "tiny", "max_tokens": 2,
                          "messages": [{"role": "user", "content": "hi"}], **extra})
        assert r.status_code == 200, (extra, r.text[:300])
        for choice in r.json()["choices"]:
            assert isinstance(choice["message"]["content"], str)
    assert "stop" in refused(post(server, user({"type": "text", "text": "x"},
                                                stop=["a"] * 17)))
    assert "stop" in refused(post(server, user({"type": "text", "text": "x"}, stop=[""])))


# ----------------------------------------------------------------------------- content

FORCED = {"spaces": "  \n\n \n",
          "trim": "<think>\n  hm, let me see \n</think>\n\n  Hi  there \n\n",
          "call": '<tool_call>\n{"name": "crop_video", "arguments": {"start_time": 1}}\n'
                  '</tool_call>\n'}


class ForcedService(ChatService):
    """The tiny model made to write FORCED[user text] (the sampler's forced tokens, as
    tool_choice forces a call), then <|im_end|>."""

    def _forced(self, req):
        text = FORCED.get(req.messages[-1].content)
        if text is None:
            return super()._forced(req)
        tok = self.tokenizer
        return tuple(tok.encode(text, add_special_tokens=False)
                     + [tok.convert_tokens_to_ids("<|im_end|>")])


def both_modes(c, prompt, **kw):
    """(non-streaming message as raw JSON, streamed content, streamed reasoning)."""
    msgs = [{"role": "user", "content": prompt}]
    whole = c.chat.completions.with_raw_response.create(
        model="tiny", messages=msgs, tools=TOOLS, max_tokens=60, temperature=0, **kw)
    message = json.loads(whole.text)["choices"][0]["message"]
    chunks = list(c.chat.completions.create(model="tiny", messages=msgs, tools=TOOLS,
                                            max_tokens=60, temperature=0, stream=True, **kw))
    content = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    reasoning = "".join(getattr(ch.choices[0].delta, "reasoning_content", None) or ""
                        for ch in chunks if ch.choices)
    return message, content, reasoning


def test_content_is_the_same_in_both_modes_and_always_a_string(server):
    svc = ForcedService(server.service.engine, server.service.env, "tiny",
                        server.service.limits)
    with serve_in_thread(svc) as forced:
        c = openai.OpenAI(base_url=forced.url, api_key="none", max_retries=0, timeout=300)
        message, content, reasoning = both_modes(c, "spaces")
        assert message["content"] == "" == content and "tool_calls" not in message
        message, content, reasoning = both_modes(c, "trim")
        assert message["content"] == "Hi  there" == content
        assert message["reasoning_content"] == "hm, let me see" == reasoning
        message, content, _ = both_modes(c, "call")
        assert message["content"] is None and content == ""  # null beside tool calls
        assert message["tool_calls"][0]["function"]["name"] == "crop_video"


def test_a_stop_string_inside_a_token_never_reaches_the_stream(server, client):
    """The token that completes a stop string may hold its start: a stream must cut there
    too (it used to send the first characters of the stop string)."""
    tok = server.service.tokenizer
    msgs = [{"role": "user", "content": "Tell me a long story"}]
    ids = client.chat.completions.create(model="tiny", messages=msgs, temperature=0,
                                         max_tokens=24, extra_body={"return_token_ids": True}
                                         ).choices[0].token_ids
    k = next(k for k in range(2, len(ids)) if len(tok.decode(ids[k:k + 1]).strip()) >= 2)
    head, piece = tok.decode(ids[:k]), tok.decode(ids[k:k + 1])
    stop = piece[1:] + tok.decode(ids[k + 1:k + 2])  # starts inside token k
    assert stop not in head + piece[:1]
    whole = client.chat.completions.create(model="tiny", messages=msgs, temperature=0,
                                           max_tokens=24, stop=[stop])
    chunks = client.chat.completions.create(model="tiny", messages=msgs, temperature=0,
                                            max_tokens=24, stop=[stop], stream=True)
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert streamed == whole.choices[0].message.content
    assert stop not in streamed
