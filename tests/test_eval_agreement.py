"""Greedy agreement: the same tiny checkpoint evaluated in-process (`ckpt:`, the rollout engine)
and through `openai:` against our own `seeker-jax serve` (a real HTTP server on 127.0.0.1)
gives the same model turns, hence the same answers, on every sample; and, token for token, the
conversation the server renders from the OpenAI backend's requests (videos as frame lists,
tool results as tool messages) is the in-process Episode's, pixels included."""
import json
import os
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from hf_reference import save_tiny_qwen_checkpoint
from seeker_jax.env.testing import index_frame, write_index_video
from seeker_jax.data.testing import ChatServer, reply_text
from eval_envs import tiny_env
from seeker_jax.eval.episodes import EvalEpisode
from seeker_jax.eval.models import load_backend
from seeker_jax.models.chat import concat_segments
from seeker_jax.serve.media import MediaLimits, load_image, load_video
from seeker_jax.serve.protocol import Message
from seeker_jax.serve.render import TurnMemory, render_messages
from seeker_jax.eval.protocols import get_protocol
from seeker_jax.eval.readers import read_samples
from seeker_jax.eval.runner import read_done, run_eval
from seeker_jax.models.tokenizer import offline_qwen_tokenizer
from seeker_jax.serve.loading import ServeConfig
from seeker_jax.serve.testing import serve_in_thread


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A tiny random Qwen3-VL over the Qwen vocabulary: (our checkpoint with its env, the same
    weights as a Hugging Face folder)."""
    root = str(tmp_path_factory.mktemp("tiny"))
    return save_tiny_qwen_checkpoint(root, tiny_env("agentic")), os.path.join(root, "hf")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2p")
    (root / "videos").mkdir()
    (root / "frames").mkdir()
    write_index_video(root / "videos" / "a.mp4", 40, fps=10)
    Image.fromarray(index_frame(7, 64, 96)).save(root / "frames" / "a.png")
    base = {"video_id": "a", "video_path": "a.mp4", "duration": 4.0, "source": "S",
            "frame_path": "a.png", "category": 1}
    lines = [dict(base, question=f"Q{i}?\nA: x\nB: y\nC: z", answer="ABC"[i % 3], dimension=i + 1)
             for i in range(3)]
    path = root / "bench.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    return path, root


SEGMENT_FIELDS = ("input_ids", "mm_token_type_ids", "pixel_values", "image_grid_thw",
                  "pixel_values_videos", "video_grid_thw")


def assert_same_segment(a, b, what):
    for name in SEGMENT_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), (what, name)
        if x is not None:
            assert x.shape == y.shape and np.array_equal(x, y), (what, name)  # exact


def server_loader(env):
    limits = MediaLimits()
    return lambda kind, url, what: (load_image(url, what, limits, env) if kind == "image"
                                    else load_video(url, what, limits, env))


SCRIPTS = {  # model turns: tool calls (each tool of the protocol, a bad call), then an answer
    "agentic": ['<tool_call>\n{"name": "crop_video", "arguments": {"video_path": "{video}", '
                '"start_time": 1.0, "end_time": 3.0}}\n</tool_call>',
                '<tool_call>\n{"name": "view_visual_prompt", "arguments": {"frame_path": '
                '"{frame}"}}\n</tool_call><tool_call>\n{"name": "crop_video", "arguments": '
                '{"video_path": "{video}", "start_time": 9.0, "end_time": 3.0}}\n</tool_call>',
                "<answer>B</answer>"],
    "videoseeker_official": ['<think>look</think><tool_call>\n{"name": "view_visual_prompt", '
                             '"arguments": {"frame_path": "{frame}"}}\n</tool_call>',
                             "<think>ok</think><answer>A</answer>"],
    "v2p_official": ["A"],
}


@pytest.mark.parametrize("protocol", ["agentic", "videoseeker_official", "v2p_official"])
def test_server_renders_the_in_process_conversation(bench, tmp_path, protocol):
    """Every request the OpenAI backend sends, rendered by serve, equals the in-process
    Episode's segments so far (ids, token types, pixels, grids: exact)."""
    path, root = bench
    sample = read_samples("v2p", path, root / "videos", root / "frames")[0]
    env, proto = tiny_env(protocol), get_protocol(protocol)
    script = [t.replace("{video}", sample.record.video_path).replace(
        "{frame}", sample.record.frame_path or "") for t in SCRIPTS[protocol]]
    replies = iter(script)
    with ChatServer(lambda body: reply_text(next(replies))) as server:
        remote, _ = load_backend(f"openai:{server.url}#tiny", batch_size=1, max_len=4096,
                                 max_new_tokens=64, max_turns=6)
        run_eval([sample], remote, env, proto, tmp_path)
        requests = list(server.requests)
    row = read_done(tmp_path / "results.jsonl")[sample.id]
    assert row["turns"] == script and len(requests) == len(script)
    tok = offline_qwen_tokenizer()
    env = replace(env, profile=proto.profile) if proto.profile else env
    ep = EvalEpisode(sample.record, env.formatter(tok), sample.root, env.episode_config(),
                     sample.frames, proto.frames_after_question)
    ep.prompt_segment()
    for k, text in enumerate(script):
        body = requests[k]
        rendered = render_messages(tok, [Message.model_validate(m) for m in body["messages"]],
                                   None, server_loader(tiny_env("agentic")), TurnMemory())
        assert_same_segment(concat_segments(ep.segments), concat_segments(rendered), k)
        ep.step(text)
    kinds = {p["type"] for m in requests[-1]["messages"] if isinstance(m["content"], list)
             for p in m["content"]}
    assert "video_url" in kinds or protocol == "videoseeker_official"  # a real video was sent
    if protocol == "agentic":  # a clip, an image and an error text came back as tool messages
        assert [c["error"] is None for c in row["calls"]] == [True, True, False]
        assert [m["role"] for m in requests[-1]["messages"]].count("tool") == 3


# v2p_official is in the slow suite (~16 s): the other two protocols keep the agreement check.
@pytest.mark.parametrize("protocol", [pytest.param("v2p_official", marks=pytest.mark.slow),
                                      "agentic", "videoseeker_official"])
def test_greedy_agreement_in_process_vs_serve(tiny_ckpt, bench, tmp_path, protocol):
    tiny_ckpt, _ = tiny_ckpt
    path, root = bench
    samples = read_samples("v2p", path, root / "videos", root / "frames")
    env, proto = tiny_env(protocol), get_protocol(protocol)
    kw = dict(batch_size=3, max_len=2048, max_new_tokens=12, max_turns=2)
    local, _ = load_backend(f"ckpt:{tiny_ckpt}", **kw)
    run_eval(samples, local, env, proto, tmp_path / "local")
    config = ServeConfig(model_name="tiny", batch_size=3, max_len=2048)
    with serve_in_thread(f"ckpt:{tiny_ckpt}", config=config) as server:
        remote, _ = load_backend(f"openai:{server.url}#tiny", **kw)
        run_eval(samples, remote, env, proto, tmp_path / "remote")
    a, b = read_done(tmp_path / "local" / "results.jsonl"), read_done(tmp_path / "remote" /
                                                                      "results.jsonl")
    assert sorted(a) == sorted(b) and len(a) == 3
    for key in a:
        assert a[key]["turns"] == b[key]["turns"], key  # same greedy tokens, turn by turn
        assert a[key]["prediction"] == b[key]["prediction"]
    assert any(t for row in a.values() for t in row["turns"])  # the model did say something


def test_hf_folder_gives_the_ckpt_turns(tiny_ckpt, bench, tmp_path):
    """`hf:PATH` (the HF folder, its own tokenizer) and `ckpt:` of the same weights: same turns."""
    ckpt_dir, hf_dir = tiny_ckpt
    path, root = bench
    samples = read_samples("v2p", path, root / "videos", root / "frames")
    env, proto = tiny_env("agentic"), get_protocol("agentic")
    kw = dict(batch_size=3, max_len=2048, max_new_tokens=12, max_turns=2)
    rows = []
    for name, spec in (("ckpt", f"ckpt:{ckpt_dir}"), ("hf", f"hf:{hf_dir}")):
        backend, saved = load_backend(spec, **kw)
        assert (saved is None) == (name == "hf")
        run_eval(samples, backend, env, proto, tmp_path / name)
        rows.append(read_done(tmp_path / name / "results.jsonl"))
    a, b = rows
    assert sorted(a) == sorted(b) and len(a) == 3
    assert all(a[k]["turns"] == b[k]["turns"] for k in a)
    assert any(t for row in a.values() for t in row["turns"])


def test_frame_list_videos_at_the_server():
    """serve's frame-list video: exact at a tiling size, resized otherwise, clear refusals."""
    from seeker_jax.data.openai_content import frames_data_url
    from seeker_jax.models.processing import FACTOR
    from seeker_jax.serve.media import MediaError
    from seeker_jax.serve.protocol import VideoUrl

    env, limits = tiny_env("agentic"), MediaLimits()
    frames = np.stack([index_frame(i, 32, 64) for i in range(4)])
    video = load_video(VideoUrl(url=frames_data_url(frames), timestamps=[0, 0, 2, 2]), "v",
                       limits, env)
    assert np.array_equal(video.timestamps, [0.0, 2.0]) and list(video.grid_thw) == [2, 2, 4]
    assert np.array_equal(unpatchify_frames(video), frames)  # kept at its size, lossless
    plain = load_video(VideoUrl(url=frames_data_url(frames)), "v", limits, env)  # i / fps
    assert np.allclose(plain.timestamps, [0.5 / env.video.fps, 2.5 / env.video.fps])
    odd = load_video(VideoUrl(url=frames_data_url(np.stack([index_frame(i, 40, 70)
                                                             for i in range(2)]))), "v",
                     limits, env)
    assert odd.grid_thw[1] * 16 % FACTOR == 0 and odd.grid_thw[2] * 16 % FACTOR == 0
    with pytest.raises(MediaError, match="3 timestamps for 4 frames"):
        load_video(VideoUrl(url=frames_data_url(frames), timestamps=[0, 1, 2]), "v", limits, env)
    mixed = frames_data_url(frames[:1]) + "," + frames_data_url(
        index_frame(1, 64, 64)[None]).partition(",")[2]
    with pytest.raises(MediaError, match="all frames of a video must have one size"):
        load_video(mixed, "v", limits, env)
    with pytest.raises(MediaError, match="frame 1: not a readable image"):
        load_video(frames_data_url(frames[:1]) + ",AAAA", "v", limits, env)


def unpatchify_frames(video):
    from seeker_jax.data.openai_content import unpatchify

    return unpatchify(video.pixel_values, video.grid_thw)


def test_openai_turns_keep_reasoning_and_tool_calls_as_serve_splits_them(bench, tmp_path):
    """A thinking model's turns through `openai:`: the server answers each raw turn split the
    way `seeker-jax serve` splits it (serve.output.split_turn: `<think>` -> reasoning_content,
    `<tool_call>` blocks -> tool_calls, both trimmed); the eval records the raw turns, the
    tools run, and every request, rendered by serve, is the in-process Episode so far."""
    from seeker_jax.serve.output import split_turn

    path, root = bench
    sample = read_samples("v2p", path, root / "videos", root / "frames")[0]
    call = ('<tool_call>\n{"name": "crop_video", "arguments": {"video_path": "'
            + sample.record.video_path + '", "start_time": 1.0, "end_time": 3.0}}\n</tool_call>')
    # Qwen3's template form: "\n" before the calls after the reasoning (the text before them)
    script = ["<think>\nThe marked object moves; crop 1-3 s.\n</think>\n\n\n" + call,
              "<think>\nIt goes left.\n</think>\n\nIt is B.\n<answer>B</answer>"]
    replies = iter(script)

    def handler(body):
        split = split_turn(next(replies))
        calls = [{"id": f"call_{i}", "type": "function",
                  "function": {"name": name, "arguments": args}}
                 for i, (name, args) in enumerate(split.tool_calls)]
        reply = reply_text(split.content or "", tool_calls=calls)
        message = json.loads(reply.body)
        message["choices"][0]["message"]["reasoning_content"] = split.reasoning
        return type(reply)(200, message)

    env, proto = tiny_env("agentic"), get_protocol("agentic")
    with ChatServer(handler) as server:
        remote, _ = load_backend(f"openai:{server.url}#tiny", batch_size=1, max_len=4096,
                                 max_new_tokens=64, max_turns=4)
        run_eval([sample], remote, env, proto, tmp_path)
        requests = list(server.requests)
    row = read_done(tmp_path / "results.jsonl")[sample.id]
    assert row["turns"] == script and row["prediction"] == "B"
    assert [c["name"] for c in row["calls"]] == ["crop_video"] and row["calls"][0]["error"] is None
    sent = requests[1]["messages"][-2]  # the first turn, as sent back
    assert sent["reasoning_content"] == "The marked object moves; crop 1-3 s."
    assert sent["tool_calls"][0]["id"] == "call_0"
    assert requests[1]["messages"][-1]["tool_call_id"] == "call_0"
    tok = offline_qwen_tokenizer()
    ep = EvalEpisode(sample.record, env.formatter(tok), sample.root, env.episode_config(),
                     sample.frames, proto.frames_after_question)
    ep.prompt_segment()
    for k, text in enumerate(script):
        rendered = render_messages(tok, [Message.model_validate(m)
                                         for m in requests[k]["messages"]],
                                   None, server_loader(env), TurnMemory())
        assert_same_segment(concat_segments(ep.segments), concat_segments(rendered), k)
        ep.step(text)
