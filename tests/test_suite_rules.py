"""The test suite's own rules, checked rather than written down: no module under tests/ (test
module or helper) imports a test module, neither at its top nor inside a function or in the
code string a child process runs. Shared fixtures live in conftest.py, shared helpers in
modules whose names do not start with test_."""
import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
TEST_MODULE = re.compile(r"^test_\w+$")
IN_STRINGS = re.compile(r"^\s*(?:from\s+(test_\w+)\s+import|import\s+(test_\w+))", re.M)


def imported_test_modules(source: str) -> set[str]:
    """Names of test modules `source` imports, in code or in string literals (child code)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module.split(".")[-1] if node.module.startswith("tests.")
                     else node.module]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[-1] if a.name.startswith("tests.") else a.name
                     for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [a or b for a, b in IN_STRINGS.findall(node.value)]
        else:
            continue
        found |= {n for n in names if TEST_MODULE.match(n)}
    return found


def test_the_checker_sees_each_form():
    assert imported_test_modules("from test_rollout import world\nimport test_grpo") == {
        "test_rollout", "test_grpo"}
    assert imported_test_modules("def f():\n    from tests.test_x import y\n") == {"test_x"}
    assert imported_test_modules('CHILD = """\nimport os\nfrom test_grpo import script\n"""') \
        == {"test_grpo"}
    assert imported_test_modules("from hf_reference import segment\nimport testing") == set()


def test_no_module_under_tests_imports_a_test_module():
    offenders = {path.name: sorted(names) for path in sorted(TESTS.glob("*.py"))
                 if path.name != Path(__file__).name  # its examples above are strings
                 and (names := imported_test_modules(path.read_text()))}
    assert offenders == {}, ("move what they share into conftest.py (fixtures) or a helper "
                             f"module not named test_*: {offenders}")
