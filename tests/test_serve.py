"""`seeker-jax serve` through the official openai client on 127.0.0.1 (a tiny random checkpoint,
the Qwen vocabulary): greedy outputs equal the in-process sampler's token for token, streaming
equals non-streaming, images, tool calls, 16 concurrent clients, the conversation cache, and
bad input answered with 4xx JSON."""
import base64
import concurrent.futures as cf
import io
import json

import httpx2 as httpx  # what this openai client is built on
import numpy as np
import openai
import pytest
from PIL import Image

from hf_reference import save_tiny_qwen_checkpoint
from seeker_jax.models.chat import concat_segments
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams
from seeker_jax.serve.loading import ServeConfig
from seeker_jax.serve.media import MediaLimits
from seeker_jax.serve.protocol import Message
from seeker_jax.serve.render import render_messages
from seeker_jax.serve.serving import ChatService
from seeker_jax.serve.testing import serve_in_thread

SCRIPTED_CALL = ('<tool_call>\n{"name": "crop_video", "arguments": {"start_time": 1, '
                 '"end_time": 3}}\n</tool_call>')


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    return save_tiny_qwen_checkpoint(str(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)).save(
        root / "frame.png")
    return root


@pytest.fixture(scope="module")
def server(ckpt_dir, media_root):
    cfg = ServeConfig(model_name="tiny", batch_size=4, max_len=1024, decode_steps=4,
                      limits=MediaLimits(allowed_root=str(media_root), max_images=2,
                                         max_image_pixels=200 * 200, max_video_seconds=2.0))
    with serve_in_thread(f"ckpt:{ckpt_dir}", config=cfg) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="none", max_retries=0, timeout=300)


def reference_turn(server, messages, max_tokens, tools=None, top_logprobs=0):
    """The in-process sampler's greedy turn (batch 1, no cache reuse) on the same prompt."""
    svc = server.service
    segs = render_messages(svc.tokenizer, [Message.model_validate(m) for m in messages], tools,
                           svc._loader(), svc.memory)
    s = Sampler(svc.engine.sampler.model, batch_size=1, max_len=1024,
                params=SamplingParams(0.0, suppress_ids=svc.engine.suppress),
                stop_token_ids=svc.engine.sampler.stop_token_ids, pad_id=151643,
                top_logprobs=top_logprobs)
    return s.generate([concat_segments(segs)], max_tokens)[0]


def reference(server, messages, max_tokens, tools=None):
    """Greedy tokens of the in-process sampler on the same prompt."""
    return reference_turn(server, messages, max_tokens, tools).ids.tolist()


def image_url(size=(48, 64), seed=1):
    img = Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*size, 3), np.uint8))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def ask(client, messages, **kw):
    kw.setdefault("max_tokens", 6)
    return client.chat.completions.create(model="tiny", messages=messages, temperature=0,
                                          extra_body={"return_token_ids": True}, **kw)


def test_models_health_and_greedy_equals_in_process_sampler(server, client):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert httpx.get(server.url.replace("/v1", "/health")).json()["status"] == "ok"
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    res = ask(client, msgs, logprobs=True)
    choice = res.choices[0]
    assert choice.token_ids == reference(server, msgs, 6)
    assert res.usage.completion_tokens == len(choice.token_ids)
    assert res.usage.prompt_tokens == len(res.prompt_token_ids)
    assert len(choice.logprobs.content) == len(choice.token_ids)
    assert all(t.logprob <= 0 for t in choice.logprobs.content)
    assert choice.finish_reason in ("stop", "length")


def test_streaming_equals_non_streaming(client):
    msgs = [{"role": "user", "content": "Count to three"}]
    whole = ask(client, msgs, max_tokens=8)
    chunks = list(client.chat.completions.create(
        model="tiny", messages=msgs, temperature=0, max_tokens=8, stream=True,
        stream_options={"include_usage": True}, extra_body={"return_token_ids": True}))
    ids = sum((c.choices[0].token_ids or [] for c in chunks if c.choices
               and getattr(c.choices[0], "token_ids", None)), [])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or ""
                        for c in chunks if c.choices)
    assert ids == whole.choices[0].token_ids
    m = whole.choices[0].message
    assert text == m.content and reasoning == (getattr(m, "reasoning_content", None) or "")
    assert chunks[-1].usage.completion_tokens == len(ids)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == \
        whole.choices[0].finish_reason


def test_images_data_url_and_file_under_the_root(server, client, media_root):
    msgs = [{"role": "user", "content": [
        {"type": "text", "text": "What is shown?"},
        {"type": "image_url", "image_url": {"url": image_url()}},
        {"type": "image_url", "image_url": {"url": f"file://{media_root / 'frame.png'}"}}]}]
    res = ask(client, msgs)
    assert res.choices[0].token_ids == reference(server, msgs, 6)
    assert res.prompt_token_ids.count(151655) > 0  # image pads in the prompt


@pytest.mark.parametrize("part, match", [
    ({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}, "outside the allowed"),
    ({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}, "network"),
    ({"type": "image_url", "image_url": {"url": image_url((300, 300))}}, "over the server's"),
    ({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}, "not a readable"),
])
def test_bad_media_is_a_400(client, part, match):
    with pytest.raises(openai.BadRequestError, match=match):
        ask(client, [{"role": "user", "content": [part]}])


def test_too_many_images_unknown_model_and_malformed_json(server, client):
    img = {"type": "image_url", "image_url": {"url": image_url()}}
    with pytest.raises(openai.BadRequestError, match="more than 2 images"):
        ask(client, [{"role": "user", "content": [img, img, img]}])
    with pytest.raises(openai.NotFoundError, match="unknown model"):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
    url = server.url + "/chat/completions"
    r = httpx.post(url, content=b'{"model": "tiny", "messages": [', timeout=30)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = httpx.post(url, json={"model": "tiny", "messages": []}, timeout=30)
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
    r = httpx.post(url, json={"model": "tiny", "presence_penalty": 1.0,
                              "messages": [{"role": "user", "content": "x"}]}, timeout=30)
    assert r.status_code == 400 and "presence_penalty" in r.json()["error"]["message"]
    r = httpx.post(url, json={"model": "tiny", "max_tokens": 2, "user": "me", "temperature": 0,
                              "messages": [{"role": "user", "content": "x"}]}, timeout=60)
    assert r.status_code == 200 and "x-seeker-ignored-fields" not in r.headers  # logged only


def test_video_over_the_ceilings_is_a_400(client, media_root):
    from seeker_jax.env.testing import write_index_video

    write_index_video(media_root / "long.mp4", 40, fps=10)  # 4 s > the 2 s ceiling
    with pytest.raises(openai.BadRequestError, match="over the server's limit of 2 s"):
        ask(client, [{"role": "user", "content": [
            {"type": "video_url", "video_url": {"url": f"file://{media_root / 'long.mp4'}"}}]}])


def test_sixteen_concurrent_clients_get_their_own_greedy_answers(server, client):
    prompts = [[{"role": "user", "content": f"Question number {k}: what is {k} + {k}?"}]
               for k in range(16)]
    with cf.ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda m: ask(client, m, max_tokens=5).choices[0].token_ids,
                            prompts))
    for m, ids in zip(prompts, got):
        assert ids == reference(server, m, 5)


def test_disconnect_mid_stream_leaves_the_server_serving(server, client):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "go on"}],
            "max_tokens": 64, "stream": True, "temperature": 0}
    with httpx.stream("POST", server.url + "/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        next(r.iter_lines())
    assert ask(client, [{"role": "user", "content": "still there?"}]).choices[0].token_ids


class ScriptedService(ChatService):
    """A 'scripted tiny model': every tool turn is forced to be SCRIPTED_CALL (then the model's
    own tokens), through the sampler's forced tokens, like tool_choice's prefixes."""

    def _forced(self, req):
        if req.tool_choice == "required":
            tok = self.tokenizer
            return tuple(tok.encode(SCRIPTED_CALL, add_special_tokens=False)
                         + [tok.convert_tokens_to_ids("<|im_end|>")])
        return super()._forced(req)


TOOLS = [{"type": "function", "function": {"name": "crop_video", "description": "crop",
                                           "parameters": {"type": "object", "properties": {
                                               "start_time": {"type": "number"},
                                               "end_time": {"type": "number"}}}}}]


def test_tool_calls_tool_messages_with_images_and_the_conversation_cache(server, ckpt_dir):
    base = server.service
    svc = ScriptedService(base.engine, base.env, "tiny", base.limits)
    with serve_in_thread(svc) as scripted:
        c = openai.OpenAI(base_url=scripted.url, api_key="none", max_retries=0, timeout=300)
        msgs = [{"role": "user", "content": "Find the dog."}]
        res = c.chat.completions.create(model="tiny", messages=msgs, tools=TOOLS,
                                        tool_choice="required", max_tokens=60,
                                        extra_body={"return_token_ids": True})
        choice = res.choices[0]
        assert choice.finish_reason == "tool_calls"
        call = choice.message.tool_calls[0]
        assert call.function.name == "crop_video"
        assert json.loads(call.function.arguments) == {"start_time": 1, "end_time": 3}
        # Streaming: the same call arrives as a tool_calls delta.
        chunks = list(c.chat.completions.create(model="tiny", messages=msgs, tools=TOOLS,
                                                tool_choice="required", max_tokens=60,
                                                stream=True))
        deltas = [tc for ch in chunks if ch.choices for tc in ch.choices[0].delta.tool_calls or []]
        assert [d.function.name for d in deltas] == ["crop_video"]
        assert json.loads(deltas[0].function.arguments) == {"start_time": 1, "end_time": 3}
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
        # The tool answers with an image; the conversation continues from its cache row.
        msgs += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": [
                     {"type": "text", "text": "frames:"},
                     {"type": "image_url", "image_url": {"url": image_url()}}]}]
        before = base.engine.stats["cached_tokens"]
        nxt = c.chat.completions.create(model="tiny", messages=msgs, tools=TOOLS, max_tokens=4,
                                        temperature=0, extra_body={"return_token_ids": True})
        cached = nxt.usage.prompt_tokens_details.cached_tokens
        assert cached > 0 and base.engine.stats["cached_tokens"] - before == cached
        # Token-exact: the cached tokens are a first request's prompt + its generated turn.
        assert cached == len(res.prompt_token_ids) + len(choice.token_ids)
        assert nxt.prompt_token_ids[:cached] == res.prompt_token_ids + choice.token_ids


# ----------------------------------------------------------------------------- top_logprobs

def logprob_entries(res_or_chunks, stream: bool):
    """logprobs.content of a response, or of a stream's chunks joined in order."""
    if not stream:
        return res_or_chunks.choices[0].logprobs.content
    return [e for c in res_or_chunks if c.choices and c.choices[0].logprobs
            for e in c.choices[0].logprobs.content]


def test_top_logprobs_streaming_and_not_agree_with_the_in_process_sampler(server, client):
    """N = 0, 3, 20, non-streaming and streaming: N entries per token, best first, the greedy
    token first with its own log-prob; the bytes of the tokens join into the text; N=3 is the
    head of N=20; and the N=20 lists are the in-process sampler's top alternatives (ids and
    values, 1e-5), which test_sampler_top_logprobs checks against a closed form."""
    svc = server.service
    msgs = [{"role": "user", "content": "Name three colours"}]
    got = {}
    for n in (0, 3, 20):
        for stream in (False, True):
            out = client.chat.completions.create(
                model="tiny", messages=msgs, temperature=0, max_tokens=6, logprobs=True,
                top_logprobs=n, stream=stream, extra_body={"return_token_ids": True})
            out = list(out) if stream else out
            got[n, stream] = entries = logprob_entries(out, stream)
            ids = (sum((getattr(c.choices[0], "token_ids", None) or [] for c in out
                        if c.choices), []) if stream else out.choices[0].token_ids)
            assert len(entries) == len(ids) > 0
            assert b"".join(bytes(e.bytes) for e in entries).decode() == \
                svc.tokenizer.decode(ids, skip_special_tokens=False)
            for e, i in zip(entries, ids):
                assert e.token == svc.tokenizer.decode([i], skip_special_tokens=False)
                assert len(e.top_logprobs) == n
                values = [t.logprob for t in e.top_logprobs]
                assert values == sorted(values, reverse=True) and all(v <= 0 for v in values)
                if n:  # greedy: the chosen token is the top-1, with the same log-prob
                    assert e.top_logprobs[0].token == e.token
                    assert e.top_logprobs[0].bytes == e.bytes
                    assert abs(e.top_logprobs[0].logprob - e.logprob) < 1e-6
    for n in (0, 3, 20):  # streaming gives what non-streaming gives
        for a, b in zip(got[n, False], got[n, True]):
            assert (a.token, [t.token for t in a.top_logprobs]) == \
                (b.token, [t.token for t in b.top_logprobs])
            assert abs(a.logprob - b.logprob) < 1e-5
            assert max((abs(x.logprob - y.logprob) for x, y in
                        zip(a.top_logprobs, b.top_logprobs)), default=0) < 1e-5
    for a, b in zip(got[3, False], got[20, False]):
        assert [t.token for t in a.top_logprobs] == [t.token for t in b.top_logprobs[:3]]
    turn = reference_turn(server, msgs, 6, top_logprobs=20)
    assert len(turn.ids) == len(got[20, False])
    for e, ids, lps in zip(got[20, False], turn.top_ids, turn.top_logprobs):
        assert [t.token for t in e.top_logprobs] == [
            svc.tokenizer.decode([i], skip_special_tokens=False) for i in ids]
        np.testing.assert_allclose([t.logprob for t in e.top_logprobs], lps, atol=1e-5, rtol=0)


def test_top_logprobs_out_of_range_or_without_logprobs_is_a_400(client):
    msgs = [{"role": "user", "content": "x"}]
    with pytest.raises(openai.BadRequestError, match="top_logprobs"):
        ask(client, msgs, logprobs=True, top_logprobs=21)
    with pytest.raises(openai.BadRequestError, match="top_logprobs needs logprobs=true"):
        ask(client, msgs, top_logprobs=2)
    with pytest.raises(openai.BadRequestError, match="top_logprobs needs logprobs=true"):
        ask(client, msgs, logprobs=False, top_logprobs=0)


def drain(handle, until: str) -> list:
    """The request's events up to and including the first of kind `until`."""
    events = []
    while not events or events[-1][0] != until:
        events.append(handle.events.get(timeout=300))
    return events


def test_stop_string_and_cancel_free_the_row_at_once(server):
    """A multi-token stop string ends the sampler's turn right after it (the row holds exactly
    the prompt and the tokens sent, and is free), instead of decoding on to max_tokens; so does
    a cancelled request (a client that went away)."""
    from seeker_jax.serve.protocol import ChatCompletionRequest

    svc = server.service
    eng, s = svc.engine, svc.engine.sampler

    def request(max_tokens, stop=None):
        return svc.generation_request(ChatCompletionRequest(
            model="tiny", messages=[{"role": "user", "content": "Tell me a long story"}],
            temperature=0, max_tokens=max_tokens, stop=stop))

    handle = eng.submit(request(12))
    ids = sum((e[2] for e in drain(handle, "done") if e[0] == "tokens"), [])
    text = lambda k: svc.tokenizer.decode(ids[:k], skip_special_tokens=False)  # noqa: E731
    assert len(ids) == 12
    stop = text(4)[len(text(2)):]  # spans tokens 3 and 4
    assert stop and stop not in text(3) and stop not in text(2)
    before = s.stats["decode_tokens"]
    handle = eng.submit(request(600, stop))
    events = drain(handle, "done")
    sent = sum((e[2] for e in events if e[0] == "tokens"), [])
    assert sent == ids[:4] and events[-1][2:] == ("stop", stop)
    assert not s.active_rows  # the row stopped at the stop string
    assert s.stats["decode_tokens"] - before <= 4 + s.decode_steps
    held = [r for r in s.rows if r.ids[-4:] == ids[:4]]
    assert held and held[0].ids == handle.prompt_ids.tolist() + ids[:4]
    assert held[0].result.stop_reason == "stop_string"
    # cancel: the row ends its turn at once
    handle = eng.submit(request(900))
    drain(handle, "tokens")
    handle.cancel()
    assert drain(handle, "error")[-1] == ("error", "request cancelled", 499)
    assert not s.active_rows
    cancelled = [r for r in s.rows if r.result is not None and r.result.stop_reason == "cancelled"]
    assert len(cancelled) == 1 and len(cancelled[0].result.ids) < 900
