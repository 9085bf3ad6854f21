"""The rollout engine against the real environment with a tiny random model (Qwen vocabulary).

A random model writes garbage, so some episodes follow a script: their turns are forced to start
with given text (answers, good calls, malformed calls, calls that fail, calls until the round
limit, a long turn whose observation cannot fit). The forced tokens still go through the real
sampler (stop tokens, stop strings, caches, appends) and get the model's log-probs.
"""
import dataclasses

import numpy as np

from episode_scripts import ANSWER, BAD_JSON, BAD_TIME, CONFIG, CROP, VIEW
from seeker_jax.env.episode import Episode, make_formatter
from seeker_jax.models.chat import concat_segments
from seeker_jax.agents.rollout import Rollout, RolloutConfig, env_sampler
from seeker_jax.generation.conversation import recompute_logprobs
from seeker_jax.generation.sampling import SamplingParams


def test_rollout_of_16_episodes(rollout_world):
    """Two prompts x 8 episodes on 8 rows (rows are reused), each kind of ending twice."""
    root, records, tok, model = rollout_world
    fm = make_formatter(tok, CONFIG)
    encode = lambda text: tok.encode(text, add_special_tokens=False)  # tags -> their tokens
    # Episodes of kind 7 may crop many times; max_len lets them do it twice, and then their
    # third observation cannot fit: the episode must end rather than cut it.
    many = dataclasses.replace(CONFIG, max_rounds=5)
    probe = Episode(records[0], fm, root, many)
    prompt = len(probe.prompt_segment())
    turn = len(encode(CROP))
    round_len = turn + 1 + len(probe.step(CROP, encode(CROP)).segment)
    max_len = prompt + 2 * round_len + turn + round_len // 2
    scripts = {0: [ANSWER], 1: [VIEW, ANSWER], 2: [CROP, ANSWER], 3: [BAD_JSON, ANSWER],
               4: [BAD_TIME, CROP, ANSWER], 5: [VIEW] * 3, 6: [], 7: [CROP] * 3}

    def script(i, turn):
        turns = scripts[i % 8]
        return turns[turn] if turn < len(turns) else None

    sampler = env_sampler(model, tok, batch_size=8, max_len=max_len, params=SamplingParams(1.0),
                          decode_steps=16, max_chunk=256, min_bucket=256, seed=1)
    episodes = [Episode(records[i // 8], fm, root, many if i % 8 == 7 else CONFIG)
                for i in range(16)]
    results, stats = Rollout(sampler, RolloutConfig(max_new_tokens=48), script,
                             encode).run(episodes)

    reasons = [r.end_reason for r in results]
    for k, want in {0: "answer", 1: "answer", 2: "answer", 3: "answer", 4: "answer",
                    5: "max_rounds", 6: "no_tool_call_or_answer", 7: "max_len"}.items():
        assert reasons[k] == reasons[k + 8] == want, (k, reasons)
    assert [r.answer for r in results if r.end_reason == "answer"] == ["A"] * 10
    errors = [c.error for r in results for c in r.calls if c.error]
    assert sum("not valid JSON" in e for e in errors) == 2
    assert sum("must be greater than start_time" in e for e in errors) == 2
    assert stats.tool_calls == 2 * (0 + 1 + 1 + 1 + 2 + 2 + 0 + 3) and stats.turns == 2 * 17
    assert [len(r.turns) for r in results[:8]] == [1, 2, 2, 2, 3, 3, 1, 3]

    for r, ep in zip(results, episodes):
        c = r.conversation
        whole = concat_segments(ep.segments)
        if r.end_reason == "max_len":  # the environment made an observation that did not fit
            whole = concat_segments(ep.segments[:-1])
            assert len(c.input_ids) + len(ep.segments[-1]) > max_len - 1 >= len(c.input_ids)
        # What the environment saw is exactly what was generated and computed (no drift).
        np.testing.assert_array_equal(c.input_ids, whole.input_ids)
        np.testing.assert_array_equal(c.policy_mask, whole.loss_mask)
        np.testing.assert_array_equal(c.mm_token_type_ids, whole.mm_token_type_ids)
        assert (c.logprobs[c.policy_mask == 0] == 0).all()
        assert (c.logprobs[c.policy_mask == 1] < 0).all()
        assert tok.decode(c.input_ids[c.policy_mask == 1]) == "".join(r.turns)
        inputs = c.model_inputs()
        for key, kind in (("image_grid_thw", 1), ("video_grid_thw", 2)):
            grid = inputs[key]
            n = 0 if grid is None else int(np.prod(grid, axis=1).sum()) // 4
            assert (c.mm_token_type_ids == kind).sum() == n  # every vision span whole
    # Re-running the forward over finished episodes reproduces the sampling log-probs.
    some = [results[i].conversation for i in (4, 7)]
    for c, lp in zip(some, recompute_logprobs(model, some, sampler.params, chunk=64)):
        np.testing.assert_allclose(c.logprobs[c.policy_mask == 1], lp[c.policy_mask == 1],
                                   atol=1e-4, rtol=0)
    assert 0 <= stats.wait_fraction < 1
