"""`seeker-jax data import` and `data show` on real files (index-frame mp4s, PNG frames): each
input format imported and read back by the readers SFT, GRPO and eval use; each validation
message; the loss marking of `data show` against the sequence SFT builds; docs/data.md's schema
blocks against the pydantic models (data/schema.py)."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seeker_jax.cli.main import main
from seeker_jax.data.records import MissingSplitError, RecordSource, make_dataset, read_records, \
    split_path, write_records
from seeker_jax.data.schema import RecordError, json_schemas, validate_record
from seeker_jax.env.testing import index_frame, write_index_video
from seeker_jax.eval.readers import read_samples

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """src/videos/{a,b}.mp4 (4 s, 3 s of index frames at 10 fps), src/frames/{a,b}.png. Read-only."""
    src = tmp_path_factory.mktemp("src")
    (src / "videos").mkdir()
    (src / "frames").mkdir()
    write_index_video(src / "videos" / "a.mp4", 40, fps=10, width=64, height=64)
    write_index_video(src / "videos" / "b.mp4", 30, fps=10, width=64, height=64)
    for name, i in (("a", 7), ("b", 3)):
        Image.fromarray(index_frame(i, 64, 64)).save(src / "frames" / f"{name}.png")
    return src


def _record(vid: str, **kw) -> dict:
    return {"video_id": vid, "video_path": f"videos/{vid}.mp4", "frame_path": f"frames/{vid}.png",
            "question": "What color is the marked object at 1.0 s?\nA. red\nB. blue",
            "answer": "B", **kw}


def _write(path: Path, rows, jsonl: bool = True) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) if jsonl else json.dumps(rows))
    return path


def _import(argv, capsys) -> tuple[int, str, str]:
    code = main(["data", "import", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_own_records_import_and_read_back_by_sft_grpo_and_eval(media, tmp_path, capsys):
    src = _write(media / "mine.jsonl", [_record("a", dimension="OA"),
                                        _record("a", dimension=2, duration=4),
                                        _record("b", dimension="13", category=5)])
    out = tmp_path / "ds"
    code, stdout, _ = _import([src, "--out", out], capsys)
    assert code == 0 and "3 record(s) (records)" in stdout and "train 3" in stdout
    sft = read_records(out, "train", resolve=False, use="sft")   # SFT's check and reader
    assert [r["dimension"] for r in sft] == ["OA", "HA", "SR"]    # codes, "13" and names -> names
    assert sft[2]["category"] == "5" and sft[1]["duration"] == 4.0
    assert sft[0]["duration"] == pytest.approx(4.0)               # probed from the video
    assert sft[0]["video_path"] == "videos/a.mp4" and sft[0]["frame_path"] == "frames/a.png"
    assert (out / "videos" / "a.mp4").read_bytes() == (media / "videos" / "a.mp4").read_bytes()
    assert len({r["id"] for r in sft}) == 3
    rl = next(iter(make_dataset(out, "train", shuffle=False, resolve=False)))  # GRPO's prompts
    assert rl["video_id"] in ("a", "b")
    samples = read_samples("v2p", split_path(out, "train"))      # eval's default format
    assert [s.error for s in samples] == [None] * 3
    assert [s.groups["dimension"] for s in samples] == ["OA", "HA", "SR"]
    assert json.loads((out / "import.json").read_text())["splits"] == {"train": 3}
    code, _, err = _import([src, "--out", tmp_path / "d2", "--test-fraction", "0.01"], capsys)
    assert code == 0 and "note: --test-fraction 0.01 sent no video to test (2 video(s)" in err


def test_v2p_jsonl_with_separate_roots_and_fractions(media, tmp_path, capsys):
    rows = [dict(_record(v), video_path=f"{v}.mp4", frame_path=[f"{v}.png"], dimension=d,
                 duration=3.0, source="V2P") for v, d in (("a", 1), ("b", 9), ("a", 14))]
    src = _write(tmp_path / "v2p.jsonl", rows)
    out = tmp_path / "ds"
    code, _, _ = _import([src, "--root", media / "videos", "--frame-root", media / "frames",
                          "--out", out, "--val-fraction", "0.5", "--link"], capsys)
    assert code == 0
    splits = {s: read_records(out, s, resolve=False) for s in ("train", "val")
              if split_path(out, s).exists()}
    by_video = {r["video_id"]: s for s, recs in splits.items() for r in recs}
    assert sum(len(r) for r in splits.values()) == 3 and set(by_video) == {"a", "b"}
    recs = [r for recs in splits.values() for r in recs]
    assert {r["dimension"] for r in recs} == {"OA", "FT", "GC"}
    assert all(r["frame_paths"] == [r["frame_path"]] for r in recs)
    assert (out / "videos" / "a.mp4").is_symlink()
    for split in splits:
        assert all(s.error is None for s in read_samples("v2p", split_path(out, split)))


def test_generic_qa_and_llava_video(media, tmp_path, capsys):
    qa = _write(media / "qa.jsonl", [{"video": "videos/a.mp4", "question": "How many?",
                                      "options": ["one", "two"], "answer": "B"}])
    llava = _write(media / "llava.json", [{"id": "v1", "video": "videos/b.mp4", "conversations": [
        {"from": "human", "value": "<video>\nWhere does it go?\nA. left\nB. right"},
        {"from": "gpt", "value": "A"}]}], jsonl=False)
    for path, fmt in ((qa, "qa_jsonl"), (llava, "llava_video")):
        out = tmp_path / fmt
        code, stdout, err = _import([path, "--out", out], capsys)
        assert code == 0 and fmt in stdout
        assert "neither frame_path nor teacher_turns" in err   # SFT needs a frame or turns
        [record] = read_records(out, "train", resolve=False, use="rl")
        samples = read_samples("synthetic", split_path(out, "train"))
        assert samples[0].error is None
        with pytest.raises(RecordError, match="field 'frame_path' missing; SFT without"):
            RecordSource(out, "train", use="sft")
    assert record["question"] == "Where does it go?\nA. left\nB. right"
    assert record["answer"] == "A" and record["video_path"] == "videos/b.mp4"
    assert record["options"] == {"A": "left", "B": "right"}


def test_sharegpt_and_verl_round_trip_to_the_same_training_sequence(media, tmp_path, capsys, tok):
    from seeker_jax.config import load_config
    from seeker_jax.data.pipeline.interop import export_sharegpt, export_verl
    from seeker_jax.data.trajectories import build_trajectory, teacher_turns
    from seeker_jax.env.config import EnvConfig

    first = tmp_path / "first"
    _import([_write(media / "rt.jsonl", [_record("a", id="q1"), _record("b", id="q2")]),
             "--out", first], capsys)
    records = [dict(r, teacher_turns=teacher_turns(r))
               for r in read_records(first, "train", resolve=False)]
    sharegpt = export_sharegpt(records, tmp_path / "sft_sharegpt.json", first)
    verl = export_verl(records, tmp_path / "rl.parquet", first)
    assert _import([sharegpt, "--root", first, "--out", tmp_path / "sg"], capsys)[0] == 0
    assert _import([verl, "--root", first, "--out", tmp_path / "verl"], capsys)[0] == 0

    env = EnvConfig.from_config(load_config(str(REPO / "configs/sft.py") + ":tiny_synth").env)
    formatter = env.formatter(tok)
    for original, back in zip(records, read_records(tmp_path / "sg", "train", resolve=False,
                                                    use="sft")):
        want = build_trajectory(original, formatter, str(first), env.episode_config())
        got = build_trajectory(back, formatter, str(tmp_path / "sg"), env.episode_config())
        assert np.array_equal(got.input_ids, want.input_ids)
        assert np.array_equal(got.loss_mask, want.loss_mask)
    for original, back in zip(records, read_records(tmp_path / "verl", "train", use="rl",
                                                    resolve=False)):
        assert {k: back[k] for k in ("id", "question", "answer", "video_path", "frame_path")} \
            == {k: original[k] for k in ("id", "question", "answer", "video_path", "frame_path")}


@pytest.mark.parametrize("row, message", [
    ({k: v for k, v in _record("a").items() if k != "answer"},
     "record 0 (video_id 'a'): field 'answer' missing; add the correct option letter, "
     'e.g. "answer": "B"'),
    (_record("a", answer=""), "record 0 (video_id 'a'): field 'answer' is empty; add the "
                              "correct option letter"),
    (_record("a", dimension="XX"),
     "record 0 (video_id 'a'): field 'dimension' is 'XX', not a known dimension; use a "
     "V2P-Bench code or name (1/OA, 2/HA, 3/OD,"),
    (_record("a", dimension=8), "field 'dimension' is 8, not a known dimension"),
    (_record("a", duration="long"), "record 0 (video_id 'a'): field 'duration' is 'long': "
                                    "input should be a valid number"),
    ({k: v for k, v in _record("a").items() if k != "video_id"},
     "record 0: field 'video_id' missing; add a name for the video"),
    (_record("a", video_path="videos/gone.mp4"),
     "record 0 (video_id 'a'): field 'video_path' names 'videos/gone.mp4', but there is no "
     "file at"),
    (_record("a", video_path="frames/a.png"),
     "record 0 (video_id 'a'): field 'video_path' names 'frames/a.png', which is not a "
     "readable video (video 'a.png' is not a video file"),
    ([1, 2], "record 0: is list, not a JSON object"),
])
def test_each_bad_field_is_one_line_naming_record_field_and_fix(media, tmp_path, capsys, row,
                                                                 message):
    path = _write(tmp_path / "bad.jsonl", [row, _record("b")])
    code, _, err = _import([path, "--root", media, "--out", tmp_path / "ds"], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert "--skip-invalid imports the rest" in err
    assert not (tmp_path / "ds").exists()   # nothing half-written: no records, no copies


def test_skip_invalid_empty_input_duplicates_and_existing_splits(media, tmp_path, capsys):
    path = _write(media / "mixed.jsonl", [_record("a", answer=""), _record("b")])
    out = tmp_path / "ds"
    code, stdout, err = _import([path, "--out", out, "--skip-invalid"], capsys)
    assert code == 0 and "train 1" in stdout and "skipped 1 bad record(s)" in err
    code, _, err = _import([path, "--out", out, "--skip-invalid"], capsys)
    assert code == 2 and "train.array_record exist(s); pass --overwrite" in err
    assert _import([path, "--out", out, "--skip-invalid", "--overwrite"], capsys)[0] == 0
    empty = media / "empty.jsonl"
    empty.write_text("\n")
    code, _, err = _import([empty, "--out", out], capsys)
    assert code == 2 and "no records (the file is empty)" in err
    twice = _write(media / "twice.jsonl", [_record("a", id="x"), _record("b", id="x")])
    code, _, err = _import([twice, "--out", tmp_path / "d2"], capsys)
    assert code == 2 and "record 1 (video_id 'b'): field 'id' 'x' occurs twice" in err
    code, _, err = _import([_write(media / "odd.jsonl", [{"foo": 1}]), "--out", out], capsys)
    assert code == 2 and "cannot tell its format" in err and "--format" in err


def test_a_hand_written_split_jsonl_names_the_command_that_imports_it(media, tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(media / "videos", root / "videos")
    shutil.copytree(media / "frames", root / "frames")
    (root / "records").mkdir()
    _write(root / "records" / "train.jsonl", [_record("a"), _record("b")])
    with pytest.raises(MissingSplitError) as e:
        RecordSource(root, "train")
    command = re.search(r"`seeker-jax (data import [^`]+)`", str(e.value)).group(1)
    assert command == (f"data import {root}/records/train.jsonl --out {root} --root {root} "
                       "--split train")
    code, stdout, _ = _import(command.split()[2:], capsys)
    assert code == 0 and "train 2" in stdout
    assert [r["video_path"] for r in read_records(root, "train", resolve=False)] == \
        ["videos/a.mp4", "videos/b.mp4"]                          # in place: nothing copied
    assert sorted(p.name for p in (root / "videos").iterdir()) == ["a.mp4", "b.mp4"]
    assert main(["sft", "--workdir", str(tmp_path / "w"), "--config.data.root",
                 str(tmp_path / "nothing")]) == 2
    assert "seeker-jax data import FILE" in capsys.readouterr().err


def test_trainers_refuse_a_bad_record_before_starting(media, tmp_path):
    root = tmp_path / "ds"
    write_records(split_path(root, "train"), [_record("a"), _record("b", dimension="ZZ")])
    for use in ("sft", "rl", "eval"):
        with pytest.raises(RecordError, match=r"train.array_record \(\w+ records\): record 1 "
                                              r"\(video_id 'b'\): field 'dimension' is 'ZZ'"):
            RecordSource(root, "train", use=use)


def test_eval_reader_names_the_record_field_and_fix(media):
    rows = [_record("a", dimension="OA", duration=4.0),
            {k: v for k, v in _record("b", dimension=1, duration=3.0).items() if k != "answer"},
            _record("b", dimension="nope", duration=3.0),
            {"video_id": "c", "video_path": "videos/a.mp4", "question": "Q?"}]
    samples = read_samples("v2p", _write(media / "eval.jsonl", rows))
    assert samples[0].error is None and samples[0].groups["dimension"] == "OA"
    assert samples[1].error == ("record 1:b: field 'answer' missing; add the correct option "
                                'letter, e.g. "answer": "B"')
    assert "field 'dimension' is 'nope', not a known dimension" in samples[2].error
    assert samples[3].error.startswith("record 3:c: field 'answer' missing; add the correct")
    assert samples[3].error.endswith("(also missing: 'duration', 'frame_path', 'dimension')")


def test_data_show_marks_exactly_the_tokens_sft_learns(media, tmp_path, capsys, tok):
    from seeker_jax.config import load_config
    from seeker_jax.data.trajectories import build_trajectory
    from seeker_jax.env.config import EnvConfig

    out = tmp_path / "ds"
    _import([_write(media / "show.jsonl", [_record("a", id="q1")]), "--out", out], capsys)
    assert main(["data", "show", str(out), "--index", "0"]) == 0
    text = capsys.readouterr().out
    record = read_records(out, "train", resolve=False, use="sft")[0]
    assert json.dumps(record, indent=2) in text
    sequence = text.split("bucket 1024):\n", 1)[1]
    env = EnvConfig.from_config(load_config(str(REPO / "configs/sft.py") + ":tiny_synth").env)
    segment = build_trajectory(record, env.formatter(tok), str(out), env.episode_config())
    learned = "".join(re.findall(r"\[\[(.*?)\]\]", sequence, re.S))
    assert learned == tok.decode(segment.input_ids[segment.loss_mask > 0].tolist())
    assert f"{int(segment.loss_mask.sum())} carry the loss" in text
    assert "[[<think>I view the marked frame.</think>" in sequence
    assert "<answer>B</answer><|im_end|>]]" in sequence
    assert re.search(r"<\|video_pad\|>x\d+", sequence) and "<|image_pad|>x" in sequence
    assert "What color is the marked object" in sequence.split("[[", 1)[0]   # the prompt: no loss
    assert main(["data", "show", str(out), "--index", "5"]) == 2
    assert "--index 5: split 'train'" in capsys.readouterr().err


def test_docs_show_the_schema_of_each_use():
    doc = (REPO / "docs" / "data.md").read_text()
    blocks = dict(re.findall(r"<!-- schema: (\w+) -->\n```json\n(.*?)\n```", doc, re.S))
    schemas = json_schemas()
    assert set(blocks) == set(schemas) == {"EvalRecord", "RLRecord", "SFTRecord"}
    for name, block in blocks.items():
        assert json.loads(block) == schemas[name], f"docs/data.md: {name} is stale; paste " \
            "`python -m seeker_jax.data.schema`"
    for example in re.findall(r"<!-- example: (\w+) -->\n```json\n(.*?)\n```", doc, re.S):
        validate_record(json.loads(example[1]), example[0])
