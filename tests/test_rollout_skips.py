"""Bad samples never end a rollout, and the per-episode response budget holds.

Real components: conftest's index video and tiny Qwen-vocabulary model in the real environment,
a video file this test corrupts (a real mp4's head, then random bytes), one that does not exist, a
question too long for the row, and a tool that raises (crop_video patched to throw, as a tool
bug would). Each bad sample's group ends at once with `skipped` saying why; the good groups
run as if nothing happened. Without skip_bad_samples a bad video still raises (the evaluator's
behaviour).
"""
import shutil

import numpy as np
import pytest

from episode_scripts import ANSWER, CONFIG, CROP
from seeker_jax.agents.rollout import Rollout, RolloutConfig, env_sampler
from seeker_jax.env.episode import Episode, make_formatter
from seeker_jax.env.records import SampleRecord
from seeker_jax.env.tools import ToolRunner
from seeker_jax.env.video import VideoError
from seeker_jax.generation.sampling import SamplingParams

N = 2  # episodes per group


@pytest.fixture(scope="module")
def world(rollout_world, tmp_path_factory):
    """rollout_world's root copied, with videos/bad.mp4: v1.mp4 cut after its first 3 KB and
    the rest overwritten with random bytes (a corrupt download)."""
    root, records, tok, model = rollout_world
    copy = tmp_path_factory.mktemp("skips") / "root"
    shutil.copytree(root, copy)
    head = (copy / "videos" / "v1.mp4").read_bytes()[:3072]
    (copy / "videos" / "bad.mp4").write_bytes(head + np.random.default_rng(0).bytes(4096))
    return copy, records, tok, model


def _run(world, records, script=None, **config):
    root, _, tok, model = world
    fm = make_formatter(tok, CONFIG)
    episodes = [Episode(rec, fm, root, CONFIG) for rec in records for _ in range(N)]
    sampler = env_sampler(model, tok, batch_size=4, max_len=1024, params=SamplingParams(1.0),
                          decode_steps=8, max_chunk=256, min_bucket=256, seed=0)
    encode = lambda text: tok.encode(text, add_special_tokens=False)  # noqa: E731
    rollout = Rollout(sampler, RolloutConfig(**{"max_new_tokens": 12, "max_turns": 3,
                                                **config}),
                      script or (lambda i, turn: ANSWER), encode)
    return rollout.run(episodes, group_size=N, seed=0)


def test_bad_samples_are_skipped_and_counted(world):
    good = world[1][0]
    bad = [SampleRecord("bad", "videos/bad.mp4", good.question, "A", 9.5, good.frame_path),
           SampleRecord("gone", "videos/gone.mp4", good.question, "A", 9.5, good.frame_path),
           SampleRecord("long", good.video_path, "What is marked? " * 600, "A", 9.5,
                        good.frame_path)]
    results, stats = _run(world, [good, *bad, good], skip_bad_samples=True)
    want = ["answer"] * N + ["bad_video"] * 2 * N + ["prompt_too_long"] * N + ["answer"] * N
    assert [r.end_reason for r in results] == want
    assert [r.skipped for r in results] == [None] * N + want[N:-N] + [None] * N
    assert stats.skipped == {"bad_video": 2 * N, "prompt_too_long": N}
    for r in results:
        if r.skipped:   # nothing to learn from: no turn, no policy token
            assert r.turns == [] and int(np.sum(r.conversation.policy_mask)) == 0
        else:
            assert r.answer == "A" and int(np.sum(r.conversation.policy_mask)) > 0


def test_a_tool_that_raises_skips_its_episode(world, monkeypatch):
    real = ToolRunner.run

    def broken(self, call):
        if getattr(call, "name", "") == "crop_video":
            raise RuntimeError("crop_video blew up")
        return real(self, call)

    monkeypatch.setattr(ToolRunner, "run", broken)
    good = world[1][0]
    # episode 0 of each group crops (and its tool raises), episode 1 answers
    script = lambda i, turn: (CROP if turn == 0 else ANSWER) if i % N == 0 else ANSWER  # noqa
    results, stats = _run(world, [good, good], script=script, skip_bad_samples=True,
                          max_new_tokens=64)
    assert [r.skipped for r in results] == ["tool_raised", None] * 2
    assert [r.end_reason for r in results] == ["tool_raised", "answer"] * 2
    assert stats.skipped == {"tool_raised": 2}


def test_without_skipping_a_bad_video_raises(world):
    good = world[1][0]
    bad = SampleRecord("bad", "videos/bad.mp4", good.question, "A", 9.5, good.frame_path)
    with pytest.raises(VideoError, match="bad.mp4"):
        _run(world, [bad], skip_bad_samples=False)


def test_response_budget_caps_every_episode(world):
    """max_response_tokens counts every token after the prompt (turns, tool outputs with
    their frames): a turn gets only what is left, an observation that does not fit ends the
    episode ("max_response")."""
    root, records, tok, model = world
    good = records[0]
    prompt = len(Episode(good, make_formatter(tok, CONFIG), root, CONFIG).prompt_segment())
    budget = 40
    script = lambda i, turn: CROP if turn == 0 and i % N == 0 else None  # noqa: E731
    results, _ = _run(world, [good, good], script=script, max_response_tokens=budget,
                      max_new_tokens=64)
    reasons = [r.end_reason for r in results]
    assert "max_response" in reasons, reasons
    for r in results:
        response = len(r.conversation.input_ids) - prompt
        assert 0 < response <= budget + 1, (r.end_reason, response)   # + the closing <|im_end|>
        if r.end_reason == "max_response":
            assert r.skipped is None
    # the crop's frames alone exceed what is left after the forced call: its episode ends
    assert reasons[0] == reasons[2] == "max_response"
