"""Weight refresh after real train steps, and forked rows against independently prefilled ones.

load_state: the learner (on an 8-device fsdp x tensor mesh, donating its params every step)
trains; the single-device sampler loads the new weights and must generate exactly what a fresh
sampler built from the trained model generates. fork: a prompt prefilled once and copied to
three rows must give the logits, tokens and log-probs of four rows that each prefilled it.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from hf_reference import segment
from seeker_jax.generation.conversation import recompute_logprobs
from seeker_jax.models.qwen3_vl import from_pretrained
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams
from seeker_jax.sharding import make_mesh
from seeker_jax.training.train_state import create_train_state, make_train_step, place_batch

PROMPT = [("text", 7), ("image", (4, 6)), ("text", 5)]
KW = dict(batch_size=4, max_len=96, decode_steps=8, max_chunk=32, min_bucket=32)


@pytest.fixture(scope="module")
def model_dir(tiny_hf):
    return tiny_hf.path


def text_batch(seed: int) -> dict:
    ids = np.random.default_rng(seed).integers(0, 980, (8, 32)).astype(np.int32)
    loss = np.zeros_like(ids)
    loss[:, 8:] = 1
    return {"input_ids": ids, "attention_mask": np.ones_like(ids),
            "mm_token_type_ids": np.zeros_like(ids), "loss_mask": loss}


def greedy(sampler: Sampler, prompts) -> list[list[int]]:
    return [t.ids.tolist() for t in sampler.generate(prompts, max_new_tokens=10)]


def test_load_state_after_donating_train_steps(model_dir):
    prompts = [segment(PROMPT, 1), segment([("text", 9)], 2)]
    learner = from_pretrained(model_dir)
    sampler = Sampler(learner, params=SamplingParams(0.0), **KW)  # copies: never aliases
    before = greedy(sampler, prompts)
    bf16 = Sampler(from_pretrained(model_dir, dtype=jnp.bfloat16), params=SamplingParams(0.0),
                   **KW)

    mesh = make_mesh({"data": 1, "fsdp": 4, "tensor": 2})
    tx = optax.adam(1e-2)  # big steps: greedy tokens must change
    state = create_train_state(learner, tx, mesh, freeze_vision=True)
    step = make_train_step(tx)
    placed, vision = place_batch(text_batch(0), state.model(), mesh)
    old = jax.tree.leaves(state.trainable)[0]
    step(state, placed, vision)
    assert old.is_deleted()  # the step donated the learner's old params

    sampler.load_state(state)  # sharded fp32 -> the sampler's single-device buffers
    after = greedy(sampler, prompts)
    fresh = Sampler(state.model(), params=SamplingParams(0.0), **KW)
    assert after == greedy(fresh, prompts)
    assert after != before

    bf16.load_state(state.trainable, state.frozen, state.rest)
    for (path, got), (_, want) in zip(nnx.to_flat_state(bf16.state),
                                      nnx.to_flat_state(nnx.state(state.model()))):
        got, want = got[...], want[...]
        assert got.dtype == jnp.bfloat16 or not jnp.issubdtype(want.dtype, jnp.floating), path
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want.astype(got.dtype)))

    # A second step donates the params just loaded from: the samplers hold copies.
    placed, vision = place_batch(text_batch(1), state.model(), mesh)
    step(state, placed, vision)
    assert not any(x.is_deleted() for x in jax.tree.leaves(sampler.state))
    assert greedy(sampler, prompts) == after == greedy(fresh, prompts)
    sampler.load_state(state)
    assert greedy(sampler, prompts) != after

    with pytest.raises(ValueError, match="missing"):
        sampler.load_state(state.trainable)  # no frozen / rest: the vision tower is missing


def test_forked_rows_equal_independently_prefilled_rows(model_dir):
    """T = 0.7 with top-k and top-p: forks draw with their own episodes' keys, and every
    recorded log-prob is the learner's (recomputed by one full forward)."""
    params = SamplingParams(0.7, top_k=50, top_p=0.95)
    prompt = segment(PROMPT, 3)
    observation = segment([("text", 3), ("image", (2, 4)), ("text", 2)], 4)
    runs = []
    for shared in (True, False):
        s = Sampler(from_pretrained(model_dir), params=params, seed=7, **KW)
        for row in range(4):
            s.reset_row(row, episode=10 + row)
        if shared:
            s.append({0: prompt}, max_new_tokens=12, forced={0: [5]})
            s.fork(0, [1, 2, 3], [11, 12, 13], forced={2: [6, 6]})
        else:
            s.append({row: prompt for row in range(4)}, max_new_tokens=12,
                     forced={0: [5], 2: [6, 6]})
        logits = np.asarray(s.last_logits)
        while s.active_rows:
            s.step()
        s.append({row: observation for row in range(4)}, max_new_tokens=6)
        while s.active_rows:
            s.step()
        runs.append((logits, [s.conversation(r) for r in range(4)], dict(s.stats), s))
    (lg_a, conv_a, st_a, s_a), (lg_b, conv_b, st_b, _) = runs
    err = np.abs(lg_a - lg_b).max()
    print(f"forked vs prefilled: largest logit difference {err:.2e}, largest log-prob "
          f"difference {max(np.abs(a.logprobs - b.logprobs).max() for a, b in zip(conv_a, conv_b)):.2e}")
    assert err <= 1e-5, err
    for a, b in zip(conv_a, conv_b):
        np.testing.assert_array_equal(a.input_ids, b.input_ids)
        np.testing.assert_array_equal(a.policy_mask, b.policy_mask)
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
    assert len({tuple(c.input_ids[c.policy_mask == 1][2:]) for c in conv_a}) == 4  # own keys
    n = len(prompt)
    assert st_b["prefill_tokens"] - st_a["prefill_tokens"] == 3 * n
    assert st_b["vision_tokens"] - st_a["vision_tokens"] == 3 * (prompt.mm_token_type_ids != 0).sum()
    assert st_a["forked_rows"] == 3
    recomputed = recompute_logprobs(s_a.model, conv_a, params, length=96, chunk=32)
    for c, lp in zip(conv_a, recomputed):
        m = c.policy_mask == 1
        np.testing.assert_allclose(c.logprobs[m], lp[m], atol=1e-4, rtol=0)
    with pytest.raises(RuntimeError, match="decoded since"):
        s_a.fork(0, [1])
