"""Rollouts replay exactly: the same seed gives the same tokens and log-probs whatever the tool
latencies, the batch size, whether GRPO groups share their prompt, or whether the episodes run
in one call or in parts (`first_index`, as the evaluator runs passk).

Six episodes in three groups of two (a group's episodes share a prompt), three turns each, all
tokens drawn at temperature 1.0 (no script), tools sleeping 0-40 ms with a different sleep
seed in every run, so rows start, stop and share calls differently in every run.
"""
import numpy as np
import pytest

from hf_reference import save_tiny_hf
from seeker_jax.models.qwen3_vl import from_pretrained
from seeker_jax.agents.rollout import Rollout, RolloutConfig
from seeker_jax.agents.testing import SleepyEpisode
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams

# Image grids no other sampler test uses: the vision program's compile cache is process-wide
# (keyed on the model graph and the grid), and test_sampler counts its own compilations.
PROMPT = [("text", 20), ("image", (6, 4)), ("text", 6)]
OBSERVATION = [("text", 4), ("image", (2, 6)), ("text", 2)]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tiny"))
    save_tiny_hf(d)
    return from_pretrained(d)


def run(sampler, sleep_seed, group_size=1, seed=3, cuts=(0, 6)):
    """The six episodes, in one call or in parts split at `cuts` (results joined)."""
    episodes = [SleepyEpisode(i, 3, (0.0, 0.04), prompt_seed=i // 2, sleep_seed=sleep_seed,
                              prompt_parts=PROMPT, observation_parts=OBSERVATION)
                for i in range(6)]
    rollout = Rollout(sampler, RolloutConfig(max_new_tokens=10, max_turns=3, num_workers=4))
    results = []
    for a, b in zip(cuts, cuts[1:]):
        part, stats = rollout.run(episodes[a:b], group_size=group_size, seed=seed, first_index=a)
        results += part
    return results, stats, sum(e.prompt_builds for e in episodes)


def test_same_seed_same_rollouts_across_latency_batch_and_grouping(model):
    params = SamplingParams(1.0)
    kw = dict(max_len=128, params=params, stop_token_ids=(999,), decode_steps=4, max_chunk=64,
              min_bucket=32)
    small, big = Sampler(model, batch_size=2, **kw), Sampler(model, batch_size=4, **kw)
    ref, ref_stats, ref_builds = run(small, sleep_seed=0)
    others = {"batch 2, other latencies": run(small, sleep_seed=1),
              "batch 4": run(big, sleep_seed=2),
              "batch 4, groups of 2 share the prompt": run(big, sleep_seed=3, group_size=2),
              "in two parts": run(big, sleep_seed=4, group_size=2, cuts=(0, 4, 6))}
    assert [len(r.turns) for r in ref] == [3] * 6
    worst = 0.0
    for name, (results, _, _) in others.items():
        for a, b in zip(ref, results):
            ca, cb = a.conversation, b.conversation
            np.testing.assert_array_equal(ca.input_ids, cb.input_ids, err_msg=name)
            np.testing.assert_array_equal(ca.policy_mask, cb.policy_mask, err_msg=name)
            worst = max(worst, float(np.abs(ca.logprobs - cb.logprobs).max()))
    print(f"largest log-prob difference between runs: {worst:.2e}")
    assert worst <= 1e-5, worst
    # the draws really are random, and per episode: episodes sharing a prompt differ
    gen = [tuple(r.conversation.input_ids[r.conversation.policy_mask == 1]) for r in ref]
    assert len(set(gen)) == 6
    # a different seed gives different rollouts
    moved, _, _ = run(big, sleep_seed=0, seed=4)
    assert any(not np.array_equal(a.conversation.input_ids, b.conversation.input_ids)
               for a, b in zip(ref, moved))
    # prompt work per group: built, encoded and prefilled once instead of twice
    _, grouped, grouped_builds = others["batch 4, groups of 2 share the prompt"]
    prompt_len = len(ref[0].conversation.segments[0])
    assert ref_builds == ref_stats.prompts_built == 6 and grouped_builds == grouped.prompts_built == 3
    assert ref_stats.prompt_tokens == 6 * prompt_len and grouped.prompt_tokens == 3 * prompt_len
    assert grouped.prompt_vision_tokens * 2 == ref_stats.prompt_vision_tokens > 0
    assert grouped.forked_rows == 3 and ref_stats.forked_rows == 0


def test_group_size_must_fit_the_batch(model):
    s = Sampler(model, batch_size=2, max_len=64)
    with pytest.raises(ValueError, match="group_size 3"):
        Rollout(s).run([], group_size=3)
