"""SFT on multi-turn tool trajectories (`seeker-jax sft --config configs/sft.py:PRESET`).

Presets:
  tiny_synth    tiny model (configs/qwen3_vl.py:tiny), random init, on a tiny synthetic world
                written into WORKDIR/data: validation loss falls within minutes on a CPU.
  demo          what `seeker-jax demo` trains: tiny_synth on the demo world
                (configs/synth.py:demo), with the recipe bench/demo_recipe.py checks (held-out
                episodes end in an answer): steps, peak lr and its cosine decay below.
  qwen3_vl_4b / qwen3_vl_8b   the paper's recipe (lr 1e-5, vision frozen, bf16 compute over
                fp32 master weights) from a converted checkpoint (init_from).

c.env is what the model sees (configs/env.py: the paper's budgets, the tiny preset's 64x64
frames); it is written into every checkpoint (env_config.json), and episodes of that
checkpoint (demo, GRPO, eval, serve) replay it. c.tokenizer: "model" = the tokenizer files of
the model folder (init_from; convert copies them there), "offline_qwen" = the offline
fallback for tests and the demo. c.mesh.rules: logical axis -> mesh axes, first rule wins.
"""
import ml_collections

from seeker_jax.configs.env import env_group
from seeker_jax.sharding import DEFAULT_RULES

# FSDP over the model width, tensor parallelism over heads / MLP / vocab: the one rule table
# (seeker_jax/sharding.py), put in the config so a run can override it (--config.mesh.rules).
MESH_RULES = DEFAULT_RULES


def get_config(preset: str = "tiny_synth") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.model = ml_collections.ConfigDict()
    c.model.size = "tiny"            # configs/qwen3_vl.py size, used when init_from is ""
    c.model.init_from = ""           # a converted / trained checkpoint to start from
    c.model.compute_dtype = "float32"
    c.model.param_dtype = "float32"  # master weights; "float32" with compute "bfloat16"
    c.model.remat = "none"           # none | full | dots | dots_no_batch
    c.model.scan_layers = False      # decoder layers as one lax.scan: one compiled layer body
    c.model.attention_impl = "auto"  # auto | reference | chunked | splash | cudnn (auto: for the
                                     # platform the step runs on: splash on TPU, an AOT compile
                                     # for a TPU topology included; cudnn on GPU; reference on CPU)
    c.model.freeze_vision = True

    c.data = ml_collections.ConfigDict()
    c.data.root = ""                 # dataset root; "" synthesizes one into WORKDIR/data
    c.data.synth_preset = "tiny"     # configs/synth.py preset for that world
    c.data.synth_num = 96
    c.data.batch_size = 2            # per process
    c.data.buckets = (1024, 2048)
    c.data.prefetch = 2
    c.data.val_batches = 4

    c.env = env_group("paper")
    c.tokenizer = "model"            # model | offline_qwen

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.lr = 1e-5
    c.optimizer.warmup_steps = 10
    c.optimizer.total_steps = 1000
    c.optimizer.final_lr_fraction = 0.1
    c.optimizer.weight_decay = 0.0
    c.optimizer.b1, c.optimizer.b2, c.optimizer.eps = 0.9, 0.999, 1e-8
    c.optimizer.clip_norm = 1.0
    c.optimizer.accum_steps = 1

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1                 # -1: whatever devices fsdp * tensor leave
    c.mesh.fsdp = 1
    c.mesh.tensor = 1
    c.mesh.rules = MESH_RULES

    c.steps = 1000                   # micro-batch steps
    c.log_every = 1
    c.eval_every = 50
    c.checkpoint_every = 100
    c.keep_checkpoints = 2

    if preset == "tiny_synth":
        c.model.freeze_vision = False  # a random vision tower has nothing to keep
        c.env = env_group("tiny")      # 64x64 frames: minutes on a CPU
        c.tokenizer = "offline_qwen"   # a random model has no folder of its own
        c.optimizer.lr = 3e-3
        c.optimizer.warmup_steps = 5
        c.optimizer.total_steps = 120
        c.steps = 120
        c.eval_every = 20
        c.checkpoint_every = 40
    elif preset == "demo":
        c = get_config("tiny_synth")
        c.data.synth_preset = "demo"
        c.data.synth_num = 160
        c.optimizer.lr = 1e-2
        c.optimizer.warmup_steps = 10
        c.optimizer.total_steps = c.steps = 160
        c.optimizer.final_lr_fraction = 0.05
        c.eval_every = 40
        c.checkpoint_every = 160
    elif preset in ("qwen3_vl_4b", "qwen3_vl_8b"):
        c.model.size = preset.split("_")[-1]
        c.model.compute_dtype = "bfloat16"
        c.model.remat = "full"
        c.model.scan_layers = True
        c.mesh.data, c.mesh.fsdp = 1, -1
        c.data.batch_size = 1
        c.data.buckets = (4096, 8192)
        c.optimizer.total_steps = c.steps = 2000
        c.optimizer.warmup_steps = 50
        c.optimizer.accum_steps = 8
    else:
        raise ValueError(f"unknown sft preset {preset!r}: tiny_synth, demo, qwen3_vl_4b, "
                         "qwen3_vl_8b")
    return c
