"""Small promises the docs make: `tool --record` reads the datasets synth writes (its help
example is a command that works), convert/export folders get the umask's mode, the demo's
time in --help is the README's, and the docs' Python snippets run as written."""
import json
import os
import re
import shlex
from pathlib import Path

import numpy as np

from seeker_jax.cli.main import _COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


def test_tool_help_example_runs_on_what_synth_writes(tmp_path, capsys, monkeypatch):
    """The example's first line (synth) and second (tool on its train split), run as given."""
    monkeypatch.chdir(tmp_path)
    example = _COMMANDS["tool"].examples[0]
    for command in example.split(" && "):
        argv = shlex.split(command)
        assert argv[0] == "seeker-jax"
        if argv[1] == "synth":
            argv += ["--config", "configs/synth.py:tiny"]  # small videos; same names
        capsys.readouterr()
        assert main(argv[1:]) == 0, command
    result = json.loads(capsys.readouterr().out)
    call = result["calls"][0]
    assert call["name"] == "crop_video" and call["error"] is None
    assert len(call["frames"]) >= 1 and all(os.path.isfile(f["path"]) for f in call["frames"])


def test_staged_folders_get_the_umask_mode(tmp_path):
    from models.qwen3_vl.hf_io import staged_dir

    old = os.umask(0o022)
    try:
        with staged_dir(str(tmp_path / "out")) as tmp:
            Path(tmp, "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755


def test_demo_help_gives_the_readme_time():
    readme = re.search(r"`seeker-jax demo`, which takes about (\d+) minutes",
                       (ROOT / "README.md").read_text().replace("\n", " "))
    assert readme, "the README no longer states the demo's time"
    example = _COMMANDS["demo"].examples[0]
    assert f"about {readme.group(1)} minutes" in example


def python_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)


def test_python_snippets_in_readme_and_training_doc_run(tiny_hf):
    """Each ```python block runs as written, given a real model folder for the placeholder
    path and the inputs it names (a tiny text + image batch): no NameError, and the logits it
    makes cover every position, finite (the snippet loads in bfloat16; parity itself is
    tests/test_qwen3_vl_parity.py's)."""
    from seeker_jax.checkpointing.tiny import tiny_inputs

    blocks = python_blocks(ROOT / "README.md") + python_blocks(ROOT / "docs" / "training.md")
    assert blocks
    inp = tiny_inputs([[("text", 5), ("image", (4, 6)), ("text", 3)]])
    for block in blocks:
        code = block.replace("/path/to/Qwen3-VL-4B-Instruct", tiny_hf.path)
        scope = {"ids": inp.input_ids, "mask": inp.attention_mask, "pv": inp.pixel_values,
                 "grid": inp.image_grid_thw, "types": inp.mm_token_type_ids}
        exec(compile(code, "snippet", "exec"), scope)
        if "out" in scope:
            logits = np.asarray(scope["out"].logits, np.float32)
            assert logits.shape[:2] == inp.input_ids.shape and np.isfinite(logits).all()
