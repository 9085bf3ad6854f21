"""TRL's GRPOTrainer loss run on prepared inputs, without building a trainer.

`GRPOTrainer._compute_loss` (TRL 1.16) is called unbound on a small stand-in for `self` that
holds the attributes it reads (loss type, epsilons, beta, a real `accelerate.Accelerator`, the
metrics dict) and TRL's own `_get_per_token_logps_and_entropies`; the model is a transformers
model patched by TRL's `add_fused_lm_head`, as GRPOTrainer.__init__ patches it. So TRL's own
code computes the log-probs, the per-token loss, the KL term, the aggregation and the metrics.
"""
from __future__ import annotations

import types
from collections import defaultdict

import torch

from trl.trainer.grpo_trainer import GRPOTrainer
from trl.trainer.utils import add_fused_lm_head


def trl_trainer(model, loss_type: str, beta: float, epsilon_low: float, epsilon_high: float,
                max_completion_length: int, temperature: float = 1.0):
    """A stand-in `self` for GRPOTrainer._compute_loss (one process, no accumulation)."""
    from accelerate import Accelerator

    add_fused_lm_head(model, temperature=temperature, outputs=("log_probs", "entropy"))
    args = types.SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1)
    self = types.SimpleNamespace(
        loss_type=loss_type, beta=beta, epsilon_low=epsilon_low, epsilon_high=epsilon_high,
        max_completion_length=max_completion_length, temperature=temperature, args=args,
        importance_sampling_level="token", top_entropy_quantile=1.0,
        off_policy_mask_threshold=None, use_vllm=False, vllm_importance_sampling_correction=False,
        _entropy_bonus_enabled=False, aux_loss_enabled=False, current_gradient_accumulation_steps=1,
        model=model, accelerator=Accelerator(cpu=True),
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)})
    self._get_per_token_logps_and_entropies = types.MethodType(
        GRPOTrainer._get_per_token_logps_and_entropies, self)
    return self


def trl_loss(self, inputs: dict) -> torch.Tensor:
    return GRPOTrainer._compute_loss(self, self.model, inputs)


def trl_logps(self, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-token log-probs, entropies) of the completion tokens, TRL's forward."""
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    lp, ent, _ = self._get_per_token_logps_and_entropies(
        self.model, ids, mask, inputs["completion_ids"].size(1), compute_entropy=True,
        mm_token_type_ids=inputs.get("mm_token_type_ids"))
    return lp, ent
