"""The demo's pieces: the teacher's turns on the demo world, the held-out scoring (the
evaluator's "answer" protocol and GRPO's reward), the episode write-up and the bootstrap
interval (the end-to-end run is tests/test_quiet.py's slow test)."""
import json

import numpy as np
import pytest

from seeker_jax.config import load_config
from seeker_jax.data.records import SPLITS, read_records
from seeker_jax.data.synth import synthesize
from seeker_jax.data.trajectories import build_trajectory, crop_window, teacher_turns
from seeker_jax.env.config import EnvConfig
from seeker_jax.env.episode import Episode
from seeker_jax.env.parser import parse_tool_calls, validate_trajectory
from seeker_jax.env.records import SampleRecord
from seeker_jax.models.tokenizer import offline_qwen_tokenizer
from seeker_jax.cli.demo import reward_scores
from seeker_jax.eval.compare import by_answer, paired_bootstrap, summarize_episodes, table
from seeker_jax.eval.describe import describe_episode
from seeker_jax.eval.models import Outcome
from seeker_jax.eval.protocols import get_protocol
from seeker_jax.eval.readers import samples_from_records
from seeker_jax.eval.runner import judge


def rec(question, duration=4.0, window=(0.0, 1.0), answer="A", **extra):
    return {"question": question, "duration": duration, "evidence_window": list(window),
            "answer": answer, **extra}


@pytest.mark.parametrize("question,window", [
    ("What does it do between 1.0 s and 1.7 s?", (1.0, 1.7)),
    ("In which direction does it move between 0.1 s and 0.9 s?\nA. Up", (0.1, 0.9)),
    ("What color is it at 2.0 s?", (1.5, 2.5)),
    ("What color is it at 0.2 s?", (0.0, 0.7)),        # clipped at 0, then >= 0.5 s long
    ("At 3.9 s, where is it?", (3.4, 4.0)),            # clipped at the end
    ("How many times does it leave the frame?", (0.0, 4.0)),  # no time named: the whole video
    ("What does it do between 2.0 s and 2.2 s?", (2.0, 2.5)),  # widened to 0.5 s
    ("What does it do between 3.8 s and 4.0 s?", (3.5, 4.0)),  # widened backwards at the end
])
def test_crop_window_hand_worked(question, window):
    assert crop_window(rec(question)) == pytest.approx(window)


def every_record(root) -> list[dict]:
    """The records of every split of a synthesized world, in split order."""
    return [r for s in SPLITS for r in read_records(root, s, resolve=False)]


def synth_world(root, num: int, preset: str):
    """A world of `num` records of configs/synth.py:`preset` under root: (env, formatter) as
    configs/sft.py:demo runs it."""
    synthesize(root, num, 0, load_config(f"configs/synth.py:{preset}"), progress=False)
    env = EnvConfig.from_config(load_config("configs/sft.py:demo").env)
    return env, env.formatter(offline_qwen_tokenizer())


@pytest.fixture(scope="module")
def demo_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_world")
    return (root, *synth_world(root, 24, "demo"))


def test_demo_world_is_multiple_choice_wherever_it_can_be(demo_world):
    root, _, _ = demo_world
    records = every_record(root)
    mc = [r for r in records if r["question_form"] == "mc"]
    assert len(mc) >= 0.8 * len(records)
    assert all(r["answer"] in "ABCD" and len(r["options"]) == 4 for r in mc)


def test_teacher_turns_run_cleanly_and_say_what_they_call(demo_world):
    """Every teacher trajectory of the demo world: three turns in the paper's format, calls that
    parse to exactly the arguments written (kind names, 0.1 s times from the question) and run
    without a tool error, and the crop's frames lie inside the window."""
    root, env, formatter = demo_world
    for record in read_records(root, "train", resolve=False):
        turns = teacher_turns(record)
        assert validate_trajectory(turns).ok
        start, end = crop_window(record)
        calls = [(c.name, c.arguments) for t in turns[:2] for c in parse_tool_calls(t)]
        assert calls == [("view_visual_prompt", {"frame_path": "frame"}),
                         ("crop_video", {"video_path": "video", "start_time": start,
                                         "end_time": end})]
        assert turns[2].endswith(f"<answer>{record['answer']}</answer>")
        episode = Episode(SampleRecord.from_dict(record), formatter, root, env.episode_config())
        episode.prompt_segment()
        first, second = episode.step(turns[0]), episode.step(turns[1])
        assert [o.error for o in first.observations + second.observations] == [None, None]
        times = second.observations[0].frame_times
        assert times and start - 1e-6 <= min(times) and max(times) <= end + 1e-6
        assert episode.step(turns[2]).answer == record["answer"]
        segment = build_trajectory(record, formatter, root, env.episode_config())
        assert len(segment.input_ids) <= 1024  # the demo's GRPO rows (rollout.max_len)


def result(turns, answer, reason="answer", calls=()):
    return Outcome(list(turns), reason, list(calls), answer, ["stop"] * len(turns))


def call(name):
    return {"round": 1, "name": name, "arguments": {}, "error": None}


def test_score_and_table_hand_worked(demo_world):
    """The demo's held-out scoring: the "answer" protocol's verdicts, GRPO's reward beside
    them, the summary and the table."""
    root, _, _ = demo_world
    records = read_records(root, "train", resolve=False)
    mc = [r for r in records if r["question_form"] == "mc"][:3]
    wrong = next(x for x in "ABCD" if x != mc[1]["answer"])
    results = [result(teacher_turns(mc[0]), mc[0]["answer"],
                      calls=[call("view_visual_prompt"), call("crop_video")]),
               result(["<think>I answer.</think>\n<answer>" + wrong + "</answer>"], wrong),
               result(["<think>I view"], None, "no_tool_call_or_answer")]
    protocol = get_protocol("answer")
    judged = [judge(s, protocol, o) for s, o in zip(samples_from_records(mc, root), results)]
    assert [j.prediction for j in judged] == [mc[0]["answer"], wrong, None]
    ev = summarize_episodes(judged, [s["reward"] for s in reward_scores(judged, mc)])
    s = ev.summary
    assert (s["accuracy"], s["answered"], s["tool_calls_per_episode"]) == pytest.approx(
        (1 / 3, 2 / 3, 2 / 3))
    assert ev.correct.tolist() == [1.0, 0.0, 0.0]
    assert ev.reward[0] > ev.reward[1] > ev.reward[2] >= 0.0  # right > formatted > nothing
    assert s["end_reasons"] == {"answer": 2, "no_tool_call_or_answer": 1}
    text = table({"SFT": s, "SFT+GRPO": s}).splitlines()
    assert text[1].split()[-2:] == ["33.3%", "33.3%"] and "answered" in text[-1]
    assert table({"eval": summarize_episodes(judged).summary}).splitlines()[2].split()[-1] == "-"
    with pytest.raises(ValueError, match="2 rewards for 3 episodes"):
        summarize_episodes(judged, [0.0, 0.0])


def test_learn_tools_world_has_a_weak_teacher_that_answers_from_the_marked_frame(tmp_path):
    """configs/synth.py:learn_tools: most questions name a time whose color differs from the
    marked frame's (all, where the instance changed color), so the crop decides the answer
    (the others ask what color it turns into); a share of the records carry the weak
    teacher's answer, the color the tracks give at the prompt frame, and their trajectories
    view the frame, then answer that, with no crop. The other records keep the crop. Presets
    without the shortcut write no such key."""
    from seeker_jax.data.questions import COLOR_NAMES
    from seeker_jax.data.world import World

    root = tmp_path / "tools"
    env, formatter = synth_world(root, 40, "learn_tools")
    records = every_record(root)
    weak = [r for r in records if "teacher_shortcut" in r]
    assert 0.3 * len(records) <= len(weak) <= 0.9 * len(records)
    differ = 0
    for record in records:
        world = World.load(root / record["tracks_path"])
        marked = COLOR_NAMES[world.color[record["target_track_id"], record["prompt_frame_index"]]]
        at_time = record["spec"]["kind"] == "color_at"   # else "what color does it turn into"
        differ += at_time and record["answer"] != marked
        turns = teacher_turns(record)
        calls = [c.name for t in turns for c in parse_tool_calls(t)]
        if "teacher_shortcut" in record:
            assert at_time and record["teacher_shortcut"] == marked
            assert calls == ["view_visual_prompt"] and validate_trajectory(turns).ok
            assert turns[-1].endswith(f"<answer>{marked}</answer>")
        else:
            assert calls == ["view_visual_prompt", "crop_video"]
    assert differ >= 0.7 * sum(r["spec"]["kind"] == "color_at" for r in records)
    videos = [len(build_trajectory(r, formatter, root, env.episode_config()).video_grid_thw)
              for r in (weak[0], next(r for r in records if "teacher_shortcut" not in r))]
    assert videos == [1, 2]   # the prompt's video; the crop's on top where the teacher crops
    plain = tmp_path / "plain"
    synthesize(plain, 6, 0, load_config("configs/synth.py:learn"), progress=False)
    assert not any("teacher_shortcut" in r for r in every_record(plain))


def test_learn_guess_world_has_a_guessing_teacher(tmp_path):
    """configs/synth.py:learn_guess: a share of the records carry a guess, a color name drawn
    without looking at the truth (so right by chance only, not always), and their trajectories call no
    tool and answer the guess; the others view the frame and crop. The videos and questions
    are learn's draws (the guess is drawn after the record's own), and a preset without the
    guessing teacher writes no such key (test_learn_tools_world_... checks that for learn)."""
    from seeker_jax.data.questions import COLOR_NAMES

    root = tmp_path / "guess"
    env, formatter = synth_world(root, 60, "learn_guess")
    records = every_record(root)
    lazy = [r for r in records if "teacher_guess" in r]
    assert 0.35 * len(records) <= len(lazy) <= 0.85 * len(records)
    assert all(r["teacher_guess"] in COLOR_NAMES for r in lazy)
    right = sum(r["teacher_guess"] == r["answer"] for r in lazy)
    assert 0 < right < 0.5 * len(lazy)        # chance is 1/6
    for record in records:
        turns = teacher_turns(record)
        calls = [c.name for t in turns for c in parse_tool_calls(t)]
        assert "teacher_shortcut" not in record
        if "teacher_guess" in record:
            assert calls == [] and len(turns) == 1 and validate_trajectory(turns).ok
            assert turns[0].endswith(f"<answer>{record['teacher_guess']}</answer>")
        else:
            assert calls == ["view_visual_prompt", "crop_video"]
    videos = [len(build_trajectory(r, formatter, root, env.episode_config()).video_grid_thw)
              for r in (lazy[0], next(r for r in records if "teacher_guess" not in r))]
    assert videos == [1, 2]   # the prompt's video; the crop's on top where the teacher crops
    plain = tmp_path / "plain"
    synthesize(plain, 60, 0, load_config("configs/synth.py:learn"), progress=False)
    same = every_record(plain)
    assert [(r["id"], r["question"], r["answer"]) for r in same] == \
        [(r["id"], r["question"], r["answer"]) for r in records]
    assert not any("teacher_guess" in r for r in same)


def test_learn_confuse_world_has_a_teacher_that_mixes_up_colors(tmp_path):
    """configs/synth.py:learn_confuse: a share of the records whose answer is red, orange, blue
    or purple carry `teacher_answer`, the pair's other color; their trajectories call both
    tools as always and end in that answer. The records' own answers stay the truth, and green
    and yellow are never mixed up. The videos and questions are learn's draws."""
    root = tmp_path / "confuse"
    env, formatter = synth_world(root, 60, "learn_confuse")
    records = every_record(root)
    partner = {"red": "orange", "orange": "red", "blue": "purple", "purple": "blue"}
    paired = [r for r in records if r["answer"] in partner]
    mixed = [r for r in records if "teacher_answer" in r]
    assert 0.45 * len(paired) <= len(mixed) < len(paired)   # 70% of them
    assert all(r["teacher_answer"] == partner[r["answer"]] for r in mixed)
    for record in records:
        turns = teacher_turns(record)
        calls = [c.name for t in turns for c in parse_tool_calls(t)]
        assert calls == ["view_visual_prompt", "crop_video"] and validate_trajectory(turns).ok
        said = record.get("teacher_answer", record["answer"])
        assert turns[-1].endswith(f"<answer>{said}</answer>")
    build_trajectory(mixed[0], formatter, root, env.episode_config())
    plain = tmp_path / "plain"
    synthesize(plain, 60, 0, load_config("configs/synth.py:learn"), progress=False)
    assert [(r["id"], r["question"], r["answer"]) for r in every_record(plain)] == \
        [(r["id"], r["question"], r["answer"]) for r in records]


@pytest.mark.parametrize("spec,match", [
    ("red:pink", "not two different colors"), ("red:red", "not two different colors"),
    ("red", "not two different colors"), ("red:orange,orange:blue", "'orange' is in two pairs"),
])
def test_confuse_pairs_says_what_is_wrong(spec, match):
    from seeker_jax.data.synth import confuse_pairs

    assert confuse_pairs("red:orange, blue:purple") == {
        "red": "orange", "orange": "red", "blue": "purple", "purple": "blue"}
    with pytest.raises(ValueError, match=match):
        confuse_pairs(spec)


def test_describe_episode_shows_what_the_tools_showed(demo_world):
    """The write-up replays the turns: the crop's caption with its frame count and times."""
    root, env, _ = demo_world
    record = read_records(root, "train", resolve=False)[0]
    turns = teacher_turns(record)
    lines = describe_episode(result(turns, record["answer"]), record, root, env,
                             offline_qwen_tokenizer())
    start, end = crop_window(record)
    crop = next(x for x in lines if "Frames of" in x)
    assert f"from {start:.1f} s to {end:.1f} s" in crop and "frame(s) at" in crop
    assert any("The visual-prompt frame" in x and "1 still image(s)" in x for x in lines)
    assert sum(x.strip().startswith("model turn") for x in lines) == 3
    assert lines[-1].strip().startswith(f"answer {record['answer']!r}")


def test_paired_bootstrap_closed_forms():
    same = np.array([0, 1, 1, 0, 1], float)
    assert paired_bootstrap(same, same) == (0.0, 0.0, 0.0)
    assert paired_bootstrap(np.zeros(50), np.ones(50)) == (1.0, 1.0, 1.0)
    # 400 questions, half gained one point, half unchanged: mean 0.5, sd sqrt(.25/400) = .025,
    # so the 95% interval is 0.5 +- 1.96 * 0.025 = [0.451, 0.549] (normal approximation).
    before, after = np.zeros(400), np.r_[np.ones(200), np.zeros(200)]
    gain, low, high = paired_bootstrap(before, after, samples=20_000)
    assert gain == 0.5
    assert low == pytest.approx(0.451, abs=0.006) and high == pytest.approx(0.549, abs=0.006)
    with pytest.raises(ValueError, match="equal non-empty"):
        paired_bootstrap(np.zeros(3), np.zeros(4))


def test_by_answer_splits_accuracy_by_the_truth():
    answers = ["red", "blue", "red", "green", "red"]
    split = by_answer(answers, {"SFT": [1, 0, 0, 1, 0], "GRPO": [1, 1, 1, 0, 0]},
                      said={"SFT": ["red", "purple", "orange", "green", "orange"]})
    assert list(split) == ["blue", "green", "red"]
    assert split["red"].pop("SFT says") == "orange (67%)"
    assert split["red"] == pytest.approx({"n": 3, "SFT": 1 / 3, "GRPO": 2 / 3})
    assert split["blue"] == {"n": 1, "SFT": 0.0, "GRPO": 1.0, "SFT says": "purple (100%)"}
    assert split["green"]["GRPO"] == 0.0


def test_demo_presets_read_like_the_docs():
    demo, long = load_config("configs/demo.py:default"), load_config("configs/demo.py:long")
    assert demo.grpo_steps > 0 and demo.episodes >= 16
    assert "--config.data.synth_num=2400" in long.sft and long.episodes >= 200
    assert demo.eval_world == 0 and long.eval_world >= 200
    tools = load_config("configs/demo.py:tools")
    assert "--config.data.synth_preset=learn_tools" in tools.sft
    assert (tools.grpo, tools.grpo_steps, tools.eval_world) == (long.grpo, long.grpo_steps,
                                                                 long.eval_world)
    guess = load_config("configs/demo.py:guess")
    assert "--config.data.synth_preset=learn_guess" in guess.sft
    assert guess.sft_steps < long.sft_steps and guess.eval_world == long.eval_world
    assert "--config.optimizer.lr=5e-4" in guess.grpo
    confuse = load_config("configs/demo.py:confuse")
    assert "--config.data.synth_preset=learn_confuse" in confuse.sft
    assert (confuse.sft_steps, confuse.grpo) == (guess.sft_steps, guess.grpo)
    assert confuse.grpo_steps == 2 * guess.grpo_steps
    assert load_config("configs/sft.py:demo").data.synth_preset == "demo"
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        load_config("configs/demo.py:huge")
    json.dumps(demo.to_dict())


def test_held_out_world_is_new_videos_from_every_split(tmp_path):
    """The long run's evaluation world: the SFT world's preset, the next seed, every split."""
    from seeker_jax.cli.demo import held_out_world

    config = load_config("configs/sft.py:tiny_synth")
    root, records = held_out_world(str(tmp_path), config, 48)
    assert root == str(tmp_path / "eval_data") and len(records) == 48
    assert {r["split"] for r in records} == {"train", "val", "test"}
    assert all(r["video_id"].startswith(f"synth{config.seed + 1}_") for r in records)
    # made once: a second call reads the same records back
    assert [r["question"] for r in held_out_world(str(tmp_path), config, 48)[1]] == \
        [r["question"] for r in records]
