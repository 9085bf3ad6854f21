"""`seeker-jax demo` and bench/demo_recipe.py: how big each stage of the end-to-end run is.

Presets (what each run tests, and its results: docs/results.md):
  default  the README's demo: configs/sft.py:demo as is, 16 held-out questions before and
           after 8 GRPO iterations.
  long     the "it learns" run (bench/demo_recipe.py --preset long): a world of 2400 records
           a tiny model can read, longer SFT and GRPO, and 1200 held-out questions (a second
           world, seeker_jax/cli/demo.py:held_out_world) evaluated before and after GRPO with
           a paired bootstrap interval.
  tools    the "it learns" run where a tool decides the answer (bench/demo_recipe.py --preset
           tools): long's recipe on configs/synth.py:learn_tools, a world whose instance
           changes color and a weak teacher that skips the crop 60% of the time.
  crop     tools on configs/synth.py:learn_crop (the crop window shows one color).
  guess    GRPO where looking pays (bench/demo_recipe.py --preset guess --sft=--config.model.
           init_from=LONG/sft): SFT continued for 600 steps from long's SFT model (which reads
           the color) on configs/synth.py:learn_guess, whose teacher calls no tool and guesses
           60% of the time; then GRPO at lr 5e-4.
  confuse  GRPO against a teacher's systematic mistake (bench/demo_recipe.py --preset confuse
           --sft=--config.model.init_from=LONG/sft): guess's recipe on configs/synth.py:
           learn_confuse, whose teacher calls both tools but answers orange for red (and the
           reverse), purple for blue (and the reverse) 70% of the time; 28 GRPO iterations.
sft / grpo: extra --config flags for configs/sft.py:demo and configs/grpo.py:tiny_synth.
ROLLOUT: the turn and length budgets of the demo's episodes, the same for GRPO's rollouts
(rollout_flags, applied before the preset's grpo flags) and for the held-out evaluation, which
reads them back from the GRPO config it trains with (seeker_jax/cli/demo.py): a model is
never evaluated with more turns or tokens than it was trained to use.
"""
import ml_collections

from seeker_jax.configs.env import env_group

# The tiny env's 5 tool rounds + the answer; 80 tokens a turn hold the teacher's crop call;
# a row of 2,048 holds the prompt and two tool rounds of the demo worlds.
ROLLOUT = {"max_turns": 6, "max_new_tokens": 80, "max_len": 2048}


def rollout_flags(rollout: dict = ROLLOUT) -> tuple[str, ...]:
    """configs/grpo.py:tiny_synth flags that give its rollouts these budgets (the learner's
    buckets reach the row)."""
    return (*(f"--config.rollout.{k}={v}" for k, v in rollout.items()),
            f"--config.rollout.buckets=(512, 1024, {rollout['max_len']})")


def get_config(preset: str = "default") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.sft_steps = 0                  # 0: configs/sft.py:demo's own
    c.sft = ()
    c.grpo_steps = 8
    c.grpo = ()
    c.episodes = 16
    c.eval_world = 0                 # > 0: evaluate on a separate held-out world of that many
                                     # records (seeker_jax/cli/demo.py:held_out_world), not the test split
    if preset == "default":
        pass
    elif preset == "long":
        # The world a tiny model trained from scratch can read (configs/synth.py:learn: one
        # instance, color questions) and its frames shown at 128x128 (configs/env.py:tiny_128's
        # budgets), in SFT and GRPO alike: the demo's 96x64 world at 64x64 frames is 4 vision
        # tokens a frame, and its SFT model answers at chance.
        env = env_group("tiny_128")
        frames = tuple(f"--config.env.{key}={value}" for key, value in (
            ("video.max_frame_pixels", env.video.max_frame_pixels),
            ("crop.max_frame_pixels", env.crop.max_frame_pixels),
            ("frame.max_pixels", env.frame.max_pixels)))
        # 2400 steps (two passes over the train split) at lr 3e-3: at half that the model
        # read the color barely above chance.
        c.sft_steps = 2400
        c.sft = ("--config.data.synth_preset=learn", "--config.data.synth_num=2400",
                 "--config.optimizer.lr=3e-3", *frames)
        # 8 prompts x 8 samples and one optimizer step per iteration (two accumulated
        # minibatches of 32 episodes: 64 rows at once can run a small CPU host out of memory
        # in the vocabulary projection). At 4 x 8, two steps per iteration and lr 5e-4 the
        # sampled reward fell (the crop call's JSON and the answer turn's <think> broke): the
        # gradient was mostly noise.
        c.grpo_steps = 14
        c.grpo = ("--config.rollout.prompts_per_step=8", "--config.rollout.n=8",
                  "--config.rollout.minibatches=2", "--config.optimizer.accum_steps=2",
                  "--config.optimizer.lr=2e-4", "--config.loss.chunk=64",
                  "--config.checkpoint_every=2", *frames)
        c.episodes = 100_000         # every held-out question
        c.eval_world = 1200
    elif preset == "tools":
        # long's SFT and GRPO, unchanged, on a world where the crop decides the answer and a
        # teacher that mostly skips it: in learn's world a crop shows what the marked frame
        # shows, so GRPO had only perception to improve.
        c = get_config("long")
        c.sft = tuple(f.replace("synth_preset=learn", "synth_preset=learn_tools")
                      for f in c.sft)
    elif preset == "crop":
        # tools, on a world whose crop shows one color (configs/synth.py:learn_crop): in
        # tools' world the SFT model read the color from nothing it was shown.
        c = get_config("tools")
        c.sft = tuple(f.replace("=learn_tools", "=learn_crop") for f in c.sft)
        # lr 1e-3: in tools' world lr 2e-4 left the crop rate where it was, where 1e-3 moved
        # it (the way that world's reward pointed).
        c.grpo = tuple(f.replace("lr=2e-4", "lr=1e-3") for f in c.grpo)
    elif preset == "guess":
        # long's model already reads the color; 600 more SFT steps (lr 1e-3) on a teacher that
        # guesses without looking 60% of the time teach it to skip the tools, so its greedy
        # episode guesses. Its sampled episodes that look are right far more often than those
        # that guess: a reward difference GRPO must find in its 14 iterations. init_from (long's
        # SFT workdir) is given on the command line.
        c = get_config("long")
        c.sft_steps = 600
        c.sft = tuple(f.replace("synth_preset=learn", "synth_preset=learn_guess")
                      .replace("lr=3e-3", "lr=1e-3") for f in c.sft)
        c.grpo = tuple(f.replace("lr=2e-4", "lr=5e-4") for f in c.grpo)
    elif preset == "confuse":
        # guess's recipe on a world whose teacher looks as always but mixes up red/orange and
        # blue/purple 70% of the time (configs/synth.py:learn_confuse): the SFT model's greedy
        # answer for those colors is the teacher's mistake, its samples are sometimes right,
        # and only the reward (the records' true answers) can tell them apart.
        c = get_config("guess")
        c.sft = tuple(f.replace("=learn_guess", "=learn_confuse") for f in c.sft)
        # 28 iterations: at 14 the gain's interval still held 0.
        c.grpo_steps = 28
    else:
        raise ValueError(f"configs/demo.py: unknown preset {preset!r}; use default, long, "
                         "tools, crop, guess or confuse")
    return c
