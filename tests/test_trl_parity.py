"""GRPO losses against TRL's GRPOTrainer (TRL 1.16) on the same HF-exported tiny Qwen3-VL.

One tiny random transformers Qwen3-VL is saved with save_pretrained and loaded by both sides
(transformers for TRL, seeker_jax.models.qwen3_vl.from_pretrained for us): identical weights.
Same tokens (prompts, completions with a masked tool-output span and right padding), same
advantages, old and reference log-probs. TRL's own `_compute_loss` runs on them (called
unbound, see trl_reference.py); ours is make_grpo_loss with the matching config:
  TRL grpo    = aggregation seq_mean_token_mean
  TRL dr_grpo = seq_mean_token_sum_norm, max_len_norm = max_completion_length
  TRL dapo    = token_mean
Compared: per-token log-probs (at temperature 0.9), the loss, the KL / entropy / clip metrics
and the gradient of every language-model parameter. fp32; tolerances in the asserts. Largest
errors seen over the three loss types: log-probs 1.4e-6 (values up to 9.3), loss 3.0e-8,
KL metric 4.8e-8, entropy 4.8e-7, gradients 4.3e-7 absolute (largest gradient entry 0.25).

TRL is called, not re-implemented: its `_compute_loss` and `_get_per_token_logps_and_entropies`
run unbound on a stand-in `self` (trl_reference.py), since building a GRPOTrainer needs a
dataset, reward functions and a generation backend that a loss comparison does not.
"""
import types

import jax
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from seeker_jax.data.batch import collate
from seeker_jax.training.losses import policy_token_logprobs
from seeker_jax.models.qwen3_vl import from_pretrained
from seeker_jax.models.qwen3_vl.params import iter_flax_to_hf
from seeker_jax.rl.policy_loss import PolicyLossConfig, make_grpo_loss
from seeker_jax.training.train_state import place_batch, with_vision
from trl_reference import trl_logps, trl_loss, trl_trainer

B, P, C = 4, 6, 10  # rows, prompt tokens, completion tokens
TEMPERATURE, BETA, EPS_LOW = 0.9, 0.1, 0.2
CASES = {  # TRL loss_type -> (our aggregation, epsilon_high)
    "grpo": ("seq_mean_token_mean", 0.2),
    "dr_grpo": ("seq_mean_token_sum_norm", 0.2),
    "dapo": ("token_mean", 0.28),
}


@pytest.fixture(scope="module")
def hf_dir(tiny_hf_untied):
    return tiny_hf_untied.path


@pytest.fixture(scope="module")
def ours(hf_dir):
    return from_pretrained(hf_dir)


def _tokens(seed=0):
    """TRL's input layout: prompts (no padding), completions right-padded; tool_mask 0 on a
    tool-output span of row 0; rows 1 and 3 shorter than C."""
    g = torch.Generator().manual_seed(seed)
    inp = dict(prompt_ids=torch.randint(1, 980, (B, P), generator=g),
               prompt_mask=torch.ones(B, P, dtype=torch.long),
               completion_ids=torch.randint(1, 980, (B, C), generator=g),
               completion_mask=torch.ones(B, C, dtype=torch.long),
               tool_mask=torch.ones(B, C, dtype=torch.long))
    inp["completion_mask"][1, 6:] = 0
    inp["completion_mask"][3, 3:] = 0
    inp["completion_ids"][inp["completion_mask"] == 0] = 0
    inp["tool_mask"][0, 2:5] = 0
    inp["mm_token_type_ids"] = torch.zeros(B, P + C, dtype=torch.long)
    return inp


def _our_batch(inp, model):
    """The same rows as conversations (tokens up to the completion's end), collated, placed."""
    convs, per_token = [], {"advantages": [], "old_logprobs": [], "ref_logprobs": []}
    for b in range(B):
        n = int(inp["completion_mask"][b].sum())
        ids = torch.cat([inp["prompt_ids"][b], inp["completion_ids"][b, :n]]).numpy()
        learned = (inp["completion_mask"][b, :n] * inp["tool_mask"][b, :n]).numpy()
        convs.append(types.SimpleNamespace(
            input_ids=ids.astype(np.int32), mm_token_type_ids=np.zeros(len(ids), np.int32),
            loss_mask=np.concatenate([np.zeros(P, np.int32), learned.astype(np.int32)])))
        pad = np.zeros(P, np.float32)
        per_token["advantages"].append(np.full(len(ids), float(inp["advantages"][b])))
        for ours_name, trl_name in (("old_logprobs", "old_per_token_logps"),
                                    ("ref_logprobs", "ref_per_token_logps")):
            per_token[ours_name].append(np.concatenate([pad, inp[trl_name][b, :n].numpy()]))
    batch = collate(convs, P + C, multiple=16, per_token=per_token)
    return batch, *place_batch(batch, model, None)


def _completion_view(batch, values):
    """(B, K) values at loss positions -> (B, C) at completion positions (NaN elsewhere)."""
    out = np.full((B, C), np.nan)
    for b in range(B):
        n = int(batch.loss_weight[b].sum())
        out[b, batch.loss_index[b, :n] + 1 - P] = np.asarray(values)[b, :n]
    return out


@pytest.mark.parametrize("loss_type", sorted(CASES))
def test_loss_kl_and_gradients_equal_trl(loss_type, hf_dir, ours):
    aggregation, eps_high = CASES[loss_type]
    torch_model = transformers.Qwen3VLForConditionalGeneration.from_pretrained(
        hf_dir, dtype=torch.float32).train()
    trainer = trl_trainer(torch_model, loss_type, BETA, EPS_LOW, eps_high, C, TEMPERATURE)
    inp = _tokens()
    with torch.no_grad():
        lp, _ = trl_logps(trainer, inp)
    g = torch.Generator().manual_seed(1)
    inp["advantages"] = torch.randn(B, generator=g)
    inp["old_per_token_logps"] = lp + 0.3 * torch.randn(B, C, generator=g)  # ratios that clip
    inp["ref_per_token_logps"] = lp + 0.3 * torch.randn(B, C, generator=g)
    mask = inp["completion_mask"] * inp["tool_mask"]
    inp["num_items_in_batch"] = mask.sum().float()
    loss = trl_loss(trainer, inp)
    loss.backward()
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}

    cfg = PolicyLossConfig(aggregation=aggregation, clip_low=EPS_LOW, clip_high=eps_high,
                           kl="k3", kl_coef=BETA, temperature=TEMPERATURE, max_len_norm=C,
                           chunk=16)
    batch, arrays, vision = _our_batch(inp, ours)
    loss_fn = make_grpo_loss(cfg)
    graphdef, params, rest = nnx.split(ours, nnx.Param, ...)

    def objective(params):
        return loss_fn(nnx.merge(graphdef, params, rest), with_vision(arrays, vision))

    (our_loss, aux), grads = jax.jit(jax.value_and_grad(objective, has_aux=True))(params)

    our_lp = policy_token_logprobs(ours, with_vision(arrays, vision), TEMPERATURE, chunk=16)
    m = mask.numpy() == 1
    got = _completion_view(batch, our_lp)
    assert np.isnan(got[~m]).all() and int(m.sum()) == int(batch.loss_weight.sum())
    np.testing.assert_allclose(got[m], lp.numpy()[m], atol=2e-5, rtol=0)

    np.testing.assert_allclose(float(our_loss), loss.item(), atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(float(aux["kl"]), metrics["kl"], atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(float(aux["entropy"]), metrics["entropy"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(float(aux["clip_frac"]), metrics["clip_ratio/region_mean"],
                               atol=1e-7)
    assert 0 < metrics["clip_ratio/region_mean"] < 1  # the clip binds on some tokens only

    flat = dict(nnx.to_flat_state(grads))
    ours_by_name = dict(iter_flax_to_hf(lambda path: np.asarray(flat[path][...]), ours.config))
    compared = 0
    for name, p in torch_model.named_parameters():
        if p.grad is None:
            assert not name.startswith("model.language_model"), name
            continue
        ref = p.grad.numpy()
        np.testing.assert_allclose(ours_by_name[name], ref, atol=1e-5 * max(1.0, np.abs(ref).max()),
                                   rtol=1e-4, err_msg=name)
        compared += 1
    assert compared >= 3 * 9 + 3  # every decoder layer's weights, embeddings, norm, lm_head
