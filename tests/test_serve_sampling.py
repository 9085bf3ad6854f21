"""Sampling parameters are data: each row's temperature / top-k / top-p are arrays inside one
compiled program.

- `sample` with mixed rows (greedy, tempered, top-k, top-p, both, forced) draws each row from
  its own truncated distribution (closed form: the empirical frequencies of 4,000 draws against
  softmax of `policy_logits`, the single-value reference) and records its learner log-prob;
- `seeker-jax serve` on 127.0.0.1 (official openai client) answers 20 requests with 20
  temperatures, one after the other and then all at once (rows of different temperatures in
  one batch), with at most 2 compiles in all, and each answer equals an in-process sampler's
  run at that temperature alone, token for token.
"""
import concurrent.futures as cf

import jax
import jax.numpy as jnp
import numpy as np
import openai
import pytest

from seeker_jax.checkpointing.tiny import save_tiny_checkpoint
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import (RowSampling, SamplingParams, SamplingPlan,
                                            learner_logprobs, policy_logits, row_keys, sample)
from seeker_jax.models.chat import concat_segments
from seeker_jax.serve.loading import ServeConfig
from seeker_jax.serve.protocol import Message
from seeker_jax.serve.render import render_messages
from seeker_jax.serve.testing import serve_in_thread

SUPPRESS = (5,)
ROWS = [SamplingParams(0.0, suppress_ids=SUPPRESS), SamplingParams(0.7, suppress_ids=SUPPRESS),
        SamplingParams(1.3, top_k=4, suppress_ids=SUPPRESS),
        SamplingParams(1.0, top_p=0.6, suppress_ids=SUPPRESS),
        SamplingParams(0.5, top_k=6, top_p=0.9, suppress_ids=SUPPRESS)]


def test_mixed_rows_draw_from_their_own_distributions():
    V, draws = 24, 4000
    logits = jax.random.normal(jax.random.key(3), (len(ROWS), V)) * 2.0
    plan = SamplingPlan.of(ROWS, V, SUPPRESS)
    assert (plan.greedy, plan.sampled, plan.top_k, plan.nucleus) == (True, True, 8, True)
    rows = RowSampling.of(ROWS)
    run = jax.jit(jax.vmap(lambda k: sample(logits, row_keys(k, jnp.arange(len(ROWS)),
                                                             jnp.zeros(len(ROWS), jnp.int32)),
                                            plan, None, rows)))
    tokens, logprobs = run(jax.random.split(jax.random.key(0), draws))  # (draws, rows)
    tokens, logprobs = np.asarray(tokens), np.asarray(logprobs)
    for r, p in enumerate(ROWS):
        expected = np.asarray(jax.nn.softmax(policy_logits(logits[r:r + 1], p)[0]))
        if p.greedy:  # the argmax, every time
            expected = np.eye(V)[int(jnp.argmax(logits[r]))]
        counts = np.bincount(tokens[:, r], minlength=V) / draws
        assert counts[expected == 0].sum() == 0, f"row {r} drew outside its support"
        # 4,000 draws: a frequency's standard error is at most 0.008
        np.testing.assert_allclose(counts, expected, atol=0.04, err_msg=f"row {r}")
        want = learner_logprobs(jnp.broadcast_to(logits[r], (draws, V)),
                                jnp.asarray(tokens[:, r]), p.temperature, SUPPRESS)
        np.testing.assert_allclose(logprobs[:, r], np.asarray(want), atol=2e-5, rtol=0)
    forced = jnp.array([7, -1, 7, -1, 7], jnp.int32)  # a scripted token: the learner log-prob
    t, lp = sample(logits, row_keys(jax.random.key(1), jnp.arange(5), jnp.zeros(5, jnp.int32)),
                   plan, forced, rows)
    assert np.asarray(t)[[0, 2, 4]].tolist() == [7, 7, 7]
    for r in (0, 2, 4):
        assert abs(float(lp[r]) - float(learner_logprobs(logits[r], jnp.int32(7),
                                                         ROWS[r].temperature, SUPPRESS))) < 2e-5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ckpt = save_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny")))
    cfg = ServeConfig(model_name="tiny", batch_size=4, max_len=256, decode_steps=4)
    with serve_in_thread(f"ckpt:{ckpt}", config=cfg) as running:
        yield running


TEMPERATURES = [round(0.1 * k, 2) for k in range(1, 21)]  # 0.1 .. 2.0
MSGS = [{"role": "user", "content": "Write a few words about the sea"}]


def ask(client, t: float):
    res = client.chat.completions.create(
        model="tiny", messages=MSGS, temperature=t, seed=7, max_tokens=6, logprobs=True,
        extra_body={"return_token_ids": True})
    c = res.choices[0]
    return c.token_ids, [e.logprob for e in c.logprobs.content]


def alone(server, t: float):
    """The same request on a fresh in-process sampler: one row, temperature t, the episode
    the engine gives seed 7's first choice."""
    svc = server.service
    seg = concat_segments(render_messages(svc.tokenizer, [Message.model_validate(m) for m in MSGS],
                                          None, svc._loader(), svc.memory))
    s = Sampler(svc.engine.sampler.model, batch_size=1, max_len=256,
                params=SamplingParams(t, suppress_ids=svc.engine.suppress),
                stop_token_ids=svc.engine.sampler.stop_token_ids, pad_id=151643)
    s.reset_row(0, episode=16 * 7)
    s.append({0: seg}, 6)
    while s.rows[0].active:
        s.step()
    return s.rows[0].result


# Slow (~25 s): test_mixed_rows_draw_from_their_own_distributions checks per-row
# temperatures in the default suite.
@pytest.mark.slow
def test_twenty_temperatures_compile_at_most_twice(server):
    client = openai.OpenAI(base_url=server.url, api_key="none", max_retries=0, timeout=300)
    compiles = server.service.engine.sampler.compilations
    before = sum(compiles.values())
    one_by_one = [ask(client, t) for t in TEMPERATURES]
    with cf.ThreadPoolExecutor(len(TEMPERATURES)) as pool:  # mixed temperatures per batch
        together = list(pool.map(lambda t: ask(client, t), TEMPERATURES))
    new = sum(compiles.values()) - before
    print(f"compiles for {2 * len(TEMPERATURES)} requests at {len(TEMPERATURES)} "
          f"temperatures: {new} ({dict(compiles)})")
    assert new <= 2
    assert [ids for ids, _ in together] == [ids for ids, _ in one_by_one]
    for (_, a), (_, b) in zip(one_by_one, together):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert len({tuple(ids) for ids, _ in one_by_one}) > 1  # the temperatures were used
    for k in (0, 9, 19):
        turn = alone(server, TEMPERATURES[k])
        ids, lps = one_by_one[k]
        assert ids == turn.ids.tolist()
        # 1 row vs 4: the matmuls round differently in float32 (1.2e-5 seen)
        np.testing.assert_allclose(lps, turn.logprobs, atol=1e-4)
