"""`seeker-jax parity --hf-dir`: compares both frameworks on a user's folder, exit code says."""
import re

from seeker_jax.cli.main import main


def test_parity_command_on_a_folder(tiny_hf_untied, capsys):
    assert main(["parity", "--hf-dir", tiny_hf_untied.path]) == 0
    out = capsys.readouterr().out
    errors = [float(x) for x in re.findall(r"max \|logits diff\| (\S+)", out)]
    assert len(errors) == 5 and max(errors) <= 1e-4
    assert "PASS" in out

    # A tolerance below float32 noise must be reported as a failure, with exit code 1.
    assert main(["parity", "--hf-dir", tiny_hf_untied.path, "--tol", "0"]) == 1
    assert "FAIL" in capsys.readouterr().out
