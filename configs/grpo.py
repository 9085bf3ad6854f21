"""GRPO on tool episodes (`seeker-jax grpo --config configs/grpo.py:PRESET --workdir W`).

Presets (docs/grpo.md says what each piece is and where it comes from):
  paper_4b / paper_8b    the paper's recipe exactly, and check_config refuses an override that
                breaks it (use seeker_* for that): 32 prompts x n=8 per step, lr 1e-6, KL 0.001
                (low_var_kl = k3) to the frozen reference, clip 0.2, token-mean, std-normalized
                group advantages, the paper's reward (configs/reward.py:paper, parsimony
                ungated), responses <= 4096 tokens per episode (every turn, tool and image
                tokens included), prompts <= 16,384, at most 5 tool rounds; init_from the SFT
                checkpoint.
  seeker_4b / seeker_8b  the paper's recipe plus our pieces: parsimony paid only to right
                answers (configs/reward.py:seeker) and a floor of 0.1 under the group std
                (loss.std_floor: rl/advantages.py says why).
  tiny_synth    our pieces on the tiny SFT checkpoint (model.init_from: a `seeker-jax sft`
                workdir of configs/sft.py:tiny_synth; "" = a random tiny model) on the
                synthetic world: 2 prompts x n=4 per step, short turns; minutes on a CPU.
  qwen3_vl_4b / qwen3_vl_8b  the old names, kept for the commands that still use them: paper_*.

Groups: c.reward (configs/reward.py), c.loss (configs/grpo_loss.py), c.env (configs/env.py; a
checkpoint given in init_from carries its own env_config.json: keep them equal), c.rollout:
  n                 samples per prompt (a GRPO group); prompts_per_step prompts per iteration
  max_new_tokens    per model turn; max_turns model turns per episode
  max_response_tokens  per episode: every token after the prompt (model turns, tool outputs,
                    their images); 0 = only the row limits it. An episode that reaches it ends
                    ("max_response")
  max_len           a sampler row: prompt + every turn and tool output (response budget +
                    prompt budget); buckets: the learner's padded lengths (<= max_len)
  max_skip_fraction the run stops with an error once more than this fraction of its prompts
                    were skipped as bad samples (a prompt longer than the row, an unreadable
                    video, a tool that raised); skips are counted per iteration in
                    metrics.jsonl (skipped/<why>)
  suppress_ids      token ids the policy never emits, beyond the four vision ids (always
                    suppressed): the sampler masks them and the learner, reference and old
                    log-prob passes mask the same ids, so all score one distribution
  temperature/top_k/top_p  the sampling policy (the loss scores tempered, untruncated log-probs)
  minibatches, epochs  updates per iteration: minibatches * epochs optimizer steps; more than
                    one recomputes the old log-probs with the learner before the first update
  batch_size        sampler rows (0 = prompts_per_step * n)
  max_refills       with loss.dynamic_sampling: up to that many extra rounds of
                    prompts_per_step prompts replace the groups whose rewards were all equal
                    (DAPO); groups still missing after them stay in the batch, masked
"""
import ml_collections

from seeker_jax.configs.env import env_group
from seeker_jax.configs.grpo_loss import loss_group
from seeker_jax.configs.reward import reward_group
from seeker_jax.configs.sft import MESH_RULES


def get_config(preset: str = "tiny_synth") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.model = ml_collections.ConfigDict()
    c.model.size = "tiny"            # configs/qwen3_vl.py size, used when init_from is ""
    c.model.init_from = ""           # the SFT checkpoint / workdir GRPO starts from (the reference)
    c.model.compute_dtype = "float32"
    c.model.param_dtype = "float32"
    c.model.remat = "none"
    c.model.scan_layers = False      # decoder layers as one lax.scan (sampler cache included)
    c.model.attention_impl = "auto"  # auto | reference | chunked | splash | cudnn (auto: for the
                                     # platform the step runs on: splash on TPU, an AOT compile
                                     # for a TPU topology included; cudnn on GPU; reference on CPU)
    c.model.freeze_vision = True

    c.data = ml_collections.ConfigDict()
    c.data.root = ""                 # dataset root; "" synthesizes one into WORKDIR/data
    c.data.split = "train"           # `seeker-jax passk` writes the RL split as "rl"
    c.data.synth_preset = "tiny"
    c.data.synth_num = 32

    c.env = env_group("paper")
    c.tokenizer = "model"            # model | offline_qwen
    c.reward = reward_group("paper")
    c.loss = loss_group("grpo")

    c.preset = preset
    c.rollout = ml_collections.ConfigDict()
    c.rollout.n = 8
    c.rollout.prompts_per_step = 32
    c.rollout.batch_size = 0         # sampler rows; 0 = prompts_per_step * n
    c.rollout.max_new_tokens = 1024
    c.rollout.max_turns = 6          # 5 tool rounds + the answer
    c.rollout.max_response_tokens = 4096
    c.rollout.max_len = 16_384 + 4096
    c.rollout.buckets = (8192, 12_288, 16_384 + 4096)
    c.rollout.temperature = 1.0
    c.rollout.top_k = 0
    c.rollout.top_p = 1.0
    c.rollout.minibatches = 1
    c.rollout.epochs = 1
    c.rollout.max_refills = 2        # dynamic sampling: extra rounds to replace dropped groups
    c.rollout.max_skip_fraction = 0.1
    c.rollout.suppress_ids = ()      # beyond the vision ids, which are always suppressed
    c.rollout.num_workers = 8        # tool threads
    c.rollout.decode_steps = 16
    c.rollout.max_chunk = 512

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.lr = 1e-6
    c.optimizer.warmup_steps = 0
    c.optimizer.total_steps = 1000   # optimizer steps (iterations * minibatches * epochs)
    c.optimizer.final_lr_fraction = 1.0
    c.optimizer.weight_decay = 0.0
    c.optimizer.b1, c.optimizer.b2, c.optimizer.eps = 0.9, 0.999, 1e-8
    c.optimizer.clip_norm = 1.0
    c.optimizer.accum_steps = 1

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1
    c.mesh.fsdp = 1
    c.mesh.tensor = 1
    c.mesh.rules = MESH_RULES

    c.steps = 200                    # iterations (rollout + updates)
    c.log_every = 1
    c.checkpoint_every = 10          # iterations; checkpoints sit at rollout boundaries
    c.keep_checkpoints = 2
    c.plot_every = 1                 # reward.png / tools.png every that many iterations
    c.viewer_every = 10              # episodes/iteration_<N>.html + TensorBoard text of
    c.viewer_episodes = 4            # that many sampled episodes, every that many iterations
    c.viewer_mb = 1.0                # and at the last; 0 = never (rl/grpo_episodes.py);
                                     # viewer_mb: MiB of images per page

    if preset == "tiny_synth":
        c.model.freeze_vision = False
        c.env = env_group("tiny")
        c.tokenizer = "offline_qwen"
        c.reward = reward_group("seeker")
        c.loss.std_floor = 0.1
        c.rollout.n = 4
        c.rollout.prompts_per_step = 2
        c.rollout.max_new_tokens = 48
        c.rollout.max_turns = 3
        c.rollout.max_response_tokens = 0
        c.rollout.max_len = 1024
        c.rollout.buckets = (512, 1024)
        c.rollout.minibatches = 2
        c.rollout.num_workers = 2
        c.rollout.max_chunk = 256
        c.optimizer.lr = 1e-4
        c.steps = 20
        c.checkpoint_every = 5
    elif preset in REAL_PRESETS:
        if preset.startswith("qwen3_vl_"):
            c.preset = preset = "paper_" + preset.split("_")[-1]
        c.model.size = preset.split("_")[-1]
        c.model.compute_dtype = "bfloat16"
        c.model.remat = "full"
        c.model.scan_layers = True
        c.mesh.data, c.mesh.fsdp = 1, -1
        c.rollout.max_new_tokens = 4096  # a turn may use the episode's whole budget
        if preset.startswith("seeker_"):
            c.reward = reward_group("seeker")
            c.loss.std_floor = 0.1
    else:
        raise ValueError(f"unknown grpo preset {preset!r}: tiny_synth, "
                         f"{', '.join(REAL_PRESETS)}")
    return c


REAL_PRESETS = ("paper_4b", "paper_8b", "seeker_4b", "seeker_8b", "qwen3_vl_4b", "qwen3_vl_8b")

# What a paper_* preset claims, as (config path, the paper's value); check_config
# (rl/grpo.py) refuses a paper_* config that differs (paper_deviations says where).
PAPER = (("rollout.n", 8), ("rollout.prompts_per_step", 32), ("rollout.max_turns", 6),
         ("rollout.max_response_tokens", 4096), ("rollout.max_len", 16_384 + 4096),
         ("rollout.temperature", 1.0), ("rollout.top_k", 0), ("rollout.top_p", 1.0),
         ("rollout.epochs", 1), ("optimizer.lr", 1e-6), ("env.max_rounds", 5),
         ("loss.advantage", "grpo"), ("loss.std_floor", 0.0), ("loss.policy_loss", "clipped"),
         ("loss.clip_low", 0.2), ("loss.clip_high", 0.2), ("loss.aggregation", "token_mean"),
         ("loss.kl", "k3"), ("loss.kl_coef", 0.001), ("loss.tis", "none"),
         ("loss.dynamic_sampling", False), ("loss.overlong_filter", False),
         ("reward.weights.accuracy", 0.8), ("reward.weights.format", 0.15),
         ("reward.weights.parsimony", 0.05), ("reward.format", "format_paper"),
         ("reward.parsimony.gate", False), ("reward.temporal_iou", False))


def rollout_budgets(rollout: ml_collections.ConfigDict) -> dict:
    """The episode budgets of a GRPO config's c.rollout, as the evaluator's rollouts take them
    (seeker_jax/eval/passk.py): `seeker-jax passk --config` samples the RL split's candidates
    exactly as this GRPO run will (policy temperature, turns, tokens per turn and episode,
    row)."""
    return {"temperature": float(rollout.temperature),
            "max_new_tokens": int(rollout.max_new_tokens), "max_turns": int(rollout.max_turns),
            "max_response_tokens": int(rollout.max_response_tokens),
            "max_len": int(rollout.max_len)}


def paper_deviations(c: ml_collections.ConfigDict) -> list[str]:
    """Where a config differs from the paper's recipe (PAPER), as "path: got X, the paper Y"."""
    out = []
    for path, want in PAPER:
        got = c
        for key in path.split("."):
            got = got[key]
        if got != want:
            out.append(f"{path}: got {got!r}, the paper {want!r}")
    return out
