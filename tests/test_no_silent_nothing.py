"""Runs that would do nothing say so: an empty synth split warns with what to change, passk
keeping no question warns, and GRPO on an empty or missing split stops with one clear error
line before anything loads (not a StopIteration from the data iterator)."""
import pytest

from seeker_jax.cli.main import main
from seeker_jax.data.records import count_records, split_path, write_records


def test_synth_warns_about_empty_splits(tmp_path, capsys):
    out = tmp_path / "w"
    assert main(["synth", "--out", str(out), "--num", "2", "--config",
                 "configs/synth.py:tiny"]) == 0
    empty = [s for s in ("train", "val", "test") if count_records(split_path(out, s)) == 0]
    assert empty  # 2 records over 3 splits
    err = capsys.readouterr().err
    assert f"warning: synth: split(s) {', '.join(empty)} got no records" in err
    assert "raise --num" in err


@pytest.mark.parametrize("records", [None, []])
def test_grpo_on_an_empty_or_missing_split_is_one_error_line(tmp_path, capsys, monkeypatch,
                                                              records):
    import seeker_jax.rl.grpo as grpo

    monkeypatch.setattr(grpo, "train", lambda *a, **k: pytest.fail("training started"))
    if records is not None:
        write_records(split_path(tmp_path / "data", "rl"), records)
    code = main(["grpo", "--workdir", str(tmp_path / "run"),
                 f"--config.data.root={tmp_path / 'data'}", "--config.data.split=rl"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert (("has no records" in err[0] and "rerun passk with a larger --k" in err[0])
            if records is not None else "rl.array_record does not exist" in err[0])


def test_passk_keeping_nothing_warns(tmp_path, capsys, monkeypatch):
    """The CLI's funnel from passk's own filter over counts where every question is solved
    always or never (the rollouts, a model's work, are what the stand-in skips)."""
    import seeker_jax.eval.passk as passk

    write_records(split_path(tmp_path, "train"), [{"id": "a"}, {"id": "b"}])
    kept, funnel = passk.passk_filter({"a": (0, 4), "b": (4, 4)})
    assert kept == []
    monkeypatch.setattr(passk, "build_rl_split", lambda *a, **k: {"k": 4, **funnel})
    assert main(["passk", "--ckpt", str(tmp_path), "--data", str(tmp_path), "--k", "4"]) == 0
    err = capsys.readouterr().err
    assert "warning: passk kept no question" in err and "raise --k or --config.rollout.temperature" in err
