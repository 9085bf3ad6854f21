"""Where a seek-world SFT model's crop turn loses its probability: per token of the teacher's
crop turn for the evidence second and for the whole video, the model's log-probability and,
where it differs, its most likely token (teacher-forced, train questions of WORKDIR/data/task).

  python bench/seek_tokens.py --ckpt W/sft --workdir W [--records 3] [--restate]

--restate scores the crop turn as configs/synth.py:seek_restate's teacher writes it ("About
k.5 s. I watch ..."). Tokens the model already predicts with log-probability above -0.05 are
left out. A model that copies the question's second into its call puts nearly all of the
evidence second's probability on the digits; one that learned each digit's marginal spreads
it (docs/results.md, protocol 2's pilot).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def crop_turn_logprobs(policy, record: dict, root: str, windows, about: str = ""):
    """Per window of `windows`: (token ids, log-probabilities, argmax ids) over the first
    assistant turn, the crop turn, of `record` with the teacher's crop of that window (the
    answer after it is a stub). One batched forward for all windows."""
    from seek import learned_logprobs
    from seeker_jax.data.seek import crop_turn
    from seeker_jax.data.trajectories import build_trajectory

    segs = [build_trajectory({**record, "teacher_turns": [crop_turn(*w, about=about),
                                                           "<answer>x</answer>"]},
                             policy.formatter(), root, policy.env.episode_config())
            for w in windows]
    out = []
    for at, ids, lp, top in learned_logprobs(policy, segs):
        gaps = np.nonzero(np.diff(at) > 1)[0]
        n = gaps[0] + 1 if len(gaps) else len(at)         # the first turn only
        out.append((ids[:n], lp[:n], top[:n]))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--records", type=int, default=3)
    p.add_argument("--restate", action="store_true")
    args = p.parse_args(argv)
    from seeker_jax.agents.policy import load_policy
    from seeker_jax.data.records import read_records

    policy = load_policy(f"ckpt:{args.ckpt}")
    tok = policy.formatter().tokenizer
    root = os.path.join(args.workdir, "data", "task")
    for r in read_records(root, "train", resolve=False)[: args.records]:
        k0, k1 = r["evidence_window"]
        about = f"{int(k0)}.5" if args.restate else ""
        windows = ((k0, k1), (0.0, r["duration"]))
        for window, (ids, lp, top) in zip(windows, crop_turn_logprobs(policy, r, root, windows,
                                                                      about)):
            shown = [f"{tok.decode([int(i)])!r} {v:.2f}"
                     + ("" if t == i else f" (argmax {tok.decode([int(t)])!r})")
                     for i, v, t in zip(ids, lp, top) if v < -0.05]
            print(f"{r['id']} window {window}: total {lp.sum():.2f}; " + ", ".join(shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
