"""Episodes end to end on a test-made sample, and the format validator."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from seeker_jax.env.episode import Episode, EpisodeConfig, make_formatter
from seeker_jax.env.parser import extract_answer, validate_trajectory, validate_turn
from seeker_jax.env.records import SampleRecord, read_records
from seeker_jax.env.video import Sampling
from seeker_jax.models.chat import concat_segments

CONFIG = EpisodeConfig(video=Sampling(fps=1.0, max_frames=8, min_pixels=1024), max_rounds=2)


@pytest.fixture(scope="module")
def sample(index_sample, tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "ds"
    shutil.copytree(index_sample, root)  # records.jsonl goes beside the videos: a copy
    record = {"video_id": "v1", "video_path": "videos/v1.mp4", "duration": 9.5,
              "question": "What is marked?\nA. a car\nB. a dog", "answer": "A",
              "frame_path": "videos/v1_prompt.png", "dimension": "OA", "category": "obj",
              "source": "test"}
    (root / "records.jsonl").write_text(json.dumps(record) + "\n")
    return root, next(read_records(root / "records.jsonl"))


@pytest.fixture(scope="module")
def fm(tok):
    return make_formatter(tok, CONFIG)


def call(name, **args):
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


def test_record_fields(sample):
    _, rec = sample
    assert (rec.video_id, rec.answer, rec.dimension, rec.duration) == ("v1", "A", "OA", 9.5)
    assert rec.extras == {"source": "test"} and rec.to_dict()["source"] == "test"
    with pytest.raises(ValueError, match="lacks"):
        SampleRecord.from_dict({"video_id": "x"})


def test_full_episode(sample, fm):
    root, rec = sample
    ep = Episode(rec, fm, root, CONFIG)
    prompt = ep.prompt_segment()
    text = fm.tokenizer.decode(prompt.input_ids)
    assert "Video: videos/v1.mp4 (9.5 seconds)\nVisual-prompt frame: videos/v1_prompt.png" in text
    assert text.endswith("B. a dog<|im_end|>\n<|im_start|>assistant\n")
    np.testing.assert_array_equal(prompt.video_grid_thw, [[4, 6, 8]])  # 8 frames at 1 fps

    turn1 = "<think>look</think>" + call("view_visual_prompt", frame_path="v1_prompt.png") + \
        call("crop_video", video_path="videos/v1.mp4", start_time=1, end_time=30)
    ids1 = fm.tokenizer.encode(turn1) + [fm.ids.im_end]
    res = ep.step(turn1, ids1)
    assert not res.done and [o.error for o in res.observations] == [
        None, "crop_video: end_time 30.0 is past the video's end (9.5 s)"]
    assert ep.segments[1].input_ids.tolist() == ids1  # generated ids kept

    turn2 = "<think>zoom</think>" + call("crop_video", video_path="videos/v1.mp4",
                                         start_time=1, end_time=3)
    res = ep.step(turn2)
    assert not res.done
    tail = fm.tokenizer.decode(res.segment.input_ids)
    assert "(This was tool round 2 of 2; answer now.)\n</tool_response>" in tail

    res = ep.step("<think>a car</think><answer>A</answer>")
    assert res.done and res.answer == "A" and res.end_reason == "answer"
    assert ep.format_check().ok and ep.num_tool_calls == 3
    assert [c.name for c in ep.calls] == ["view_visual_prompt", "crop_video", "crop_video"]
    assert all(c.latency_s >= 0 for c in ep.calls) and ep.calls[2].round == 2

    conv = concat_segments(ep.segments)
    assert conv.image_grid_thw.shape == (1, 3) and conv.video_grid_thw.shape == (2, 3)
    assert fm.tokenizer.decode(conv.input_ids[conv.loss_mask == 1]).count("<|im_end|>") == 3
    with pytest.raises(RuntimeError):
        ep.step("more")


def test_episode_limits(sample, fm):
    root, rec = sample
    ep = Episode(rec, fm, root, CONFIG)
    ep.prompt_segment()
    turn = "<think>x</think>" + call("crop_video", video_path="v1.mp4", start_time=0, end_time=2)
    assert not ep.step(turn).done and not ep.step(turn).done
    res = ep.step(turn)  # a third round is over the limit of 2
    assert res.done and res.answer is None and res.end_reason == "max_rounds"
    assert not ep.format_check().ok

    ep = Episode(rec, fm, root, CONFIG)
    ep.prompt_segment()
    res = ep.step("I think it is a car.")
    assert res.done and res.end_reason == "no_tool_call_or_answer"


def test_tools_off_profile_shows_the_same_prompt_and_runs_no_tool(sample, tok):
    """env.profile seeker_jax_tools_off (the seek runs' tools-disabled ablation): the prompt is
    token for token seeker_jax's, every call comes back as an error text the model reads, and
    the episode goes on to its answer."""
    import dataclasses

    root, rec = sample
    off = dataclasses.replace(CONFIG, profile="seeker_jax_tools_off")
    fm_off = make_formatter(tok, off)
    on_ep, off_ep = Episode(rec, make_formatter(tok, CONFIG), root, CONFIG), \
        Episode(rec, fm_off, root, off)
    np.testing.assert_array_equal(on_ep.prompt_segment().input_ids,
                                  off_ep.prompt_segment().input_ids)
    turn = "<think>x</think>" + call("crop_video", video_path="videos/v1.mp4", start_time=1,
                                     end_time=3)
    res = off_ep.step(turn)
    assert not res.done and [o.error for o in res.observations] == [
        "no tool runs in this episode ('crop_video' was called); answer from what you have seen"]
    assert "no tool runs in this episode" in fm_off.tokenizer.decode(res.segment.input_ids)
    assert res.segment.video_grid_thw is None or len(res.segment.video_grid_thw) == 0
    res = off_ep.step("<think>a car</think><answer>A</answer>")
    assert res.done and res.answer == "A" and off_ep.calls[0].error is not None


@pytest.mark.parametrize("turns,ok", [
    (["<think>a</think><answer>A</answer>"], True),
    (["<think>a</think>\n<tool_call>{}</tool_call>\n<tool_call>{}</tool_call>",
      "<think>b</think>\n<answer>B</answer>\n"], True),
    (["<answer>A</answer>"], False),                                    # no think
    (["<think>a</think><answer>A</answer><answer>B</answer>"], False),  # two answers
    (["<think>a</think><tool_call>{}</tool_call><answer>A</answer>"], False),  # call then answer
    (["<think>a</think>", "<think>b</think><answer>B</answer>"], False),  # empty middle turn
    (["<think>a</think><answer>A</answer>", "<think>b</think><answer>B</answer>"], False),
    (["<think>a</think> so <answer>A</answer>"], False),               # text outside tags
    (["<think>a<answer>A</answer></think>"], False),                   # nested
    (["<think>a</think><answer>" + "x" * 1000 + "</answer>"], False),  # answer too long
    (["<think>a</think><answer>" + "x" * 999 + "</answer>"], True),
    ([], False),
])
def test_format_validator(turns, ok):
    assert validate_trajectory(turns).ok is ok


def test_extract_answer():
    assert extract_answer("<think>x</think><answer> B </answer>") == "B"
    assert extract_answer("no answer") is None
    assert validate_turn("<think>a</think><answer>", final=True).reason == "<answer> is not closed"


def test_cli_tool(sample, tmp_path, capsys):
    from seeker_jax.cli.main import main

    root, _ = sample
    crop = call("crop_video", video_path="videos/v1.mp4", start_time=2, end_time=5)
    assert main(["tool", "--record", str(root / "records.jsonl"), "--call", crop,
                 "--out", str(tmp_path)]) == 0
    shown = json.loads(capsys.readouterr().out)["calls"][0]
    assert shown["error"] is None and [f["time"] for f in shown["frames"]] == [2, 3, 4, 5]
    assert shown["text"].endswith("<2.5 seconds><video frames><4.5 seconds><video frames>")
    assert Image.open(shown["frames"][0]["path"]).size == (128, 96)
