"""rl/grpo.py's update on real rollouts (conftest's tiny Qwen-vocabulary model in the real
environment, scripted turns): an optimizer step whose minibatches hold no learned token is not
taken (AdamW would still move every weight on a zero gradient: momentum and weight decay), a
partly masked iteration takes only its live steps; and the reference / old log-prob pass
projects loss.chunk positions at a time, so the host-memory check's bound covers it."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from episode_scripts import ANSWER, CONFIG
from seeker_jax.agents.rollout import Rollout, RolloutConfig, env_sampler
from seeker_jax.config import load_config
from seeker_jax.env.episode import Episode, make_formatter
from seeker_jax.generation.sampling import SamplingParams
from seeker_jax.rl.grpo import update
from seeker_jax.rl.grpo_batch import episodes_batch
from seeker_jax.rl.policy_loss import PolicyLossConfig, _reference_logprobs, make_grpo_loss
from seeker_jax.sharding import rules_from_config
from seeker_jax.training.optim import make_optimizer
from seeker_jax.training.train_state import create_train_state, make_train_step, place_batch


@pytest.fixture(scope="module")
def rolled(rollout_world):
    root, records, tok, model = rollout_world
    fm = make_formatter(tok, CONFIG)
    sampler = env_sampler(model, tok, batch_size=4, max_len=1024, params=SamplingParams(1.0),
                          decode_steps=8, max_chunk=256, min_bucket=256, seed=0)
    script = lambda i, turn: ANSWER if i % 2 == 0 else None  # noqa: E731
    results, _ = Rollout(sampler, RolloutConfig(max_new_tokens=12, max_turns=1), script,
                         lambda text: tok.encode(text, add_special_tokens=False)).run(
        [Episode(records[i // 2], fm, root, CONFIG) for i in range(4)], group_size=2)
    return model, results


def _setup(model, *flags):
    config = load_config("configs/grpo.py:tiny_synth", [
        "--config.rollout.n=2", "--config.rollout.prompts_per_step=2",
        "--config.rollout.minibatches=2", "--config.loss.kl_coef=0.0",
        "--config.optimizer.weight_decay=0.1", "--config.optimizer.lr=1e-3", *flags])
    loss = PolicyLossConfig.from_config(config.loss)
    graphdef, params = nnx.split(model)
    model = nnx.merge(graphdef, jax.tree.map(lambda x: jnp.array(x, copy=True), params))
    tx = make_optimizer(config.optimizer)
    state = create_train_state(model, tx, None, freeze_vision=False)
    return config, loss, state, make_train_step(tx, make_grpo_loss(loss))


def _params(state):
    return [np.array(x) for x in jax.tree.leaves(state.trainable)]


# Slow (~30 s): the other update tests here check the step itself in the default suite.
@pytest.mark.slow
def test_all_masked_steps_are_not_taken(rolled):
    model, results = rolled
    config, loss, state, step = _setup(model)
    rules = rules_from_config(config.mesh.rules)
    adv = np.array([1.0, -1.0, 1.0, -1.0], np.float32)

    def run(keep):
        times = {}
        steps = update(state, step, results, adv, np.asarray(keep), config, loss, None, rules,
                       None, times)
        return len(steps), times["skipped_optimizer_steps"]

    assert run([True] * 4) == (2, 0)                 # both minibatches learn
    assert int(state.step) == 2
    before = _params(state)
    assert run([False] * 4) == (0, 2)                # nothing to learn: no AdamW step at all
    assert int(state.step) == 2
    assert all(np.array_equal(a, b) for a, b in zip(before, _params(state)))
    assert run([False, False, True, True]) == (1, 1)  # only the live minibatch steps
    assert int(state.step) == 3
    assert not all(np.array_equal(a, b) for a, b in zip(before, _params(state)))


@pytest.mark.slow
def test_accumulated_steps_skip_only_when_every_minibatch_is_masked(rolled):
    model, results = rolled
    config, loss, state, step = _setup(model, "--config.optimizer.accum_steps=2")
    rules = rules_from_config(config.mesh.rules)
    adv = np.array([1.0, -1.0, 1.0, -1.0], np.float32)
    times = {}
    # one minibatch live: the accumulated step runs both (the masked one adds a zero gradient)
    assert len(update(state, step, results, adv, np.array([False, False, True, True]), config,
                      loss, None, rules, None, times)) == 2
    assert times["skipped_optimizer_steps"] == 0
    times = {}
    assert update(state, step, results, adv, np.zeros(4, bool), config, loss, None, rules,
                  None, times) == []
    assert times["skipped_optimizer_steps"] == 1


def test_the_scoring_pass_projects_loss_chunk_positions(rolled):
    """reference_logprobs (the reference and old log-prob pass) with the loss's `scoring`:
    its compiled temporaries grow with loss.chunk, as the memory check assumes."""
    model, results = rolled
    batch = episodes_batch([r.conversation for r in results], np.zeros(4), (512, 1024))
    arrays, vision = place_batch(batch, model, None)
    graphdef, state = nnx.split(model)

    def temp_bytes(chunk):
        cfg = PolicyLossConfig(chunk=chunk)
        args = cfg.scoring
        lowered = _reference_logprobs.lower(graphdef, (state,), dict(arrays), vision,
                                            args["temperature"], args["chunk"],
                                            args["suppress_ids"])
        return lowered.compile().memory_analysis().temp_size_in_bytes

    rows, positions = arrays["loss_index"].shape
    small, large = temp_bytes(8), temp_bytes(128)
    # one chunk's float32 logits, (rows, min(chunk, positions), 151,936), are in the larger
    # pass's temporaries and not in the smaller's (a pass ignoring loss.chunk: equal sizes)
    logits_128 = rows * min(128, positions) * 151_936 * 4
    assert large >= logits_128 > small, (small, large, logits_128)
