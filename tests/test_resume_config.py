"""A training workdir resumes only under the config its checkpoints were made under
(seeker_jax/training/run_config.py), through the CLI: a changed learning rate is refused with
the difference named, before any training; a raised step budget is not; with
--allow-config-change the old config.json is kept. Ctrl-C names the checkpoint that
survived."""
import json
import os

import pytest

from seeker_jax.cli import main as cli
from seeker_jax.config import load_config, to_json
from seeker_jax.errors import UserError
from seeker_jax.training.run_config import check_resume_config


@pytest.fixture
def workdir(tmp_path):
    """A run folder as `sft` leaves it after saving step 4 (the checkpoint's content is never
    read by the check; an orbax temp folder beside it is not a step)."""
    w = tmp_path / "run"
    (w / "checkpoints" / "4").mkdir(parents=True)
    (w / "checkpoints" / "6.orbax-checkpoint-tmp-1").mkdir()
    (w / "config.json").write_text(to_json(load_config("configs/sft.py:tiny_synth")))
    return w


def test_a_changed_learning_rate_is_refused_by_the_cli(workdir, capsys, monkeypatch):
    import seeker_jax.training.sft as sft

    monkeypatch.setattr(sft, "train", lambda *a, **k: pytest.fail("training started"))
    code = cli.main(["sft", "--workdir", str(workdir), "--config.optimizer.lr=0.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"error: sft: {workdir} holds a run at step 4 made under another "
                             "config (optimizer.lr: ")
    assert "-> 0.5)" in err[0] and "--allow-config-change" in err[0]
    assert json.loads((workdir / "config.json").read_text())["optimizer"]["lr"] != 0.5


def test_raised_steps_resume_and_allowed_changes_keep_the_old_config(workdir, capsys):
    old = (workdir / "config.json").read_text()
    check_resume_config(str(workdir), load_config("configs/sft.py:tiny_synth",
                                                  ["--config.steps=999", "--config.log_every=7"]),
                        "sft")
    assert not (workdir / "config.before_step4.json").exists()
    changed = load_config("configs/sft.py:tiny_synth", ["--config.seed=3"])
    with pytest.raises(UserError, match=r"seed: 0 -> 3"):
        check_resume_config(str(workdir), changed, "sft")
    check_resume_config(str(workdir), changed, "sft", allow_change=True)
    assert (workdir / "config.before_step4.json").read_text() == old
    assert "seed: 0 -> 3" in capsys.readouterr().out


def test_no_checkpoint_no_check(tmp_path):
    (tmp_path / "config.json").write_text(to_json(load_config("configs/sft.py:tiny_synth")))
    check_resume_config(str(tmp_path), load_config("configs/grpo.py:tiny_synth"), "grpo")


def test_ctrl_c_names_the_surviving_checkpoint_on_its_own_line(workdir, capsys, monkeypatch):
    import seeker_jax.training.sft as sft

    def interrupted(*a, **k):
        print("sft:  40%|####      | 4/10", end="", file=os.sys.stderr)
        raise KeyboardInterrupt

    monkeypatch.setattr(sft, "train", interrupted)
    assert cli.main(["sft", "--workdir", str(workdir)]) == 130
    err = capsys.readouterr().err
    assert err.endswith(f"\ninterrupted; last saved checkpoint: step 4 in "
                        f"{workdir / 'checkpoints'} (rerun the same command to resume)\n")
