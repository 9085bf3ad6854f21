"""One environment config: c.env presets, EnvConfig round trips, clear errors, the tokenizer
spec, mesh rules from the config, SFT and episodes seeing the same grids, and the
videoseeker_official profile token for token against a hand-worked example and Qwen3-VL's
chat template."""
import json

import numpy as np
import pytest

from seeker_jax.checkpointing import checkpoint as ckpt
from seeker_jax.config import ConfigArgumentError, load_config
from seeker_jax.env.config import PAPER_CROP, PAPER_VIDEO, EnvConfig, EnvConfigError
from seeker_jax.env.episode import Episode, EpisodeConfig, make_formatter
from seeker_jax.env.profiles import PROFILES, VIDEOSEEKER_TOOLS, get_profile
from seeker_jax.env.records import SampleRecord
from seeker_jax.env.tools import ToolConfig
from seeker_jax.env.video import Sampling
from seeker_jax.models.chat import concat_segments
from seeker_jax.models.tokenizer import tokenizer_from_config
from seeker_jax.sharding import DEFAULT_RULES, rules_from_config


# --- configs --------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", ["qwen3_vl_4b", "qwen3_vl_8b"])
def test_real_presets_use_the_paper_budgets(preset):
    c = load_config(f"configs/sft.py:{preset}")
    env = EnvConfig.from_config(c.env)
    assert env == EnvConfig() and c.tokenizer == "model"
    v, k = env.video, env.crop
    # prompt video: 1 fps, <= 256 frames, <= 112,896 px per frame
    assert (v.fps, v.max_frames, v.max_frame_pixels) == (1.0, 256, 112_896)
    assert v.max_total_pixels >= v.max_frames * v.max_frame_pixels  # no tighter total cap
    # crop: 1 fps, 4-64 frames, <= 336x336 px; at most 5 tool rounds
    assert (k.fps, k.min_frames, k.max_frames, k.max_frame_pixels) == (1.0, 4, 64, 336 * 336)
    assert env.max_rounds == 5 and env.profile == "seeker_jax"
    assert (v, k) == (PAPER_VIDEO, PAPER_CROP)


def test_tiny_preset_keeps_small_frames():
    c = load_config("configs/sft.py:tiny_synth")
    env = EnvConfig.from_config(c.env)
    small = Sampling(fps=1.0, min_frames=4, max_frames=16, min_pixels=32 * 32,
                     max_frame_pixels=64 * 64)  # what SFT's TrajectoryConfig used before
    assert env.video == small and env.crop == small and env.frame_max_pixels == 64 * 64
    assert c.tokenizer == "offline_qwen"


def test_mesh_rules_come_from_the_config():
    c = load_config("configs/sft.py:tiny_synth")
    assert rules_from_config(c.mesh.rules) == DEFAULT_RULES
    rules = rules_from_config(load_config("configs/sft.py:tiny_synth", [
        "--config.mesh.rules=(('batch', 'data'), ('embed', None))"]).mesh.rules)
    assert rules == (("batch", "data"), ("embed", None))
    with pytest.raises(ValueError, match=r"mesh.rules\[1\] \('embed'\): unknown mesh axis \['fdsp'\]"):
        rules_from_config((("batch", "data"), ("embed", "fdsp")))
    with pytest.raises(ValueError, match=r"a rule is \(logical_name, mesh_axes\)"):
        rules_from_config((("batch",),))


def test_env_round_trips_through_json():
    env = EnvConfig.from_config(load_config("configs/sft.py:tiny_synth", [
        "--config.env.crop.max_frames=8", "--config.env.profile=videoseeker_official"]).env)
    assert env.crop.max_frames == 8 and env.profile == "videoseeker_official"
    back = EnvConfig.from_config(json.loads(json.dumps(env.to_dict())))
    assert back == env and back.episode_config() == env.episode_config()
    ep = env.episode_config()
    assert ep.tools == ToolConfig(crop=env.crop, frame_min_pixels=1024, frame_max_pixels=4096)


def test_bad_env_groups_are_clear_errors():
    with pytest.raises(EnvConfigError, match=r"unknown prompt profile 'nope'; known: \["):
        EnvConfig.from_config(load_config("configs/sft.py:tiny_synth",
                                          ["--config.env.profile=nope"]).env)
    with pytest.raises(ConfigArgumentError, match=r"config.env.vidoe is not a group.*did you mean .video."):
        load_config("configs/sft.py:tiny_synth", ["--config.env.vidoe.fps=2"])
    with pytest.raises(EnvConfigError, match=r"env: unknown key\(s\) \['vidoe'\]"):
        EnvConfig.from_config({"vidoe": {"fps": 2.0}})
    with pytest.raises(EnvConfigError, match=r"env.crop: unknown key\(s\) \['max_frame'\]; a "
                                             r"sampling has \['fps'"):
        EnvConfig.from_config({"crop": {"max_frame": 8}})
    with pytest.raises(EnvConfigError, match=r"env.frame: unknown key"):
        EnvConfig.from_config({"frame": {"max_px": 8}})
    with pytest.raises(EnvConfigError, match=r"env.video: need 1 <= min_frames <= max_frames"):
        EnvConfig.from_config({"video": {"min_frames": 8, "max_frames": 4}})
    with pytest.raises(ValueError, match="unknown prompt profile"):
        EpisodeConfig(profile="videoseeker")
    assert sorted(PROFILES) == ["seeker_jax", "seeker_jax_tools_off", "v2p_official", "videomme",
                               "videoseeker_official", "videoseeker_official_v2p"]


# --- tokenizer ------------------------------------------------------------------------------

def test_tokenizer_from_config(tok, tmp_path):
    with pytest.raises(ValueError, match="tokenizer 'model' needs a model folder"):
        tokenizer_from_config("model", None)
    with pytest.raises(FileNotFoundError, match="has no tokenizer files"):
        tokenizer_from_config("model", str(tmp_path))
    with pytest.raises(ValueError, match=r"choose one of \('model', 'offline_qwen'\)"):
        tokenizer_from_config("qwen", str(tmp_path))
    tok.save_pretrained(str(tmp_path / "m"))  # a model folder's own tokenizer files
    own = tokenizer_from_config("model", str(tmp_path / "m"))
    text = "<think>a</think> crop_video(3.5 s) <|im_end|>"
    assert own.encode(text) == tok.encode(text) and len(own) == len(tok)


def test_env_config_file_round_trip(tok, tmp_path):
    env = EnvConfig.from_config(load_config("configs/sft.py:tiny_synth").env)
    ckpt.write_env_config(str(tmp_path), env, "offline_qwen")
    assert ckpt.read_env_config(str(tmp_path)) == env
    assert ckpt.read_tokenizer(str(tmp_path)).get_vocab() == tok.get_vocab()
    with pytest.raises(ValueError, match="choose one of"):
        ckpt.write_env_config(str(tmp_path), env, "offline")
    with pytest.raises(Exception, match="holds no parameters"):
        ckpt.read_env_config(str(tmp_path / "empty"))


# --- SFT and episodes agree -----------------------------------------------------------------

def test_sft_example_and_episode_prompt_have_the_same_grids(synth_world, tok, tmp_path):
    """SFT's example of a record and an episode of it from the env config SFT saved (what the
    demo's episodes do) see the same vision grids: the user video's, and the tools'."""
    from seeker_jax.data.records import read_records
    from seeker_jax.data.trajectories import TrajectoryConfig, _Build

    c = load_config("configs/sft.py:tiny_synth")
    env = EnvConfig.from_config(c.env)
    world = synth_world
    record = read_records(world, "train", resolve=False)[0]
    example = _Build(world, TrajectoryConfig(env, (4096,), c.tokenizer))(record)
    assert example is not None

    ckpt.write_env_config(str(tmp_path), env, c.tokenizer)  # what SFT writes
    saved = ckpt.read_env_config(str(tmp_path))
    episode = Episode(SampleRecord.from_dict(record), saved.formatter(ckpt.read_tokenizer(
        str(tmp_path))), world, saved.episode_config())
    prompt = episode.prompt_segment()
    np.testing.assert_array_equal(example.video_grid_thw[:1], prompt.video_grid_thw)
    # 96x64 frames under 64*64 px -> 64x32 (multiples of 32): 4x2 patches; 16 frames -> t = 8
    t, h, w = prompt.video_grid_thw[0]
    assert h * w * 16 * 16 <= 64 * 64 and t <= 8
    n = len(prompt)
    np.testing.assert_array_equal(example.input_ids[:n], prompt.input_ids)
    # the old demo built episodes from EpisodeConfig() (2 fps, 768 frames): other grids
    old = Episode(SampleRecord.from_dict(record), make_formatter(tok), world).prompt_segment()
    assert old.video_grid_thw.tolist() != prompt.video_grid_thw.tolist()


# --- the videoseeker_official profile -------------------------------------------------------

INSTRUCTION = (
    "You are a helpful assistant. When the user asks a question, your response must include two "
    "parts: first, the reasoning process enclosed in <think>...</think> tags, then the final "
    "answer enclosed in <answer>...</answer> tags. Please provide a clear, concise response "
    "within <answer></answer> tags that directly addresses the question.")
SUCCESS = "The tool executed successfully. Here are the processed result: "
OFFICIAL = EpisodeConfig(video=Sampling(fps=1.0, min_frames=4, max_frames=4, min_pixels=1024,
                                        max_frame_pixels=64 * 64),
                         tools=ToolConfig(crop=Sampling(fps=1.0, min_frames=4, max_frames=4,
                                                        min_pixels=1024,
                                                        max_frame_pixels=64 * 64)),
                         max_rounds=2, profile="videoseeker_official")


@pytest.fixture(scope="module")
def sample(index_sample):
    record = SampleRecord.from_dict({
        "video_id": "v1", "video_path": "videos/v1.mp4", "duration": 9.5,
        "question": "What is marked?\nA. a car\nB. a dog", "answer": "A",
        "frame_path": "videos/v1_prompt.png"})
    return index_sample, record


def _call(name, **args):
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


def _pads(kind, n):
    return "<|vision_start|>" + f"<|{kind}_pad|>" * n + "<|vision_end|>"


def test_videoseeker_official_profile_token_for_token(sample, tok):
    root, record = sample
    fm = make_formatter(tok, OFFICIAL)
    ep = Episode(record, fm, root, OFFICIAL)
    prompt = ep.prompt_segment()
    # 128x96 under 64*64 px -> 64 wide x 32 high: 2x4 patches -> 2 image tokens per frame
    assert prompt.image_grid_thw.tolist() == [[1, 2, 4]] * 4 and prompt.video_grid_thw is None
    tools_block = "".join("\n" + json.dumps(t) for t in VIDEOSEEKER_TOOLS)
    expected_prompt = (
        "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the "
        "user query.\n\nYou are provided with function signatures within <tools></tools> XML "
        f"tags:\n<tools>{tools_block}\n</tools>\n\nFor each function call, return a json object "
        "with function name and arguments within <tool_call></tool_call> XML tags:\n"
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
        "<|im_end|>\n<|im_start|>user\n"
        + "".join(f"<{t}.0 seconds>" + _pads("image", 2) for t in range(4))
        + INSTRUCTION + "\n\nWhat is marked?\nA. a car\nB. a dog Think first, call "
        "**view_visual_prompt** and **crop_video** if needed, then answer. Format strictly as:  "
        "<think>...</think>  <tool_call>...</tool_call> (if tools needed)  <answer>...</answer>. "
        "The Video path for this video is: videos/v1.mp4, The visual prompt frame path for this "
        "video is: videos/v1_prompt.png.<|im_end|>\n<|im_start|>assistant\n")
    assert tok.decode(prompt.input_ids) == expected_prompt

    turn1 = ("<think>look</think>\n" + _call("view_visual_prompt", frame_path="v1_prompt.png")
             + "\n" + _call("crop_video", video_path="videos/v1.mp4", start_time=1, end_time=3))
    res = ep.step(turn1)
    assert [o.error for o in res.observations] == [None, None]
    # view (96x128 at native size: 6x8 patches, 12 tokens): the image, then the success text;
    # crop (1-3 s, 4 frames): `<start + i seconds>`
    # before each frame, as VideoSeeker's code writes them, then the success text
    expected_tool = (
        "\n<|im_start|>user\n<tool_response>\n" + _pads("image", 12) + SUCCESS
        + "\n</tool_response>\n<tool_response>\n"
        + "".join(f"<{t}.0 seconds>" + _pads("image", 2) for t in (1, 2, 3, 4)) + SUCCESS
        + "\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
    assert tok.decode(res.segment.input_ids) == expected_tool

    turn2 = "<think>again</think>\n" + _call("crop_video", video_path="videos/v1.mp4",
                                             start_time=1, end_time=30)
    res = ep.step(turn2)  # the last round: an error, and no "answer now" note of ours
    error = "crop_video: end_time 30.0 is past the video's end (9.5 s)"
    assert tok.decode(res.segment.input_ids) == (
        f"\n<|im_start|>user\n<tool_response>\nTool execution failed: {error}\n</tool_response>"
        "<|im_end|>\n<|im_start|>assistant\n")
    ep.step("<think>a car</think> <answer>A</answer>")

    # The same conversation in VideoSeeker's message layout, through Qwen3-VL's template
    # with tools=, image pads expanded: the token ids equal the segments', one for one.
    img = {"type": "image"}
    messages = [
        {"role": "user", "content": [x for t in range(4) for x in
                                     ({"type": "text", "text": f"<{t}.0 seconds>"}, img)]
         + [{"type": "text", "text": expected_prompt.split(_pads("image", 2))[-1]
             .split("<|im_end|>")[0]}]},
        {"role": "assistant", "content": turn1},
        {"role": "tool", "content": [img, {"type": "text", "text": SUCCESS}]},
        {"role": "tool", "content": [x for t in (1, 2, 3, 4) for x in
                                     ({"type": "text", "text": f"<{t}.0 seconds>"}, img)]
         + [{"type": "text", "text": SUCCESS}]},
        {"role": "assistant", "content": turn2},
        {"role": "tool", "content": [{"type": "text", "text": f"Tool execution failed: {error}"}]},
        {"role": "assistant", "content": "<think>a car</think> <answer>A</answer>"},
    ]
    rendered = tok.apply_chat_template(messages, tools=list(VIDEOSEEKER_TOOLS), tokenize=False)
    counts = [2] * 4 + [12] + [2] * 4  # the frame: 96x128 -> 6x8 patches -> 12 tokens
    for n in counts:
        rendered = rendered.replace("<|image_pad|>", "<|IMG|>" * n, 1)
    rendered = rendered.replace("<|IMG|>", "<|image_pad|>")
    assert rendered.endswith("<|im_end|>\n")
    reference = tok.encode(rendered[:-1], add_special_tokens=False)
    ours = concat_segments(ep.segments)
    assert ours.input_ids.tolist() == reference
    assert ours.image_grid_thw.shape == (4 + 1 + 4, 3)


def test_profiles_pick_their_tools(sample, tok):
    root, record = sample
    ours = get_profile("seeker_jax")
    assert ours.tool_names == ("view_visual_prompt", "crop_video") and ours.system_prompt
    fm = make_formatter(tok, OFFICIAL)
    assert fm.system_prompt == "" and fm.tools == list(VIDEOSEEKER_TOOLS)
