"""User mistakes end in one line, `error: ...`, exit code 2, before any work starts.

One typical mistake per subcommand, run through the real `main` (in-process: an exception that
escaped would fail the test with its traceback), plus the issue's examples as real
subprocesses, where "no traceback" is checked on the stderr a user sees. A bug still shows its
traceback, and `--debug` shows one for user errors too.
"""
import importlib
import json
import os
import subprocess
import sys

import pytest

from seeker_jax import __version__
from seeker_jax.cli.main import _COMMANDS, main
from seeker_jax.config import ConfigArgumentError
from seeker_jax.errors import _USER_ERROR_TYPES, UserError, is_user_error


def user_error(argv, capsys) -> str:
    """Runs the CLI; asserts exit 2 and a single `error:` line on stderr; returns that line."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own checks
        code = e.code
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2, (code, captured.err)
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.fixture
def record_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"video_id": 1, "answer": "A"}))
    return str(path)


def test_synth_refuses_a_negative_count_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "world"
    line = user_error(["synth", "--out", str(out), "--num", "-3"], capsys)
    assert "argument --num: -3 must be at least 1" in line and "seeker-jax synth --help" in line
    assert not out.exists()
    line = user_error(["synth", "--out", str(out), "--num", "4", "--config",
                       "configs/synth.py:tinyy"], capsys)
    assert "unknown preset 'tinyy'" in line and not out.exists()


def test_tool_names_the_missing_fields(record_file, capsys):
    line = user_error(["tool", "--record", record_file, "--call", "<tool_call>{}</tool_call>"],
                      capsys)
    assert f"--record {record_file}: record 1 lacks ['video_path', 'question']" in line
    good = record_file.replace("bad.json", "good.json")
    with open(good, "w") as f:
        json.dump({"video_id": 1, "video_path": "v.mp4", "question": "Q?"}, f)
    line = user_error(["tool", "--record", good, "--index", "3", "--call", "x"], capsys)
    assert "--index 3" in line and "holds 1 record(s)" in line
    assert "does not exist" in user_error(["tool", "--record", good + ".nope", "--call", "x"],
                                          capsys)


def test_convert_needs_an_existing_folder(tmp_path, capsys):
    line = user_error(["convert", "--hf-dir", str(tmp_path / "nope"), "--out",
                       str(tmp_path / "c")], capsys)
    assert "argument --hf-dir:" in line and "does not exist" in line


def test_export_output_must_be_writable(tmp_path, capsys):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "file").write_text("x")
    line = user_error(["export", "--ckpt", str(tmp_path / "ckpt"), "--out",
                       str(tmp_path / "file" / "hf")], capsys)
    assert "argument --out: cannot create" in line and "is a file" in line


def test_parity_refuses_a_negative_tolerance(capsys):
    assert "argument --tol: -1.0 must be 0 or more" in user_error(["parity", "--tol", "-1"],
                                                                  capsys)


@pytest.mark.parametrize("override, expected", [
    (["--config.optimizer.lrr=1"], "config.optimizer.lrr does not exist (did you mean 'lr'?)"),
    (["--config", "configs/sft.py:tinyy"], "--config configs/sft.py:tinyy: unknown sft preset"),
    (["--config.steps=abc"], "config.steps: 'abc' is not an int"),
])
def test_sft_config_mistakes(tmp_path, capsys, override, expected):
    line = user_error(["sft", "--workdir", str(tmp_path / "w"), *override], capsys)
    assert expected in line
    assert not (tmp_path / "w").exists()  # refused before anything was written


def test_demo_refuses_zero_steps(tmp_path, capsys):
    line = user_error(["demo", "--workdir", str(tmp_path / "d"), "--steps", "0"], capsys)
    assert "argument --steps: 0 must be at least 1" in line and not (tmp_path / "d").exists()


def test_aot_checks_before_compiling(capsys):
    assert "--frames 3: give an even number" in user_error(
        ["aot", "--topology", "v5p:2x2x1", "--frames", "3"], capsys)
    assert "unknown chip 'v9x'" in user_error(["aot", "--topology", "v9x:2x2"], capsys)


def test_eval_names_the_bad_model_spec_and_missing_data(tmp_path, capsys):
    data = tmp_path / "bench.jsonl"
    data.write_text("")
    line = user_error(["eval", "--model", "foo:bar", "--data", str(data), "--workdir",
                       str(tmp_path / "w")], capsys)
    assert "--model 'foo:bar': use ckpt:PATH, hf:PATH or openai:URL#MODEL" in line
    line = user_error(["eval", "--model", "ckpt:x", "--data", str(tmp_path / "nope.jsonl"),
                       "--workdir", str(tmp_path / "w")], capsys)
    assert "argument --data:" in line and "does not exist" in line


def test_serve_names_a_missing_checkpoint(tmp_path, capsys):
    line = user_error(["serve", "--model", f"ckpt:{tmp_path / 'nope'}"], capsys)
    assert f"{tmp_path / 'nope'} does not exist" in line
    assert "use ckpt:PATH" in user_error(["serve", "--model", "nope"], capsys)


def test_grpo_refuses_a_bad_override(tmp_path, capsys):
    line = user_error(["grpo", "--workdir", str(tmp_path / "g"), "--config.rollout.n=x"], capsys)
    assert "is not an int" in line


def test_passk_needs_a_checkpoint_and_a_split(tmp_path, capsys):
    line = user_error(["passk", "--data", str(tmp_path)], capsys)
    assert "--ckpt" in line
    line = user_error(["passk", "--ckpt", str(tmp_path / "nope"), "--data", str(tmp_path)],
                      capsys)
    assert "nope does not exist" in line
    line = user_error(["passk", "--ckpt", str(tmp_path), "--data", str(tmp_path)], capsys)
    assert "train.array_record does not exist" in line
    line = user_error(["passk", "--ckpt", str(tmp_path), "--data", str(tmp_path), "--k", "0"],
                      capsys)
    assert "--k: 0 must be at least 1" in line


def test_pipeline_and_trajectories_mistakes(tmp_path, capsys):
    assert "needs a model: set --config.api.model=URL#MODEL" in user_error(
        ["pipeline", "--input", str(tmp_path), "--workdir", str(tmp_path / "w"),
         "--config", "configs/pipeline.py:synth"], capsys)
    assert "unknown pipeline preset" in user_error(
        ["pipeline", "--input", str(tmp_path), "--workdir", str(tmp_path / "w"),
         "--config", "configs/pipeline.py:synthh"], capsys)
    assert "--stop-after '3_mask'" in user_error(
        ["pipeline", "--input", str(tmp_path), "--workdir", str(tmp_path / "w"),
         "--stop-after", "3_mask"], capsys)
    assert "expected openai:URL#MODEL" in user_error(
        ["trajectories", "--teacher", "http://x/v1#m", "--data", str(tmp_path),
         "--workdir", str(tmp_path / "t")], capsys)


def test_data_names_the_missing_subcommand_and_bad_input(tmp_path, capsys):
    assert "required: {import,show}" in user_error(["data"], capsys)
    line = user_error(["data", "import", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)],
                      capsys)
    assert "nope.jsonl does not exist" in line
    (tmp_path / "r.jsonl").write_text('{"video_id": "a"}\n')
    line = user_error(["data", "import", str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "o"),
                       "--format", "records"], capsys)
    assert "record 0 (video_id 'a'): field 'video_path' missing" in line
    assert "no records for split 'train'" in user_error(["data", "show", str(tmp_path)], capsys)


def test_every_subcommand_is_covered_here():
    # a new subcommand gets a typical mistake above (and examples, below)
    assert set(_COMMANDS) == {"synth", "tool", "convert", "export", "parity", "sft", "grpo",
                              "passk", "demo", "aot", "eval", "serve", "pipeline", "trajectories",
                              "data"}


def test_debug_shows_the_traceback(tmp_path):
    for argv in (["--debug", "sft"], ["sft", "--debug"]):
        with pytest.raises(ConfigArgumentError, match="is not an int"):
            main([*argv, "--workdir", str(tmp_path / "w"), "--config.steps=abc"])


def test_a_bug_is_not_reported_as_a_user_error(tmp_path, monkeypatch):
    import seeker_jax.data.synth as synth

    def broken(*args, **kwargs):
        return {}["num_records"]  # a KeyError from our own code is a bug

    monkeypatch.setattr(synth, "synthesize", broken)
    with pytest.raises(KeyError):
        main(["synth", "--out", str(tmp_path / "w"), "--num", "2"])


def test_user_error_types_of_lower_layers_resolve():
    for name in _USER_ERROR_TYPES:
        module, cls = name.split(":")
        error_type = getattr(importlib.import_module(module), cls)
        assert issubclass(error_type, Exception) and is_user_error(error_type("x")), name
    assert is_user_error(UserError("x")) and is_user_error(ConfigArgumentError("x"))
    assert not is_user_error(ValueError("x")) and not is_user_error(KeyError("x"))


@pytest.mark.parametrize("name", sorted(_COMMANDS))
def test_help_has_examples_and_outputs(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    examples = out.split("examples:\n", 1)[1].split("\n\noutputs:\n", 1)
    assert [line for line in examples[0].splitlines() if line.startswith(f"  seeker-jax {name}")]
    assert examples[1].strip()


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"seeker-jax {__version__} (jax ") and len(out.splitlines()) == 1


@pytest.mark.parametrize("argv, expected", [
    (["sft", "--workdir", "w", "--config.optimizer.lrr=1"], "did you mean 'lr'?"),
    (["synth", "--out", "w", "--num", "-3"], "-3 must be at least 1"),
])
def test_the_installed_command_prints_one_line(tmp_path, argv, expected):
    """The issue's examples as a user runs them: stderr is exactly one line, exit 2."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    proc = subprocess.run([sys.executable, "-m", "seeker_jax.cli.main", *argv], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "w").exists()
