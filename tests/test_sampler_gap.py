"""The sampler-learner log-prob gap on a real rollout: the Sampler (KV cache, chunked prefill,
vision features scattered in, temperature 0.8 draws, the four vision ids suppressed as every
tool episode's sampler suppresses them) records log-probs; the GRPO loss recomputes them in the
learner's one full forward (place_batch's MRoPE positions, chunked vocabulary projection) with
the same ids masked (PolicyLossConfig.suppress_ids). One JAX graph family, one distribution,
fp32: every token's gap is bounded by 1e-5.

Without the learner's mask the two score different distributions (the sampler's renormalized
over the vocabulary minus the vision ids, the learner's over all of it): each token's gap is
then log(1 / (1 - p_vision)), far above the bound: checked too, so the bound means something."""
import numpy as np
import optax

from hf_reference import IMAGE, VEND, VIDEO, VSTART, save_tiny_hf, segment
from seeker_jax.data.batch import collate
from seeker_jax.models.qwen3_vl import from_pretrained
from seeker_jax.rl.policy_loss import PolicyLossConfig, make_grpo_loss
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams
from seeker_jax.training.train_state import create_train_state, make_eval_step, place_batch

TEMPERATURE = 0.8
VISION_IDS = (IMAGE, VIDEO, VSTART, VEND)
GAP = 1e-5  # per token, fp32


def test_sampler_learner_gap_per_token_in_fp32(tmp_path):
    save_tiny_hf(str(tmp_path), seed=11, scale=5.0)
    model = from_pretrained(str(tmp_path))
    s = Sampler(model, batch_size=2, max_len=96,
                params=SamplingParams(TEMPERATURE, suppress_ids=VISION_IDS),
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
    sampled = np.concatenate([c.input_ids[c.policy_mask > 0] for c in convs])
    assert not np.isin(sampled, VISION_IDS).any()

    batch = collate(convs, 96, multiple=32, per_token={
        "sampler_logprobs": [c.logprobs for c in convs],
        "advantages": [np.ones(len(c.input_ids)) for c in convs]})
    arrays, vision = place_batch(batch, model, None)
    state = create_train_state(model, optax.sgd(0.0), None, freeze_vision=False)

    def gaps(suppress):
        cfg = PolicyLossConfig(kl_coef=0.0, tis="token", temperature=TEMPERATURE, entropy=False,
                               chunk=32, suppress_ids=suppress)
        _, aux = make_eval_step(make_grpo_loss(cfg))(state, arrays, vision)
        return aux

    aux = gaps(VISION_IDS)
    worst = float(aux["sampler_learner_gap_max"])
    print(f"sampler-learner gap, fp32, vision ids masked: max {worst:.3g}, mean "
          f"{float(aux['sampler_learner_gap']):.3g} per token")
    assert worst <= GAP
    assert float(aux["tis_frac"]) == 0.0 and float(aux["loss_tokens"]) == 40
    assert abs(float(aux["ratio_mean"]) - 1.0) < 1e-6
    # the learner without the mask: the gap the issue found, per token and far over the bound
    unmasked = gaps(())
    print(f"without the learner's mask: mean {float(unmasked['sampler_learner_gap']):.3g}")
    assert float(unmasked["sampler_learner_gap"]) > 10 * GAP, float(unmasked["sampler_learner_gap"])
