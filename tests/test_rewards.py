"""GRPO rewards on a table of real-looking model outputs (nasty ones included), hand-worked for
both presets; parsimony with the gate on and off; temporal IoU by hand; from_episode on real
EpisodeResult / CallRecord objects; the config group. The judge: tests/test_judge.py."""
import dataclasses
import json

import numpy as np
import pytest

from seeker_jax.config import load_config
from seeker_jax.configs.reward import reward_group
from seeker_jax.generation.conversation import Conversation
from seeker_jax.env.episode import CallRecord
from seeker_jax.env.parser import extract_answer, parse_tool_calls
from seeker_jax.rl.rewards import (RewardConfig, RewardContext, RewardModel, accuracy_mc,
                                   accuracy_open_rule, format_official, format_paper, from_episode,
                                   get_reward, interval_iou, parsimony, register_reward,
                                   registered_rewards, summarize, temporal_iou)
from seeker_jax.agents.rollout import EpisodeResult

MC = {"id": "v0_q0", "question": "What color is the object in the red box?\nA. red\nB. blue\n"
      "C. green\nD. yellow", "answer": "B", "question_form": "mc",
      "options": {"A": "red", "B": "blue", "C": "green", "D": "yellow"},
      "evidence_window": [2.0, 4.0]}
OPEN = {"id": "v0_q1", "question": "What does the circled object do after it appears?",
        "answer": "it turns left", "question_form": "open", "options": {},
        "evidence_window": [1.0, 3.0]}


def call(name, **arguments):
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


CROP = call("crop_video", video_path="videos/v0.mp4", start_time=1.5, end_time=4.5)
VIEW = call("view_visual_prompt", frame_path="frames/v0_q0.png")


def run(turns, stops=None):
    """What the environment makes of these turns (env/episode.py's step rule, with the env's
    own parser): the answer, why it ended, and one CallRecord per call (all succeed)."""
    calls, answer, reason = [], None, "max_turns"
    for i, turn in enumerate(turns):
        answer = extract_answer(turn)
        if answer is not None:
            reason = "answer"
            break
        parsed = parse_tool_calls(turn)
        if not parsed:
            reason = "no_tool_call_or_answer"
            break
        calls += [CallRecord(i + 1, c.name, c.arguments, 0.01, None) for c in parsed]
    empty = np.zeros(0, np.int32)
    conv = Conversation(empty, empty, empty, np.zeros(0, np.float32), [])
    return EpisodeResult(0, conv, list(turns), stops or ["stop_string"] * len(turns), answer,
                         reason, calls)


LONG = "B, because " + "the blue one is marked and it stays blue " * 30
# name, record, turns, (accuracy, format_paper, format_official, parsimony gated),
# reward seeker (the paper's weights, parsimony gated), reward official_code
TABLE = [
    ("clean_no_tool", MC, ["<think>It looks blue.</think>\n<answer>B</answer>"],
     (1, 1, 1, 1.0), 1.0, 1.0),
    ("bracketed_letter_one_crop", MC, ["<think>Check the window.</think>\n" + CROP,
                                       "<think>Blue.</think>\n<answer>(B)</answer>"],
     (1, 1, 1, 0.8), 0.8 + 0.15 + 0.05 * 0.8, 1.0),
    ("lowercase_letter", MC, ["<think>b</think><answer>b</answer>"], (1, 1, 1, 1.0), 1.0, 1.0),
    ("answer_colon_letter", MC, ["<think>x</think><answer>Answer: B</answer>"],
     (1, 1, 1, 1.0), 1.0, 1.0),
    ("option_text_only", MC, ["<think>x</think><answer>blue</answer>"], (1, 1, 1, 1.0), 1.0, 1.0),
    ("letter_and_option_text", MC, ["<think>x</think><answer>B. blue</answer>"],
     (1, 1, 1, 1.0), 1.0, 1.0),
    ("wrong_no_tool", MC, ["<think>Red, surely.</think><answer>A</answer>"],
     (0, 1, 1, 0.0), 0.15, 0.2),
    ("hedge_two_letters", MC, ["<think>x</think><answer>A or B</answer>"],
     (0, 1, 1, 0.0), 0.15, 0.2),
    ("unclosed_think", MC, ["<think>hmm, blue <answer>B</answer>"],
     (1, 0, 0, 1.0), 0.85, 0.8),
    ("two_answers", MC, ["<think>x</think><answer>A</answer><answer>B</answer>"],
     (1, 0, 0, 1.0), 0.85, 0.8),
    ("answer_over_1000_chars", MC, [f"<think>x</think><answer>{LONG}</answer>"],
     (0, 0, 0, 0.0), 0.0, 0.0),
    ("tool_call_after_answer", MC, ["<think>x</think><answer>B</answer>" + CROP],
     (1, 0, 0, 1.0), 0.85, 0.8),
    ("empty_answer", MC, ["<think>x</think><answer></answer>"], (0, 1, 1, 0.0), 0.15, 0.2),
    ("garbage", MC, ["asdf qwerty <<<>>> }{"], (0, 0, 0, 0.0), 0.0, 0.0),
    ("text_before_think", MC, ["Sure! <think>x</think><answer>B</answer>"],
     (1, 0, 0, 1.0), 0.85, 0.8),
    # text between turns' tags: the paper's grammar refuses it, the official check allows it
    ("text_between_tags", MC, ["<think>look</think>\n" + CROP,
                               "Let me answer. <think>blue</think><answer>B</answer>"],
     (1, 0, 1, 0.8), 0.8 + 0.05 * 0.8, 1.0),
    # two calls in one turn: the paper's grammar allows it, the official one call per turn not
    ("two_calls_one_turn", MC, ["<think>look</think>\n" + VIEW + "\n" + CROP,
                                "<think>blue</think>\n<answer>B</answer>"],
     (1, 1, 0, 0.6), 0.8 + 0.15 + 0.05 * 0.6, 0.8),
    ("trailing_im_end_kept_by_sampler", MC, ["<think>x</think>\n<answer>B</answer><|im_end|>"],
     (1, 1, 1, 1.0), 1.0, 1.0),
    ("cut_by_length", MC, ["<think>I need to look at the"], (0, 0, 0, 0.0), 0.0, 0.0),
    ("ends_on_tool_turn", MC, ["<think>look</think>\n" + CROP], (0, 0, 0, 0.0), 0.0, 0.0),
    ("open_states_reference", OPEN, ["<think>x</think><answer>It turns left.</answer>"],
     (1, 1, 1, 1.0), 1.0, 1.0),
    ("open_negated", OPEN, ["<think>x</think><answer>It does not turn left.</answer>"],
     (0, 1, 1, 0.0), 0.15, 0.2),
    ("open_wrong", OPEN, ["<think>x</think><answer>it turns right</answer>"],
     (0, 1, 1, 0.0), 0.15, 0.2),
    # hedges score 0 (the old rule credited any short answer containing the reference)
    ("open_hedge_disjunction", OPEN, ["<think>x</think><answer>It turns left or right.</answer>"],
     (0, 1, 1, 0.0), 0.15, 0.2),
    ("open_hedge_list", OPEN, ["<think>x</think><answer>it turns left, right, up</answer>"],
     (0, 1, 1, 0.0), 0.15, 0.2),
    ("mc_reasoning_names_another_letter", MC,
     ["<think>x</think><answer>B, because A is wrong</answer>"], (1, 1, 1, 1.0), 1.0, 1.0),
    ("mc_negated_letter", MC, ["<think>x</think><answer>Not B</answer>"],
     (0, 1, 1, 0.0), 0.15, 0.2),
]


def context(record, turns, **kw):
    return from_episode(run(turns, **kw), record)


@pytest.mark.parametrize("name,record,turns,parts,seeker,official", TABLE,
                         ids=[row[0] for row in TABLE])
def test_reward_table(name, record, turns, parts, seeker, official):
    ctx = context(record, turns)
    acc, fmt_p, fmt_o, par = parts
    assert accuracy_mc(ctx) == acc if record is MC else accuracy_open_rule(ctx) == acc
    assert format_paper(ctx) == fmt_p and format_official(ctx) == fmt_o
    assert parsimony(ctx, lam=0.2, gate=True, accuracy=acc) == pytest.approx(par, abs=1e-12)
    got_s = RewardModel(RewardConfig.from_config(reward_group("seeker"))).score([ctx])[0]
    assert got_s == pytest.approx({"accuracy": acc, "format": fmt_p, "parsimony": par,
                                   "reward": seeker}, abs=1e-12)
    # the paper's formula is ungated: every episode earns max(0, 1 - 0.2 N)
    bare = max(0.0, 1.0 - 0.2 * ctx.num_tool_calls)
    got_p = RewardModel(RewardConfig.from_config(reward_group("paper"))).score([ctx])[0]
    assert got_p == pytest.approx({"accuracy": acc, "format": fmt_p, "parsimony": bare,
                                   "reward": 0.8 * acc + 0.15 * fmt_p + 0.05 * bare}, abs=1e-12)
    got_o = RewardModel(RewardConfig.from_config(reward_group("official_code"))).score([ctx])[0]
    assert got_o == pytest.approx({"accuracy": acc, "format": fmt_o, "parsimony": bare,
                                   "reward": official}, abs=1e-12)


@pytest.mark.parametrize("options", [["red", "blue", "green", "yellow"],
                                     ["A. red", "B. blue", "C. green", "D. yellow"],
                                     ["(A) red", "(B) blue", "(C) green", "(D) yellow"],
                                     {"A": "red", "B": "blue", "C": "green", "D": "yellow"}])
def test_option_text_answers_with_any_option_style(options):
    for answer, want in (("blue", 1.0), ("Blue", 1.0), ("red", 0.0), ("lue", 0.0)):
        ctx = context({**MC, "options": options}, [f"<think>x</think><answer>{answer}</answer>"])
        assert accuracy_mc(ctx) == want, (options, answer)


def test_official_first_character_rule_would_score_brackets_wrong():
    ctx = context(MC, ["<think>x</think><answer>(B)</answer>"])
    assert ctx.answer[0] != ctx.reference          # the public code's pred[0] == gt: 0
    assert accuracy_mc(ctx) == 1.0                  # ours: 1


@pytest.mark.parametrize("calls,want", [(0, 1.0), (1, 0.8), (2, 0.6), (3, 0.4), (4, 0.2),
                                        (5, 0.0), (7, 0.0)])
def test_parsimony_closed_form(calls, want):
    ctx = RewardContext("q", "B", "B", "mc", num_tool_calls=calls)
    assert parsimony(ctx, lam=0.2, gate=False) == pytest.approx(want, abs=1e-12)
    assert parsimony(ctx, lam=0.2, gate=True, accuracy=1.0) == pytest.approx(want, abs=1e-12)
    assert parsimony(ctx, lam=0.05, gate=False) == pytest.approx(1 - 0.05 * calls, abs=1e-12)


def test_parsimony_gate_stops_paying_wrong_answers_without_tools():
    wrong_no_tools = RewardContext("q", "A", "B", "mc", num_tool_calls=0)
    right_two_tools = RewardContext("q", "B", "B", "mc", num_tool_calls=2)
    assert parsimony(wrong_no_tools, lam=0.2, gate=False) == 1.0   # the collapse's incentive
    assert parsimony(wrong_no_tools, lam=0.2, gate=True, accuracy=0.0) == 0.0
    assert parsimony(right_two_tools, lam=0.2, gate=True, accuracy=1.0) == pytest.approx(0.6)
    half = RewardContext("q", "x", "y", "open")
    assert parsimony(half, gate=True, accuracy=0.5) == 0.0
    assert parsimony(half, gate=True, accuracy=0.5, gate_min_accuracy=0.5) == 1.0
    with pytest.raises(ValueError, match="needs the accuracy"):
        parsimony(half, gate=True)
    with pytest.raises(ValueError, match="lambda"):
        parsimony(half, lam=-1, gate=False)
    # through the config: the paper's formula (ungated) pays a wrong answer without tools
    # 0.15 + 0.05; ours (seeker, gated) 0.15
    ctx = context(MC, ["<think>x</think><answer>A</answer>"])
    for preset, want in (("paper", 0.2), ("seeker", 0.15)):
        got = RewardModel(RewardConfig.from_config(reward_group(preset))).score([ctx])[0]
        assert got["reward"] == pytest.approx(want, abs=1e-12), preset


@pytest.mark.parametrize("a,b,want", [((3, 5), (2, 4), 1 / 3), ((2, 4), (2, 4), 1.0),
                                      ((0, 10), (2, 4), 0.2), ((5, 6), (2, 4), 0.0),
                                      ((4, 6), (2, 4), 0.0), ((5, 3), (2, 4), 0.0),
                                      ((2.5, 3.5), (2, 4), 0.5)])
def test_interval_iou_by_hand(a, b, want):
    assert interval_iou(a, b) == pytest.approx(want, abs=1e-12)


def test_temporal_iou_uses_the_last_successful_crop():
    def crop(s, e, error=None):
        return CallRecord(1, "crop_video", {"video_path": "v.mp4", "start_time": s,
                                            "end_time": e}, 0.01, error)
    result = run(["<think>a</think>" + CROP, "<think>b</think><answer>B</answer>"])
    result.calls = [crop(0, 10), crop(2, 4), crop(1, 99, "crop_video: end_time 99.0 is past "
                                                         "the video's end (9.8 s)"),
                    CallRecord(1, "view_visual_prompt", {"frame_path": "f.png"}, 0.01, None)]
    ctx = from_episode(result, MC)
    assert ctx.crop_windows == [(0.0, 10.0), (2.0, 4.0)] and ctx.tool_errors == 1
    assert temporal_iou(ctx) == 1.0
    result.calls = result.calls[1::-1]                 # (2, 4) then (0, 10): the last counts
    assert temporal_iou(from_episode(result, MC)) == pytest.approx(0.2)
    assert temporal_iou(from_episode(run(["<think>x</think><answer>B</answer>"]), MC)) == 0.0
    assert temporal_iou(from_episode(result, {**MC, "evidence_window": None})) == 0.0
    group = reward_group("paper")
    group.temporal_iou = True
    got = RewardModel(RewardConfig.from_config(group)).score([from_episode(result, MC)])[0]
    # the call log has 2 calls -> parsimony 0.6; format: 2 turns, well formed
    assert got == pytest.approx({"accuracy": 1, "format": 1, "parsimony": 0.6,
                                 "temporal_iou": 0.2,
                                 "reward": 0.8 + 0.15 + 0.05 * 0.6 + 0.1 * 0.2}, abs=1e-12)


def test_from_episode_reads_records_of_both_kinds():
    ctx = context(MC, ["<think>a</think>" + CROP, "<think>b</think><answer>B</answer><|im_end|>"],
                  stops=["stop_token", "stop_string"])
    assert ctx.options == ["red", "blue", "green", "yellow"] and ctx.question_form == "mc"
    assert ctx.evidence_window == (2.0, 4.0) and ctx.crop_windows == [(1.5, 4.5)]
    assert ctx.turns[-1] == "<think>b</think><answer>B</answer>" and not ctx.truncated
    assert ctx.num_tool_calls == 1 and ctx.end_reason == "answer" and ctx.answer == "B"
    v2p = {"video_id": "x", "question": "Which? (A) a (B) b (C) c (D) d", "answer": "C"}
    ctx = context(v2p, ["<think>x</think><answer>(C)</answer>"])
    assert ctx.question_form == "mc" and ctx.options is None and accuracy_mc(ctx) == 1.0
    assert context({**OPEN, "question_form": None}, ["<think>"]).question_form == "open"
    cut = context(MC, ["<think>I need to look at the"], stops=["max_new_tokens"])
    assert cut.truncated and cut.answer is None
    with pytest.raises(ValueError, match="question_form 'essay'"):
        context({**MC, "question_form": "essay"}, ["x"])
    with pytest.raises(ValueError, match="needs the record's 'question' and 'answer'"):
        from_episode(run(["x"]), {"question": "q"})
    with pytest.raises(ValueError, match="evidence_window: expected"):
        context({**MC, "evidence_window": "soon"}, ["x"])


def test_config_presets_and_errors():
    paper = RewardConfig.from_config(reward_group("paper"))
    official = RewardConfig.from_config(reward_group("official_code"))
    assert not paper.parsimony_gate and RewardConfig.from_config(reward_group("seeker")) == \
        dataclasses.replace(paper, parsimony_gate=True)
    assert (paper.weights["accuracy"], paper.weights["format"], paper.weights["parsimony"]) == \
        (0.8, 0.15, 0.05) and paper.format_variant == "format_paper" and not paper.temporal_iou
    assert (official.weights["accuracy"], official.weights["format"],
            official.weights["parsimony"]) == (0.8, 0.2, 0.0)
    assert official.format_variant == "format_official" and paper.judge.spec == ""
    assert paper.components == ("accuracy", "format", "parsimony")
    c = load_config("configs/reward.py:official_code", ["--config.parsimony.lam=0.1",
                                                        "--config.temporal_iou=True"])
    got = RewardConfig.from_config(c)
    assert got.parsimony_lambda == 0.1 and got.components[-1] == "temporal_iou"
    with pytest.raises(ValueError, match="unknown reward preset 'fancy'"):
        reward_group("fancy")
    bad = reward_group("paper")
    bad.format = "format_loose"
    with pytest.raises(KeyError, match="no reward named 'format_loose'"):
        RewardConfig.from_config(bad)
    bad = reward_group("paper")
    bad.judge.spec = "http://127.0.0.1:8000/v1"
    with pytest.raises(ValueError, match="expected URL#MODEL"):
        RewardConfig.from_config(bad)
    bad = reward_group("paper")
    bad.weights.accuracy = -1.0
    with pytest.raises(ValueError, match="weights must be >= 0"):
        RewardConfig.from_config(bad)
    bad = reward_group("paper")
    bad.judge.retries_max = 3
    with pytest.raises(ValueError, match=r"unknown keys \['retries_max'\]"):
        RewardConfig.from_config(bad)


def test_registry_and_summary():
    assert {"accuracy", "accuracy_mc", "format_official", "format_paper", "parsimony",
            "temporal_iou"} <= set(registered_rewards())
    with pytest.raises(KeyError, match="registered: accuracy"):
        get_reward("nope")

    @register_reward("format_strict_short")
    def strict(ctx, max_answer_chars=1000):
        return float(format_paper(ctx) and len(ctx.answer or "") < 3)

    group = reward_group("paper")
    group.format = "format_strict_short"
    model = RewardModel(RewardConfig.from_config(group))
    ok, long = (context(MC, [f"<think>x</think><answer>{a}</answer>"]) for a in ("B", "B. blue"))
    scores = model.score([ok, long])
    assert [s["format"] for s in scores] == [1.0, 0.0]
    with pytest.raises(ValueError, match="already registered"):
        register_reward("format_paper")(strict)
    assert summarize(scores) == pytest.approx({"reward/accuracy": 1.0, "reward/format": 0.5,
                                               "reward/parsimony": 1.0,
                                               "reward/reward": (1.0 + 0.85) / 2})
    assert model.metrics() == {"rewards/episodes": 2.0, "rewards/open_judged": 0.0,
                               "rewards/open_by_rule": 0.0, "rewards/open_addressed_grader": 0.0}


def test_malformed_calls_are_their_own_count_not_parsimony():
    """A call the environment could not parse (env/episode.py records it as "<unparsed>") is
    counted as malformed; parsimony counts the well-formed calls only."""
    result = run(["<think>a</think>" + CROP, "<think>b</think><answer>B</answer>"])
    result.calls = [CallRecord(1, "<unparsed>", {"raw": "{oops"}, 0.0,
                               "tool call is not valid JSON"),
                    CallRecord(1, "crop_video", {"video_path": "v.mp4", "start_time": 1.5,
                                                 "end_time": 4.5}, 0.01, None)]
    ctx = from_episode(result, MC)
    assert (ctx.num_tool_calls, ctx.malformed_calls, ctx.tool_errors) == (1, 1, 1)
    assert parsimony(ctx, lam=0.2, gate=False) == pytest.approx(0.8)   # not 0.6


@pytest.mark.parametrize("record", [MC, OPEN, {**MC, "options": ["red", "blue", "green", "yellow"]},
                                    {"video_id": "x", "question": "Which? (A) a (B) b (C) c",
                                     "answer": "C"}], ids=["mc", "open", "mc_list", "v2p"])
def test_reward_accuracy_and_grading_give_one_verdict(record):
    """GRPO's accuracy rule (no judge) and env/grading.py (passk, the demo, eval's "answer")
    agree on every answer: one extractor, one verdict."""
    from seeker_jax.env.grading import answer_correct

    answers = ["B", "(B)", "blue", "C", "A or B", "Not B", "B, because A is wrong",
               "The answer is C.", "It turns left.", "it turns left or right", "it turns right",
               "It does not turn left", "(C)", "", "x" * 1200]
    for answer in answers:
        ctx = context(record, [f"<think>x</think><answer>{answer}</answer>"])
        want = answer_correct(ctx.answer, record)
        assert get_reward("accuracy")(ctx) == float(want), (answer, record["answer"])
