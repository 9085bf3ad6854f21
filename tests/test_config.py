"""seeker_jax.config: `path.py:preset` loading and typed `--config.a.b=value` overrides."""
from __future__ import annotations

import argparse

import pytest

from seeker_jax.config import (ConfigArgumentError, add_config_arguments, load_config, parse_value,
                               split_overrides)
from seeker_jax.errors import UserError

CONFIG = '''
import ml_collections

def get_config(preset="default"):
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(layers=2, lr=1e-3, name="tiny", frozen=False,
                                             shape=(4, 8), tags=["a"], extra=None))
    c.seed = 0
    if preset == "big":
        c.model.layers = 36
    return c
'''


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "exp.py"
    p.write_text(CONFIG)
    return str(p)


def test_presets_and_typed_overrides(path):
    assert load_config(path).model.layers == 2
    assert load_config(f"{path}:big").model.layers == 36
    c = load_config(f"{path}:big", ["--config.model.layers=3", "model.lr=5e-4", "config.seed=7",
                                    "--config.model.frozen=true", "--config.model.name=a=b",
                                    "--config.model.shape=(1, 2)", "--config.model.tags=[1]",
                                    "--config.model.extra=0.5"])
    assert (c.model.layers, c.model.lr, c.seed, c.model.frozen, c.model.name) == (3, 5e-4, 7, True, "a=b")
    assert c.model.shape == (1, 2) and c.model.tags == [1] and c.model.extra == 0.5
    assert isinstance(c.model.layers, int) and isinstance(c.model.lr, float)


def test_errors_say_what_to_do(path):
    with pytest.raises(ConfigArgumentError, match=r"does not exist \(did you mean 'layers'\?\); keys there"):
        load_config(path, ["--config.model.layer=3"])
    with pytest.raises(ConfigArgumentError, match=r"not a group of the config \(did you mean 'model'\?\)"):
        load_config(path, ["--config.modle.layers=3"])
    with pytest.raises(ValueError, match="is not an int"):
        load_config(path, ["--config.model.layers=1.5"])
    with pytest.raises(ValueError, match="is a group"):
        load_config(path, ["--config.model=3"])
    with pytest.raises(ValueError, match="no '='"):
        load_config(path, ["--config.model.layers"])
    with pytest.raises(ConfigArgumentError, match="not found"):
        load_config("nope/missing.py:tiny")
    with pytest.raises(ConfigArgumentError,
                       match=r"--config configs/synth.py:tinyy: .*unknown preset 'tinyy'"):
        load_config("configs/synth.py:tinyy")
    empty = path.replace("exp.py", "empty.py")
    open(empty, "w").write("x = 1\n")
    with pytest.raises(ConfigArgumentError, match="no get_config"):
        load_config(empty)
    with pytest.raises(ValueError, match="not a bool"):
        parse_value("maybe", True)
    # every one of them is a user error: the CLI prints it as one line, exit 2
    assert issubclass(ConfigArgumentError, UserError) and issubclass(ConfigArgumentError, ValueError)


def test_repo_configs_resolve_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative to the repository root when not found here
    assert load_config("configs/synth.py:tiny").video.width == 96


def test_argparse_subcommand_takes_overrides(path):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("--steps", type=int, default=1)
    add_config_arguments(p, path)
    args = parser.parse_args(["train", "--config", f"{path}:big", "--config.model.lr=0.1",
                              "--steps", "4", "--config.seed", "3"])
    assert args.steps == 4 and args.config == f"{path}:big"
    assert args.config_overrides == ["--config.model.lr=0.1", "--config.seed=3"]
    c = load_config(args.config, args.config_overrides)
    assert (c.model.layers, c.model.lr, c.seed) == (36, 0.1, 3)
    with pytest.raises(SystemExit):  # anything else unknown is still an error
        parser.parse_args(["train", "--bogus=1"])
    assert split_overrides(["--config.a=1", "x", "--config.b", "2"]) == (
        ["--config.a=1", "--config.b=2"], ["x"])
