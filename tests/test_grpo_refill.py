"""DAPO's dynamic sampling with refill (`seeker_jax.rl.grpo.collect`): groups whose rewards are
all equal are dropped and new prompts are rolled out until the batch holds prompts_per_step
informative groups, or the refill budget runs out (the batch keeps its shape; what could not
be replaced is masked).

Real rollouts: a tiny random model in the real environment, with a script forcing turns (the
random model writes garbage), and the real reward model. The script reads which rollout round
is running from the prompt source, so the test decides which rounds are informative:
  round 1: every episode answers "A" (the truth): each group's rewards are equal -> dropped;
  round 2: even episodes answer, odd ones start with a thought and ramble -> informative.
"""
import numpy as np
import pytest

from episode_scripts import ANSWER, CONFIG
from seeker_jax.config import load_config
from seeker_jax.env.episode import Episode, make_formatter
from seeker_jax.env.records import SampleRecord
from seeker_jax.rl.grpo import collect
from seeker_jax.rl.policy_loss import PolicyLossConfig
from seeker_jax.rl.rewards import RewardConfig, RewardModel
from seeker_jax.agents.rollout import Rollout, RolloutConfig, env_sampler
from seeker_jax.generation.sampling import SamplingParams

N, P = 2, 2  # samples per prompt, prompts per step


def _setup(world, max_refills: int):
    root, records, tok, model = world
    rounds = {"n": 0}

    def take(k):
        rounds["n"] += 1
        return [records[i % len(records)].to_dict() for i in range(k)]

    def script(episode, turn):
        if turn:
            return None
        if rounds["n"] == 1 or episode % 2 == 0:
            return ANSWER
        return "<think>let me ramble"

    fm = make_formatter(tok, CONFIG)
    sampler = env_sampler(model, tok, batch_size=N * P, max_len=1024,
                          params=SamplingParams(1.0), decode_steps=8, max_chunk=256,
                          min_bucket=256, seed=0)
    rollout = Rollout(sampler, RolloutConfig(max_new_tokens=12, max_turns=1), script,
                      lambda text: tok.encode(text, add_special_tokens=False))
    config = load_config("configs/grpo.py:tiny_synth", [
        f"--config.rollout.n={N}", f"--config.rollout.prompts_per_step={P}",
        f"--config.rollout.max_refills={max_refills}"])
    rewards = RewardModel(RewardConfig.from_config(config.reward))
    make = lambda rec: Episode(SampleRecord.from_dict(rec), fm, root, CONFIG)
    loss = PolicyLossConfig.preset("dapo")
    return lambda: collect(take, rollout, rewards, make, config, loss, iteration=0), rounds


def _rewards(batch):
    return np.array([s["reward"] for s in batch.scores]).reshape(P, N)


def test_refill_replaces_dropped_groups(rollout_world):
    run, rounds = _setup(rollout_world, max_refills=2)
    batch = run()
    assert rounds["n"] == 2 and batch.refills == 1
    assert batch.dropped == P  # both round-1 groups
    assert len(batch.results) == len(batch.records) == len(batch.scores) == P * N
    assert batch.keep.all()
    r = _rewards(batch)
    assert (r.max(1) > r.min(1)).all()  # every kept group is informative
    # the answering rows of round 2 are the even episodes, in group order
    assert [res.answer for res in batch.results] == ["A", None] * P
    assert sum(batch.stats.end_reasons.values()) == 2 * P * N  # both rounds counted


def test_no_refill_budget_keeps_shape_and_masks(rollout_world):
    run, rounds = _setup(rollout_world, max_refills=0)
    batch = run()
    assert rounds["n"] == 1 and batch.refills == 0 and batch.dropped == P
    assert len(batch.results) == P * N
    assert not batch.keep.any()  # nothing informative: the rows stay, masked
    r = _rewards(batch)
    assert (r.max(1) == r.min(1)).all()


def test_max_refills_must_not_be_negative():
    from seeker_jax.rl.grpo import check_config

    config = load_config("configs/grpo.py:tiny_synth", ["--config.rollout.max_refills=-1"])
    with pytest.raises(ValueError, match="max_refills"):
        check_config(config, PolicyLossConfig.from_config(config.loss))


def test_host_memory_check_names_the_fix():
    """The vocabulary projection's size, hand-worked, and the CPU check that refuses a
    minibatch whose chunk logits would take the host past its memory (the OS kills such a
    process without a message): 32 rows x 256 positions on a 24 GiB host, the run that died."""
    from seeker_jax.rl.grpo import check_host_memory, projection_bytes

    assert projection_bytes(32, 256, 151_936) == 32 * 256 * 151_936 * 4 == 4_978_638_848
    flags = ["--config.rollout.prompts_per_step=8", "--config.rollout.n=8",
             "--config.rollout.minibatches=2"]
    host = 24 * 2**30
    config = load_config("configs/grpo.py:tiny_synth", flags)
    with pytest.raises(ValueError, match=r"about 18\.5 GiB .*32 rows, 256 positions.*"
                                         r"--config\.loss\.chunk=248 or lower"):
        check_host_memory(config, PolicyLossConfig.from_config(config.loss), 151_936, host)
    config = load_config("configs/grpo.py:tiny_synth", [*flags, "--config.loss.chunk=64"])
    check_host_memory(config, PolicyLossConfig.from_config(config.loss), 151_936, host)
    config = load_config("configs/grpo.py:tiny_synth")  # 8 rows in 2 minibatches: fits
    check_host_memory(config, PolicyLossConfig.from_config(config.loss), 151_936, host)
