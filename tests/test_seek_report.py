"""bench/seek_report.py: per-seed and pooled rows from bench/seek.py's stage files, the paired
interval computed on the same questions, the no-tool row against its own one-turn start."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report_module():
    spec = importlib.util.spec_from_file_location("seek_report", ROOT / "bench" / "seek_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _episodes(correct, tiou, calls):
    n = len(correct)
    return {"correct": np.asarray(correct).tolist(), "tiou": list(tiou), "tool_calls": list(calls),
            "answered": [1] * n, "reward": [0.0] * n, "answers": ["red"] * n}


def test_rows_pool_the_seeds_per_question(tmp_path, report_module):
    n = 40
    before = np.zeros(n, int)
    before[:4] = 1                                    # 10% before
    after1 = before.copy()
    after1[4:20] = 1                                  # 50%
    after2 = before.copy()
    after2[4:12] = 1                                  # 30%
    (tmp_path / "before.json").write_text(json.dumps({
        "tools": _episodes(before, [0.125] * n, [1] * n),
        "one_turn": _episodes(np.zeros(n, int), [0.0] * n, [0] * n)}))
    (tmp_path / "grpo_s1.json").write_text(json.dumps(_episodes(after1, [1.0] * n, [1] * n)))
    (tmp_path / "grpo_s2.json").write_text(json.dumps(_episodes(after2, [0.5] * n, [1] * n)))
    notool = np.zeros(n, int)
    notool[:8] = 1
    (tmp_path / "notool.json").write_text(json.dumps(_episodes(notool, [0.0] * n, [0] * n)))
    out = report_module.report(str(tmp_path), (1, 2, 3))
    rows = {r["run"].split(" (")[0]: r for r in out["rows"]}
    assert set(rows) == {"GRPO seed 1", "GRPO seed 2", "pooled", "no-tool ablation"}
    assert rows["GRPO seed 1"]["gain"] == pytest.approx(0.4)
    assert rows["GRPO seed 1"]["ci95"][0] > 0.2            # 16 of 40 questions flipped, none back
    assert rows["GRPO seed 2"]["gain"] == pytest.approx(0.2)
    assert rows["pooled"]["gain"] == pytest.approx(0.3)
    assert rows["pooled"]["after"]["tiou"] == pytest.approx(0.75)
    assert rows["pooled"]["before"]["tiou"] == pytest.approx(0.125)
    assert rows["no-tool ablation"]["before"]["correct"] == 0.0
    assert rows["no-tool ablation"]["gain"] == pytest.approx(0.2)
    text = (tmp_path / "report.md").read_text()
    assert "| GRPO seed 1 | 10.0% | 50.0% | +40.0% [" in text


def test_tools_off_row_is_paired_with_its_own_start(tmp_path, report_module):
    """The tools-off ablation (bench/seek.py --protocol 3 --only tools_off) is compared with
    the SFT model under the same profile (before.json's "tools_off"), not with tools on."""
    n = 20
    start, after = np.zeros(n, int), np.zeros(n, int)
    start[:2], after[:5] = 1, 1
    (tmp_path / "before.json").write_text(json.dumps({
        "tools": _episodes(np.zeros(n, int), [0.125] * n, [1] * n),
        "one_turn": _episodes(np.zeros(n, int), [0.125] * n, [1] * n),
        "tools_off": _episodes(start, [0.0] * n, [0] * n)}))
    (tmp_path / "tools_off.json").write_text(json.dumps(_episodes(after, [0.0] * n, [0] * n)))
    rows = report_module.report(str(tmp_path), (7, 8, 9))["rows"]
    assert [r["run"] for r in rows] == ["tools-off ablation (every call an error)"]
    assert rows[0]["before"]["correct"] == pytest.approx(0.1)
    assert rows[0]["gain"] == pytest.approx(0.15)


def test_the_command_line_reports_the_protocol_of_its_folder(report_module):
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        assert report_module.protocol_seeds("/w/p3") == (7, 8, 9)
        assert report_module.protocol_seeds("/w/p2/") == (1, 2, 3)
        assert report_module.protocol_seeds("/w") == (1, 2, 3)
    finally:
        sys.path.remove(str(ROOT / "bench"))
