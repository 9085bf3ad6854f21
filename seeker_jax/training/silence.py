"""Runs that learn nothing say so: a logged row whose figures mean no parameter can move
warns once per run (stderr), with what to change. MetricsWriter feeds every row here, so SFT
and GRPO need no code of their own.

- `reward` 0: every episode of a GRPO iteration scored 0, so every advantage is 0;
- `grad_norm` 0: the update's gradient is all zeros (SFT: no token carries loss; GRPO: every
  group's rewards were equal).
"""
from __future__ import annotations

import sys
from typing import Mapping

SIGNALS = {
    "reward": "every episode's reward is 0, so every advantage is 0 and GRPO learns nothing; "
              "check that --config.model.init_from is an SFT checkpoint that answers in the "
              "format the reward reads (--config.reward.*), or give the episodes more room "
              "(--config.rollout.max_new_tokens, max_turns)",
    "grad_norm": "the gradient is all zeros (grad_norm 0), so no parameter moves; SFT: no "
                 "token of the batch carries loss (check the records' assistant turns); "
                 "GRPO: every group's rewards were equal (--config.loss.dynamic_sampling, "
                 "a passk-filtered split, or a larger --config.rollout.n)",
}


class SilenceWatch:
    """Warns once per signal (SIGNALS) the first time a row carries it at exactly 0."""

    def __init__(self, out=None):
        self.out, self.warned = out, set()

    def __call__(self, step: int, row: Mapping[str, float]) -> list[str]:
        """The warnings printed for this row (each signal at most once per run)."""
        said = []
        for key, what in SIGNALS.items():
            if key in row and row[key] == 0 and key not in self.warned:
                self.warned.add(key)
                said.append(f"warning: step {step}: {what}")
                print(f"\n{said[-1]}", file=self.out or sys.stderr, flush=True)
        return said


__all__ = ["SIGNALS", "SilenceWatch"]
