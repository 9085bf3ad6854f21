"""`seeker-jax parity --hf-dir`: compares both frameworks on a user's folder, exit code says."""
import re

from hf_reference import save_tiny_hf
from seeker_jax.cli.main import main


def test_parity_command_on_a_folder(tmp_path, capsys):
    save_tiny_hf(str(tmp_path), tied=False, seed=3)
    assert main(["parity", "--hf-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    errors = [float(x) for x in re.findall(r"max \|logits diff\| (\S+)", out)]
    assert len(errors) == 5 and max(errors) <= 1e-4
    assert "PASS" in out

    # A tolerance below float32 noise must be reported as a failure, with exit code 1.
    assert main(["parity", "--hf-dir", str(tmp_path), "--tol", "0"]) == 1
    assert "FAIL" in capsys.readouterr().out
