"""`seeker-jax convert` / `export` run for real: through `cli.main` and as a subprocess.

Reference: the HF folder transformers wrote (every tensor, cast to bf16 the way torch casts,
must come back bit for bit) and the tokenizer files next to it (copied through unchanged).
"""
import json
import os
import shutil
import subprocess
import sys

import torch

from seeker_jax.cli.main import main
from seeker_jax.models.qwen3_vl.hf_io import INDEX
from tensor_files import assert_bit_exact, hf_tensors, no_partials

ASSETS = {"tokenizer_config.json": '{"model_max_length": 1024}',
          "chat_template.jinja": "{% for m in messages %}{{ m.content }}{% endfor %}"}


def test_convert_then_export_from_the_command_line(tiny_hf_untied, tmp_path, capsys):
    hf_dir, ckpt, out = (str(tmp_path / n) for n in ("hf", "ckpt", "out"))
    shutil.copytree(tiny_hf_untied.path, hf_dir)  # the tokenizer assets are added to a copy
    hf = tiny_hf_untied.torch_model
    for name, text in ASSETS.items():
        with open(os.path.join(hf_dir, name), "w") as f:
            f.write(text)

    assert main(["convert", "--hf-dir", hf_dir, "--out", ckpt, "--dtype", "bfloat16"]) == 0
    assert "convert: 93 tensors" in capsys.readouterr().out
    assert set(ASSETS) <= set(os.listdir(ckpt))

    # the exported folder: bf16 tensors equal to torch's own cast, sharded, assets back
    proc = subprocess.run([sys.executable, "-m", "seeker_jax.cli.main", "export", "--ckpt", ckpt,
                           "--out", out, "--max-shard-size", "200KB"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "export: 93 tensors" in proc.stdout
    want = {k: v.to(torch.bfloat16) for k, v in hf.state_dict().items()}
    assert_bit_exact(want, hf_tensors(out))
    assert len(set(json.load(open(os.path.join(out, INDEX)))["weight_map"].values())) > 1
    for name, text in ASSETS.items():
        assert open(os.path.join(out, name)).read() == text
    assert json.load(open(os.path.join(out, "config.json")))["dtype"] == "bfloat16"

    # a second export onto the same folder is refused with the reason, and changes nothing
    assert main(["export", "--ckpt", ckpt, "--out", out]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert_bit_exact(want, hf_tensors(out))
    assert main(["export", "--ckpt", ckpt, "--out", out, "--overwrite"]) == 0
    assert os.listdir(out).count("model.safetensors") == 1 and no_partials(str(tmp_path))


def test_bad_folder_reports_an_error_not_a_traceback(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["convert", "--hf-dir", str(empty), "--out", str(tmp_path / "c")]) == 2
    assert "has no config.json" in capsys.readouterr().err
    assert main(["export", "--ckpt", str(empty), "--out", str(tmp_path / "e")]) == 2
    assert "holds no parameters" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "c") and not os.path.exists(tmp_path / "e")


def test_convert_with_a_mesh_places_parameters_sharded(tiny_hf_untied, tmp_path, capsys):
    """--mesh fsdp=4,tensor=2 on 8 fake devices: parameters are sharded by the logical-axis
    rules as they are read, and the checkpoint still exports bit-exact."""
    import jax
    from jax.sharding import PartitionSpec

    from seeker_jax.checkpointing.convert import mesh_placer, parse_mesh

    (hf_dir, hf), ckpt, out = tiny_hf_untied, str(tmp_path / "ckpt"), str(tmp_path / "out")
    place = mesh_placer(hf_dir, parse_mesh("fsdp=4,tensor=2"))
    up = place(("model", "language_model", "layers", 0, "mlp", "up_proj", "kernel"),
               jax.numpy.zeros((64, 128)))
    assert up.sharding.spec == PartitionSpec("fsdp", "tensor")  # (embed, mlp)
    assert len(up.sharding.device_set) == 8

    assert main(["convert", "--hf-dir", hf_dir, "--out", ckpt, "--mesh", "fsdp=4,tensor=2"]) == 0
    assert main(["export", "--ckpt", ckpt, "--out", out]) == 0
    assert_bit_exact(hf.state_dict(), hf_tensors(out))

    capsys.readouterr()
    assert main(["convert", "--hf-dir", hf_dir, "--out", str(tmp_path / "x"),
                 "--mesh", "fsdp=3"]) == 2
    assert "has 3 devices; this host has 8" in capsys.readouterr().err
