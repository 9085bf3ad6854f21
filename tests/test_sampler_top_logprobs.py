"""The sampler's top_n alternatives (OpenAI's top_logprobs) against a closed form.

Each generated position's top-20 list must equal the 20 largest values of log_softmax over the
whole vocabulary of the learner distribution (logits / T, T = 0 -> 1, suppressed ids at -inf,
no top-k / top-p), computed in numpy from a teacher-forced full forward over the generated
conversation: by our JAX model (tolerance 1e-5) and by transformers' PyTorch model (1e-5).
The positions cover every program that samples: extend (prompt and tool-turn appends, in
32-token pieces), first_tokens (forked rows) and the decode loop (several calls of 4 steps).
The chosen token's recorded log-prob equals its entry in the list; greedy tokens are the top-1.
top_n = 0 (the default) records nothing and draws the very same tokens.
"""
import numpy as np
import pytest
import torch

from hf_reference import IMAGE, VEND, VIDEO, VSTART, segment
from seeker_jax.generation.conversation import batch_conversations
from seeker_jax.models.qwen3_vl import forward, from_pretrained
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams

TOP = 20
MAX_LEN = 96
SUPPRESS = (IMAGE, VIDEO, VSTART, VEND)
PARAMS = {"greedy": SamplingParams(0.0, suppress_ids=SUPPRESS),
          "sampled": SamplingParams(0.7, top_k=5, suppress_ids=SUPPRESS)}


@pytest.fixture(scope="module")
def models(tiny_hf):
    return tiny_hf.torch_model, from_pretrained(tiny_hf.path)


def run(model, params: SamplingParams, top_n: int):
    """Rows 0, 1 prefill a prompt; row 0 is forked to rows 2, 3; every row decodes a turn; rows
    0, 1 then get a tool segment (with an image) and decode a second turn. Returns the
    sampler and each row's turns."""
    s = Sampler(model, batch_size=4, max_len=MAX_LEN, params=params, decode_steps=4,
                max_chunk=32, min_bucket=32, top_logprobs=top_n)
    for row in range(4):
        s.reset_row(row, episode=100 + row)
    turns = {row: [] for row in range(4)}

    def finish(rows):
        done = {i: s.rows[i].result for i in rows if not s.rows[i].active}
        while s.active_rows:
            done.update(s.step())
        for i in rows:
            turns[i].append(done[i])

    s.append({0: segment([("text", 5), ("image", (4, 6)), ("text", 30)], 1),
              1: segment([("text", 9)], 2)}, max_new_tokens=9)
    s.fork(0, [2, 3], episodes=[102, 103])
    finish(range(4))
    s.append({0: segment([("text", 3), ("image", (2, 4)), ("text", 2)], 3),
              1: segment([("text", 4)], 4)}, max_new_tokens=6)
    finish([0, 1])
    return s, turns


def closed_form(logits: np.ndarray, params: SamplingParams) -> np.ndarray:
    """log_softmax of the learner distribution over the whole vocabulary: (..., V) -> (..., V)."""
    x = logits.astype(np.float64) / (params.temperature or 1.0)
    x[..., list(params.suppress_ids)] = -np.inf
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def torch_logits(hf, inputs: dict) -> np.ndarray:
    kw = {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items() if v is not None}
    kw = {k: (v.long() if k in ("input_ids", "attention_mask", "mm_token_type_ids") else v)
          for k, v in kw.items()}
    with torch.no_grad():
        return hf(**kw).logits.double().numpy()


@pytest.mark.parametrize("name", list(PARAMS))
def test_top_logprobs_equal_the_closed_form_over_the_vocabulary(models, name):
    hf, model = models
    params = PARAMS[name]
    s, turns = run(model, params, TOP)
    convs = [s.conversation(i) for i in range(4)]
    inputs = batch_conversations(convs, length=MAX_LEN)
    refs = {"jax": (np.asarray(forward(model, **inputs).logits, np.float64), 1e-5),
            "torch": (torch_logits(hf, inputs), 1e-5)}
    worst = {k: 0.0 for k in refs}
    for i, c in enumerate(convs):
        top_ids = np.concatenate([t.top_ids for t in turns[i]])
        top_lps = np.concatenate([t.top_logprobs for t in turns[i]])
        chosen = np.concatenate([t.ids for t in turns[i]])
        chosen_lps = np.concatenate([t.logprobs for t in turns[i]])
        where = np.flatnonzero(c.policy_mask)
        assert top_ids.shape == top_lps.shape == (len(where), TOP)
        np.testing.assert_array_equal(c.input_ids[where], chosen)
        # best first, no id twice, never a suppressed id
        assert (np.diff(top_lps, axis=1) <= 0).all()
        assert all(len(set(r)) == TOP for r in top_ids.tolist())
        assert not np.isin(top_ids, SUPPRESS).any()
        for k, (logits, tol) in refs.items():
            exact = closed_form(logits[i, where - 1], params)  # position p is predicted at p-1
            best = -np.sort(-exact, axis=1)[:, :TOP]
            at_ours = np.take_along_axis(exact, top_ids, axis=1)
            err = max(np.abs(top_lps - best).max(), np.abs(top_lps - at_ours).max())
            worst[k] = max(worst[k], float(err))
            assert err < tol, (k, i, err)
        # the chosen token's log-prob is its entry in the list (same program, same logits)
        hit = top_ids == chosen[:, None]
        rows = hit.any(1)
        np.testing.assert_allclose(top_lps[hit], chosen_lps[rows], atol=1e-6, rtol=0)
        if params.greedy:
            assert rows.all()
            np.testing.assert_array_equal(top_ids[:, 0], chosen)
            np.testing.assert_allclose(top_lps[:, 0], chosen_lps, atol=1e-6, rtol=0)
    print(f"{name}: largest error vs closed form: {worst}")
    if not params.greedy:  # top_k=5 truncates the draw, not the list: 20 entries each
        assert all(t.top_ids.shape[1] == TOP for ts in turns.values() for t in ts)


def test_top_n_zero_records_nothing_and_draws_the_same_tokens(models):
    _, model = models
    params = PARAMS["sampled"]
    s0, plain = run(model, params, 0)
    _, with_top = run(model, params, TOP)
    for row in range(4):
        for a, b in zip(plain[row], with_top[row]):
            assert a.top_ids is None and a.top_logprobs is None
            np.testing.assert_array_equal(a.ids, b.ids)
            np.testing.assert_array_equal(a.logprobs, b.logprobs)
    with pytest.raises(ValueError, match="top_logprobs must be in"):
        s0.top_n = -1
