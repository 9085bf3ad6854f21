"""The GRPO loss group `c.loss` (read by seeker_jax.rl.policy_loss.PolicyLossConfig.from_config).

Presets (a variant is a preset and registered names, never a new learner):
  grpo     VideoSeeker's recipe (paper and code): clip 0.2, token-mean aggregation, KL to the
           frozen reference with k3 (verl's low_var_kl) at 0.001, group-normalized advantages
           (std_floor 0; configs/grpo.py's seeker_* and tiny_synth presets set 0.1).
  dr_grpo  Dr.GRPO: advantages without std, per-sequence token sums over a constant
           max_len_norm (the response limit, 4096 tokens), no KL.
  dapo     DAPO: clip-higher (0.2 / 0.28), token-mean, no KL, dynamic sampling and overlong
           filtering of episodes.

Names: advantage in seeker_jax.rl.advantages (grpo | dr_grpo | rloo); policy_loss (clipped),
aggregation (token_mean | seq_mean_token_mean | seq_mean_token_sum | seq_mean_token_sum_norm),
kl (k1 | k2 | k3), tis (none | token | sequence) in seeker_jax.rl.policy_loss.
TRL's loss types map to: grpo = seq_mean_token_mean, dr_grpo = seq_mean_token_sum_norm with
max_len_norm = max_completion_length, dapo = token_mean.
"""
import ml_collections


def loss_group(preset: str = "grpo") -> ml_collections.ConfigDict:
    loss = ml_collections.ConfigDict()
    loss.advantage = "grpo"
    loss.std_floor = 0.0             # grpo: divide by max(group std, std_floor); 0 = the paper's
                                     # GRPO (configs/grpo.py turns it on where rewards carry
                                     # parsimony: rl/advantages.py says why)
    loss.policy_loss = "clipped"
    loss.clip_low = 0.2              # ratio clipped to [1 - clip_low, 1 + clip_high]
    loss.clip_high = 0.2
    loss.aggregation = "token_mean"
    loss.max_len_norm = 0            # seq_mean_token_sum_norm's constant divisor (0 = unset)
    loss.kl = "k3"
    loss.kl_coef = 0.001             # 0: the reference model is never run
    loss.tis = "none"                # truncated importance sampling: none | token | sequence
    loss.tis_cap = 2.0
    loss.temperature = 1.0           # the sampling temperature: the learner scores that policy
    loss.entropy = True              # log the policy entropy (one extra forward projection)
    loss.dynamic_sampling = False    # drop groups whose rewards are all equal, refill
    loss.overlong_filter = False     # mask episodes cut by the length limit
    loss.chunk = 256                 # positions per vocabulary-projection chunk: one chunk's
                                     # logits are (rows, chunk, vocab) float32 per device, with
                                     # rows = a minibatch's rows over the data axes (151,936
                                     # columns: 32 rows x 256 = 5 GB); lower it to fit memory
    if preset == "grpo":
        pass
    elif preset == "dr_grpo":
        loss.advantage = "dr_grpo"
        loss.aggregation = "seq_mean_token_sum_norm"
        loss.max_len_norm = 4096
        loss.kl_coef = 0.0
    elif preset == "dapo":
        loss.clip_high = 0.28
        loss.kl_coef = 0.0
        loss.dynamic_sampling = True
        loss.overlong_filter = True
    else:
        raise ValueError(f"configs/grpo_loss.py: unknown loss preset {preset!r}; use grpo, "
                         "dr_grpo or dapo")
    return loss


def get_config(preset: str = "grpo") -> ml_collections.ConfigDict:
    """`--config configs/grpo_loss.py:dapo` shows a preset on its own."""
    c = ml_collections.ConfigDict()
    c.loss = loss_group(preset)
    return c
