"""The layering and style rules, enforced: import-linter's contracts (.importlinter), ruff
(ruff.toml), and no bench script importing the tests.

import-linter reads the package from the filesystem, but the root folders models/, env/, data/,
rl/ map into `seeker_jax` only through setup.py's package_dir (an editable install resolves
them with an import hook that grimp does not see). So the contracts run on a copy of the
package laid out as `pip install .` lays it out, built from setup.py's own SUBPACKAGES.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def subpackages() -> dict[str, str]:
    """setup.py's SUBPACKAGES (package -> folder), read without running setup.py."""
    for node in ast.walk(ast.parse((ROOT / "setup.py").read_text())):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "SUBPACKAGES":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py defines no SUBPACKAGES")


def installed_layout(dest: Path) -> Path:
    """The package's .py files copied under dest as an install lays them out."""
    for package, folder in subpackages().items():
        out = dest.joinpath(*package.split("."))
        out.mkdir(parents=True, exist_ok=True)
        for f in (ROOT / folder).glob("*.py"):
            shutil.copy(f, out / f.name)
    return dest


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    exe = BIN / "lint-imports"
    if not exe.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    return subprocess.run([str(exe), str(ROOT / ".importlinter")], cwd=tree, capture_output=True,
                          text=True, env={"PYTHONPATH": str(tree), "PATH": str(BIN)})


def test_import_contracts_hold(tmp_path):
    proc = lint_imports(installed_layout(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_import_contracts_catch_an_upward_import(tmp_path):
    """The check can fail: a models/ module importing rl/ breaks the layers contract."""
    tree = installed_layout(tmp_path)
    (tree / "seeker_jax" / "models" / "upward.py").write_text(
        "from seeker_jax.rl import advantages\n")
    proc = lint_imports(tree)
    assert proc.returncode != 0
    assert "seeker_jax.models.upward -> seeker_jax.rl.advantages" in proc.stdout


def test_ruff_passes():
    try:
        import ruff  # noqa: F401
    except ImportError:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_bench_does_not_import_tests():
    """Benchmarks build their models from the package (seeker_jax.models.qwen3_vl.tiny), never
    from tests/: neither a test helper module nor tests/ on sys.path."""
    test_modules = {p.stem for p in (ROOT / "tests").glob("*.py")} | {"tests"}
    offenders = {}
    for script in sorted((ROOT / "bench").glob("*.py")):
        bad = _imported_modules(script) & test_modules
        if '"tests"' in script.read_text() or "'tests'" in script.read_text():
            bad.add("tests/ on sys.path")
        if bad:
            offenders[script.name] = sorted(bad)
    assert not offenders, offenders
