"""configs/grpo.py's presets say what they are, and rl/grpo.py's check_config holds them to it:
paper_* is the paper's recipe exactly (32 prompts x 8 samples, 4,096 response tokens per
episode, the paper's reward and std-normalized advantages) and refuses an override that breaks
it; seeker_* and tiny_synth add our pieces (the parsimony gate, a floor under the group std);
settings that cannot work together are refused at config time, saying what to set."""
import dataclasses

import pytest

from seeker_jax.config import load_config
from seeker_jax.configs.grpo import PAPER, paper_deviations
from seeker_jax.rl.grpo import check_config
from seeker_jax.rl.policy_loss import PolicyLossConfig
from seeker_jax.rl.rewards import RewardConfig


def config(preset, *flags):
    c = load_config(f"configs/grpo.py:{preset}", list(flags))
    return c, PolicyLossConfig.from_config(c.loss)


@pytest.mark.parametrize("size", ["4b", "8b"])
def test_paper_presets_are_the_paper(size):
    c, loss = config(f"paper_{size}")
    r = c.rollout
    assert (r.prompts_per_step, r.n) == (32, 8)                 # the paper's batch
    assert r.max_response_tokens == 4096 and r.max_len == 16_384 + 4096 and r.max_turns == 6
    assert c.env.max_rounds == 5 and c.optimizer.lr == 1e-6
    assert (loss.advantage, loss.std_floor, loss.kl, loss.kl_coef) == ("grpo", 0.0, "k3", 0.001)
    reward = RewardConfig.from_config(c.reward)
    assert dict(reward.weights) == {"accuracy": 0.8, "format": 0.15, "parsimony": 0.05,
                                    "temporal_iou": 0.1} and not reward.temporal_iou
    assert not reward.parsimony_gate and reward.format_variant == "format_paper"
    assert paper_deviations(c) == []
    check_config(c, loss)
    old, _ = config(f"qwen3_vl_{size}")                          # the old name: the paper's
    assert old.preset == f"paper_{size}" and old == c


@pytest.mark.parametrize("flag,path", [
    ("--config.rollout.prompts_per_step=16", "rollout.prompts_per_step: got 16, the paper 32"),
    ("--config.rollout.max_response_tokens=8192", "rollout.max_response_tokens"),
    ("--config.reward.parsimony.gate=True", "reward.parsimony.gate"),
    ("--config.loss.std_floor=0.1", "loss.std_floor"),
])
def test_paper_presets_refuse_overrides(flag, path):
    c, loss = config("paper_8b", flag)
    with pytest.raises(ValueError, match=r"paper_8b is the paper's recipe.*"
                                         + path.replace(".", r"\.") + r".*seeker_8b"):
        check_config(c, loss)
    c, loss = config("seeker_8b", flag)                          # ours may change them
    check_config(c, loss)


def test_presets_that_carry_parsimony_floor_the_std():
    """Every preset but the paper's own: parsimony gated and a std floor under grpo."""
    for preset in ("seeker_4b", "seeker_8b", "tiny_synth"):
        c, loss = config(preset)
        reward = RewardConfig.from_config(c.reward)
        assert reward.weights["parsimony"] > 0 and reward.parsimony_gate, preset
        assert loss.advantage == "grpo" and loss.std_floor == 0.1, preset
        assert loss.advantage_params == {"std_floor": 0.1}
        check_config(c, loss)
    seeker, _ = config("seeker_8b")
    assert sorted(d.split(":")[0] for d in paper_deviations(seeker)) == \
        ["loss.std_floor", "reward.parsimony.gate"]               # nothing else differs
    assert {path for path, _ in PAPER} >= {"rollout.n", "rollout.prompts_per_step",
                                            "rollout.max_response_tokens"}


@pytest.mark.parametrize("flags,message", [
    (["--config.optimizer.accum_steps=3"], "accum_steps 3 must divide rollout.minibatches 2"),
    (["--config.rollout.minibatches=3", "--config.optimizer.accum_steps=2"],
     "accum_steps 2 must divide rollout.minibatches 3"),
    (["--config.rollout.max_skip_fraction=1.5"], r"max_skip_fraction must be in \[0, 1\]"),
    (["--config.rollout.max_response_tokens=1024"], "max_response_tokens 1024 must be in"),
])
def test_config_mistakes_are_caught_up_front(flags, message):
    c, loss = config("tiny_synth", *flags)
    with pytest.raises(ValueError, match=message):
        check_config(c, loss)


def test_accum_steps_dividing_minibatches_is_fine():
    c, loss = config("tiny_synth", "--config.optimizer.accum_steps=2")
    check_config(c, loss)


def test_loss_config_errors():
    with pytest.raises(ValueError, match="std_floor=0.1 floors the group std of the grpo"):
        PolicyLossConfig(advantage="dr_grpo", std_floor=0.1)
    with pytest.raises(ValueError, match="std_floor must be >= 0"):
        PolicyLossConfig(std_floor=-1.0)
    c, _ = config("tiny_synth")
    c.loss.suppress_ids = (1, 2)
    with pytest.raises(ValueError, match="set --config.rollout.suppress_ids"):
        PolicyLossConfig.from_config(c.loss)
    assert PolicyLossConfig.preset("dr_grpo").advantage_params == {}
    cfg = dataclasses.replace(PolicyLossConfig(), chunk=32, suppress_ids=(5,))
    assert cfg.scoring == {"temperature": 1.0, "chunk": 32, "suppress_ids": (5,)}


def test_rollout_budgets_are_what_passk_samples_with(synth_world, tmp_path, monkeypatch):
    """`seeker-jax passk --config configs/grpo.py:PRESET` samples the RL split's candidates
    with that GRPO run's budgets (no flags of its own that could drift from them)."""
    from seeker_jax.cli.main import main
    from seeker_jax.configs.grpo import rollout_budgets

    c, _ = config("paper_8b")
    assert rollout_budgets(c.rollout) == {"temperature": 1.0, "max_new_tokens": 4096,
                                          "max_turns": 6, "max_response_tokens": 4096,
                                          "max_len": 16_384 + 4096}
    seen = {}

    def build_rl_split(ckpt, data, k, split, out_split, limit, **kwargs):
        seen.update(kwargs)
        return {"questions": 0, "never_solved": 0, "always_solved": 0, "kept": 0,
                "pass@1": 0.0, "pass@k": 0.0}

    monkeypatch.setattr("seeker_jax.eval.passk.build_rl_split", build_rl_split)
    assert main(["passk", "--ckpt", str(tmp_path), "--data", synth_world, "--config",
                 "configs/grpo.py:paper_8b", "--config.rollout.max_turns=4"]) == 0
    assert seen == {**rollout_budgets(c.rollout), "max_turns": 4, "seed": 0}


def test_the_demo_trains_and_evaluates_with_one_budget():
    """seeker_jax/cli/demo.py: GRPO's rollouts and the held-out evaluation read the same
    turn and length budgets (configs/demo.py:ROLLOUT), for every demo preset's GRPO flags;
    and the tiny environment allows exactly that many turns."""
    from seeker_jax.cli.demo import grpo_config
    from seeker_jax.configs.demo import ROLLOUT

    for preset in ("default", "long", "tools", "crop", "guess", "confuse"):
        demo = load_config(f"configs/demo.py:{preset}")
        c = grpo_config("sft_ckpt", "root", 1, list(demo.grpo))
        assert {k: c.rollout[k] for k in ROLLOUT} == ROLLOUT, preset
        assert c.env.max_rounds + 1 == ROLLOUT["max_turns"]
        check_config(c, PolicyLossConfig.from_config(c.loss))


def test_the_cli_refuses_a_changed_paper_preset_in_one_line(tmp_path, capsys):
    from seeker_jax.cli.main import main

    code = main(["grpo", "--workdir", str(tmp_path / "run"), "--config",
                 "configs/grpo.py:paper_8b", "--config.rollout.prompts_per_step=16"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert "rollout.prompts_per_step: got 16, the paper 32" in err[0] and "seeker_8b" in err[0]
