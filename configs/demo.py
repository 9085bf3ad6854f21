"""`seeker-jax demo` and bench/demo_recipe.py: how big each stage of the end-to-end run is.

Presets:
  default  the README's demo (about 5 minutes on 2 CPU cores): configs/sft.py:demo as is,
           16 held-out questions before and after 8 GRPO iterations.
  long     the "it learns" run (bench/demo_recipe.py --preset long; hours on a CPU): a world of
           2400 records (>= 200 held-out test questions), longer SFT and GRPO, every test
           question evaluated before and after GRPO with a paired bootstrap interval.
sft / grpo: extra --config flags for configs/sft.py:demo and configs/grpo.py:tiny_synth.
"""
import ml_collections


def get_config(preset: str = "default") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.sft_steps = 0                  # 0: configs/sft.py:demo's own
    c.sft = ()
    c.grpo_steps = 8
    c.grpo = ()
    c.episodes = 16
    if preset == "default":
        pass
    elif preset == "long":
        c.sft_steps = 600
        c.sft = ("--config.data.synth_num=2400", "--config.optimizer.lr=5e-3")
        c.grpo_steps = 150
        c.grpo = ("--config.rollout.prompts_per_step=4", "--config.rollout.n=8",
                  "--config.optimizer.lr=3e-5")
        c.episodes = 100_000         # every test question
    else:
        raise ValueError(f"configs/demo.py: unknown preset {preset!r}; use default or long")
    return c
