"""The sampler-learner log-prob gap on a real rollout: the Sampler (KV cache, chunked prefill,
vision features scattered in, temperature 0.8 draws) records log-probs; the GRPO loss
recomputes them in the learner's one full forward (place_batch's MRoPE positions, chunked
vocabulary projection). One JAX graph family, fp32: the gap must be ~0. Asserted < 1e-4;
seen 4.8e-7 (mean |sampler - learner| over 2 rows x 2 turns around a tool response, 40
policy tokens)."""
import numpy as np
import optax
import pytest

from hf_reference import save_tiny_hf, segment
from seeker_jax.data.batch import collate
from seeker_jax.models.qwen3_vl import from_pretrained
from seeker_jax.rl.policy_loss import PolicyLossConfig, make_grpo_loss
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams
from seeker_jax.training.train_state import create_train_state, make_eval_step, place_batch

TEMPERATURE = 0.8


def test_sampler_learner_gap_is_zero_in_fp32(tmp_path):
    save_tiny_hf(str(tmp_path), seed=11, scale=5.0)
    model = from_pretrained(str(tmp_path))
    s = Sampler(model, batch_size=2, max_len=96, params=SamplingParams(TEMPERATURE),
                decode_steps=8, max_chunk=32, min_bucket=16, seed=3)
    s.append({0: segment([("text", 5), ("image", (4, 6)), ("text", 3)], 1),
              1: segment([("text", 9)], 2)}, max_new_tokens=10)
    while s.active_rows:
        s.step()
    s.append({0: segment([("text", 2), ("image", (2, 4))], 3), 1: segment([("text", 4)], 4)},
             max_new_tokens=10)  # a tool response, then the second turn
    while s.active_rows:
        s.step()
    convs = [s.conversation(i) for i in range(2)]
    assert [int(c.policy_mask.sum()) for c in convs] == [20, 20]

    batch = collate(convs, 96, multiple=32, per_token={
        "sampler_logprobs": [c.logprobs for c in convs],
        "advantages": [np.ones(len(c.input_ids)) for c in convs]})
    arrays, vision = place_batch(batch, model, None)
    cfg = PolicyLossConfig(kl_coef=0.0, tis="token", temperature=TEMPERATURE, entropy=False,
                           chunk=32)
    state = create_train_state(model, optax.sgd(0.0), None, freeze_vision=False)
    _, aux = make_eval_step(make_grpo_loss(cfg))(state, arrays, vision)
    gap = float(aux["sampler_learner_gap"])
    print(f"sampler-learner gap (fp32, mean |sampler - learner| log-prob): {gap:.3g}")
    assert gap < 1e-4
    assert float(aux["tis_frac"]) == 0.0 and float(aux["loss_tokens"]) == 40
    assert abs(float(aux["ratio_mean"]) - 1.0) < 1e-6
