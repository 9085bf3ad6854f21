"""Tools, argument errors, the sandbox (no file outside the sample is ever opened), and fuzz."""
import builtins
import json
import os
import shutil

import decord
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from seeker_jax.env.parser import ParseError, ToolCall, parse_call_body, parse_tool_calls
from seeker_jax.env.sandbox import Sandbox
from seeker_jax.env.testing import index_frame, read_index, write_index_video
from seeker_jax.env.tools import Observation, ToolConfig, ToolRunner
from seeker_jax.models.processing import ProcessedImage, ProcessedVideo, preprocess_image


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """root/a (our sample), root/b (another sample), a secret file outside root, symlinks."""
    base = tmp_path_factory.mktemp("world")
    root = base / "root"
    for name, n in (("a", 95), ("b", 40)):
        (root / name).mkdir(parents=True)
        write_index_video(root / name / "v.mp4", n, fps=10)
        Image.fromarray(index_frame(7, 96, 128)).save(root / name / "f.png")
    shutil.copy(root / "a" / "v.mp4", base / "secret.mp4")
    os.symlink(base / "secret.mp4", root / "a" / "link.mp4")
    (root / "a" / "corrupt.mp4").write_bytes(b"not a video at all" * 100)
    return root


def runner(root, video="a/v.mp4", frame="a/f.png"):
    return ToolRunner(Sandbox(root, {"video": video, "frame": frame}), ToolConfig())


def crop(path="a/v.mp4", start=1.0, end=3.0, **extra):
    return ToolCall("crop_video", {"video_path": path, "start_time": start, "end_time": end,
                                   **extra})


def test_crop_video_returns_timestamped_frames(world):
    obs = runner(world).run(crop(start=2.0, end=5.0))
    assert obs.error is None
    video = obs.parts[1]
    assert isinstance(video, ProcessedVideo)
    assert [read_index(f) for f in obs.frames] == [20, 30, 40, 50]  # 1 fps, at least 4 frames
    assert obs.frame_times == [2.0, 3.0, 4.0, 5.0]
    np.testing.assert_allclose(video.timestamps, [2.5, 4.5])
    assert obs.text.startswith("Frames of 'a/v.mp4' from 2.0 s to 5.0 s (4 frames at 1 fps):")


def test_crop_video_caps(world):
    obs = runner(world).run(crop(start=0.0, end=9.5))
    assert len(obs.frames) == 9  # int(9.5 * 1 fps)
    long = ToolRunner(Sandbox(world, {"video": "a/v.mp4"}),
                      ToolConfig()).config.crop
    assert (long.min_frames, long.max_frames, long.fps, long.max_frame_pixels) == (4, 64, 1.0,
                                                                                   336 * 336)


def test_view_visual_prompt_returns_the_frame(world):
    obs = runner(world).run(ToolCall("view_visual_prompt", {"frame_path": "a/f.png"}))
    assert obs.error is None and isinstance(obs.parts[1], ProcessedImage)
    ref = preprocess_image(Image.open(world / "a" / "f.png"), 32 * 32, 512 * 32 * 32)
    np.testing.assert_array_equal(obs.parts[1].pixel_values, ref.pixel_values)
    # by basename and by absolute path too
    for name in ("f.png", str(world / "a" / "f.png"), "./a//f.png"):
        assert runner(world).run(ToolCall("view_visual_prompt", {"frame_path": name})).error is None


BAD_CALLS = [
    (ParseError("tool call is not valid JSON (x): {"), "not valid JSON"),
    (ToolCall("zoom", {}), "unknown tool 'zoom'; the tools are view_visual_prompt, crop_video"),
    (ToolCall("crop_video", {"video_path": "a/v.mp4", "start_time": 1}),
     "crop_video: missing argument(s) ['end_time']"),
    (crop(fps=3), "crop_video: unexpected argument(s) ['fps']"),
    (crop(start="1"), "crop_video: start_time must be a number of seconds, got str"),
    (crop(start=True), "start_time must be a number of seconds, got bool"),
    (crop(path=5), "video_path must be a string, got int"),
    (crop(start=float("nan")), "start_time must be a finite number, got nan"),
    (crop(end=float("inf")), "end_time must be a finite number, got inf"),
    (crop(start=-1.0), "crop_video: start_time -1.0 is negative"),
    (crop(start=3.0, end=3.0), "crop_video: end_time 3.0 must be greater than start_time 3.0"),
    (crop(start=4.0, end=2.0), "must be greater than start_time"),
    (crop(start=1.0, end=12.0), "crop_video: end_time 12.0 is past the video's end (9.5 s)"),
    (crop(start=10.0, end=12.0), "crop_video: start_time 10.0 is past the video's end (9.5 s)"),
    (ToolCall("view_visual_prompt", {"frame_path": None}), "frame_path must be a string"),
]


@pytest.mark.parametrize("call,message", BAD_CALLS)
def test_bad_calls_become_messages(world, call, message):
    obs = runner(world).run(call)
    assert isinstance(obs, Observation) and obs.error is not None
    assert message in obs.error and obs.text == f"Error: {obs.error}"


def test_missing_and_corrupt_assets(world, tmp_path):
    obs = runner(world, video="a/missing.mp4").run(crop("a/missing.mp4"))
    assert obs.error == "video 'a/missing.mp4' does not exist"
    obs = runner(world, video="a/corrupt.mp4").run(crop("a/corrupt.mp4"))
    assert obs.error.startswith("video 'a/corrupt.mp4' is not a video file in a supported "
                                "container")
    obs = runner(world, frame="a/nothing.png").run(
        ToolCall("view_visual_prompt", {"frame_path": "a/nothing.png"}))
    assert obs.error == "view_visual_prompt: frame 'a/nothing.png' does not exist"
    obs = runner(world, frame="a/corrupt.mp4").run(
        ToolCall("view_visual_prompt", {"frame_path": "a/corrupt.mp4"}))
    assert "is not a readable image" in obs.error


ESCAPES = ["../b/v.mp4", "b/v.mp4", "a/../b/v.mp4", "/etc/passwd", "secret.mp4", "../secret.mp4",
           "file:///etc/passwd", "http://example.com/v.mp4", "s3://bucket/v.mp4", "a/link.mp4",
           "link.mp4", "a/v.mp4\x00.png", "~/v.mp4", "", "..", "/", "a"]


@pytest.fixture
def opened(monkeypatch):
    """Records every path any file-opening function gets."""
    paths = []

    def spy(real, getter=lambda a, k: a[0] if a else None):
        def wrapper(*args, **kwargs):
            target = getter(args, kwargs)
            paths.append(str(getattr(target, "name", target)))  # a file object: its path
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(builtins, "open", spy(builtins.open))
    monkeypatch.setattr(os, "open", spy(os.open))
    monkeypatch.setattr(os, "stat", spy(os.stat))
    monkeypatch.setattr(decord, "VideoReader", spy(decord.VideoReader))
    monkeypatch.setattr(Image, "open", spy(Image.open))
    import av
    monkeypatch.setattr(av, "open", spy(av.open))
    return paths


@pytest.mark.parametrize("path", ESCAPES)
def test_sandbox_refuses_escapes_without_opening(world, opened, path):
    tools = runner(world)
    opened.clear()
    for call in (crop(path), ToolCall("view_visual_prompt", {"frame_path": path})):
        obs = tools.run(call)
        assert obs.error is not None, path
        assert "use 'a/" in obs.error or "a/f.png" in obs.error
    # Refused before any file was touched (paths outside the test world are Python's own).
    touched = [p for p in opened if str(world.parent) in p or p.startswith(("/etc", "~"))]
    assert touched == []


def test_wrong_kind_of_asset_is_refused(world):
    obs = runner(world).run(crop("a/f.png"))
    assert obs.error == "crop_video: video_path 'a/f.png' is not this sample's video; use 'a/v.mp4'"
    obs = runner(world).run(ToolCall("view_visual_prompt", {"frame_path": "a/v.mp4"}))
    assert "is not this sample's frame; use 'a/f.png'" in obs.error


def test_asset_kind_names_the_samples_own_asset(world, opened):
    """'video' / 'frame' name this sample's asset (the demo teacher's short paths); a kind
    never names the other kind's file, and the same pixels come back as by the full path."""
    tools = runner(world)
    by_kind, by_path = tools.run(crop("video")), tools.run(crop("a/v.mp4"))
    assert by_kind.error is None
    np.testing.assert_array_equal(by_kind.parts[1].pixel_values, by_path.parts[1].pixel_values)
    view = tools.run(ToolCall("view_visual_prompt", {"frame_path": "frame"}))
    assert view.error is None
    assert runner(world).run(crop("frame")).error == (
        "crop_video: video_path 'frame' is not this sample's video; use 'a/v.mp4'")
    assert "is not this sample's frame" in tools.run(
        ToolCall("view_visual_prompt", {"frame_path": "video"})).error
    assert {p for p in opened if str(world.parent) in p} <= {str(world / "a" / "v.mp4"),
                                                            str(world / "a" / "f.png")}


def test_good_call_opens_only_its_own_assets(world, opened):
    tools = runner(world)
    assert tools.run(crop("v.mp4")).error is None
    assert tools.run(ToolCall("view_visual_prompt", {"frame_path": "f.png"})).error is None
    allowed = {str(world / "a" / "v.mp4"), str(world / "a" / "f.png")}
    touched = {p for p in opened if str(world.parent) in p}
    assert touched == allowed


def test_symlinked_asset_leading_out_is_refused(world, opened):
    tools = runner(world, video="a/link.mp4")
    obs = tools.run(crop("a/link.mp4"))
    assert obs.error == "crop_video: video 'a/link.mp4' leads outside the dataset root"
    assert not any("secret" in p for p in opened)


def test_parse_tool_calls():
    text = ('<think>x</think><tool_call>\n{"name": "crop_video", "arguments": {"video_path": '
            '"v.mp4", "start_time": 0, "end_time": 2}}\n</tool_call><tool_call>{"name": 1}'
            '</tool_call><tool_call>{"name": "a", "arguments": "{\\"k\\": 1}"}</tool_call>'
            '<tool_call>{"name": "b"')
    calls = parse_tool_calls(text, max_calls=10)
    assert calls[0] == ToolCall("crop_video", {"video_path": "v.mp4", "start_time": 0,
                                               "end_time": 2}, calls[0].raw)
    assert isinstance(calls[1], ParseError) and "name" in calls[1].message
    assert calls[2] == ToolCall("a", {"k": 1}, calls[2].raw)  # double-encoded arguments
    assert calls[3].message == "tool call is not closed with </tool_call>"
    capped = parse_tool_calls("<tool_call>{}</tool_call>" * 6, max_calls=4)
    assert len(capped) == 5 and "only the first 4 were run, 2 skipped" in capped[-1].message
    assert "unexpected keys ['x']" in parse_call_body('{"name": "a", "x": 1}').message
    assert "not valid JSON" in parse_call_body("[" * 100000).message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8)
paths = st.sampled_from(ESCAPES + ["a/v.mp4", "v.mp4", "a/f.png", "f.png"]) | st.text(max_size=30)
times = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 20) | json_values


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=300) | st.builds(
    lambda body, tail: f"<tool_call>{body}{tail}", st.text(max_size=80),
    st.sampled_from(["</tool_call>", "", "</tool_call><answer>x</answer>"])))
def test_fuzz_parser_never_raises(text):
    for item in parse_tool_calls(text):
        assert isinstance(item, (ToolCall, ParseError))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(["crop_video", "view_visual_prompt"]) | st.text(max_size=10),
       args=st.fixed_dictionaries({}, optional={"video_path": paths, "frame_path": paths,
                                                "start_time": times, "end_time": times})
       | st.dictionaries(st.text(max_size=10), json_values, max_size=4))
def test_fuzz_tools_never_raise(world, name, args):
    body = json.dumps({"name": name, "arguments": args})
    for call in parse_tool_calls(f"<tool_call>{body}</tool_call>"):
        obs = runner(world).run(call)
        assert isinstance(obs, Observation)
        assert (obs.error is None) == (len(obs.parts) == 2 and not isinstance(obs.parts[1], str))
        assert obs.text
