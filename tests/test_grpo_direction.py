"""The learner moves the policy the way the advantages say, through the whole path GRPO uses:
real rollouts (tiny random model, real environment, scripted turns: some answer, some call a
tool whose frames come back, some ramble) -> rl.grpo_batch.episodes_batch -> place_batch ->
the jitted GRPO train step (rl.policy_loss) -> the episodes re-scored by the learner.

  - episodes with advantage +1 gain log-probability, those with -1 lose it;
  - with every advantage 0 (and no KL) the update is exactly zero: no parameter changes;
  - the learner's log-probs of the sampled tokens equal the sampler's, token by token within
    1e-5 (one graph, one distribution: the learner masks the ids the sampler suppresses, fp32).
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
import pytest

from episode_scripts import ANSWER, CONFIG, CROP, VIEW
from seeker_jax.env.episode import Episode, make_formatter
from seeker_jax.rl.grpo_batch import episodes_batch
from seeker_jax.rl.policy_loss import PolicyLossConfig, make_grpo_loss, reference_logprobs
from seeker_jax.agents.rollout import Rollout, RolloutConfig, env_sampler, suppressed_ids
from seeker_jax.generation.sampling import SamplingParams
from seeker_jax.training.train_state import create_train_state, make_train_step, place_batch

BUCKETS = (512, 1024)


@pytest.fixture(scope="module")
def episodes(rollout_world):
    root, records, tok, model = rollout_world
    fm = make_formatter(tok, CONFIG)
    scripts = [[ANSWER], [VIEW, ANSWER], [CROP, ANSWER], ["<think>hmm"]]

    def script(i, turn):
        turns = scripts[i % len(scripts)]
        return turns[turn] if turn < len(turns) else None

    sampler = env_sampler(model, tok, batch_size=8, max_len=1024, params=SamplingParams(1.0),
                          decode_steps=8, max_chunk=256, min_bucket=256, seed=2)
    eps = [Episode(records[i % 2], fm, root, CONFIG) for i in range(8)]
    results, _ = Rollout(sampler, RolloutConfig(max_new_tokens=12, max_turns=3), script,
                         lambda text: tok.encode(text, add_special_tokens=False)).run(eps)
    return model, [r.conversation for r in results], suppressed_ids(tok)


def _learner(model, lr, suppress=()):
    """A learner on a copy of the model's arrays (its train step donates them)."""
    graphdef, params = nnx.split(model)
    model = nnx.merge(graphdef, jax.tree.map(lambda x: jnp.array(x, copy=True), params))
    tx = optax.adam(lr)
    state = create_train_state(model, tx, None, freeze_vision=False)
    cfg = PolicyLossConfig(kl_coef=0.0, suppress_ids=suppress)
    return state, make_train_step(tx, make_grpo_loss(cfg))


def _token_logprobs(state, arrays, vision, suppress=()):
    return np.asarray(reference_logprobs(state.graphdef, (state.trainable, state.frozen,
                                                          state.rest), arrays, vision,
                                         suppress_ids=suppress))


def _episode_logprobs(state, arrays, vision, weight, suppress=()):
    return (_token_logprobs(state, arrays, vision, suppress) * weight).sum(1)


def test_advantages_set_the_direction(episodes):
    model, convs, suppress = episodes
    adv = np.array([1, -1, -1, 1, 1, -1, -1, 1], np.float32)
    batch = episodes_batch(convs, adv, BUCKETS)
    state, step = _learner(model, 1e-3, suppress)
    arrays, vision = place_batch(batch, state.model(), None)
    # sampler == learner, token by token: the learner masks the sampler's suppressed ids
    learned = batch.loss_weight > 0
    gap = np.abs(_token_logprobs(state, arrays, vision, suppress)
                 - np.asarray(batch.sampler_logprobs))[learned]
    assert learned.sum() > 50 and gap.max() <= 1e-5, gap.max()
    before = _episode_logprobs(state, arrays, vision, batch.loss_weight, suppress)
    for _ in range(3):
        step(state, arrays, vision)
    delta = _episode_logprobs(state, arrays, vision, batch.loss_weight, suppress) - before
    assert delta[adv > 0].mean() > 0 > delta[adv < 0].mean(), delta
    assert (np.sign(delta) == adv).mean() >= 0.75, delta  # nearly every episode, one by one


@pytest.mark.slow  # ~20 s; test_advantages_set_the_direction stays in the default suite
def test_zero_advantages_change_nothing(episodes):
    model, convs, _ = episodes
    batch = episodes_batch(convs, np.zeros(len(convs), np.float32), BUCKETS)
    state, step = _learner(model, 1e-2)
    arrays, vision = place_batch(batch, state.model(), None)
    before = [np.array(x) for x in jax.tree.leaves(state.trainable)]
    metrics = step(state, arrays, vision)
    assert float(metrics["grad_norm"]) == 0.0
    after = jax.tree.leaves(state.trainable)
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, after))
