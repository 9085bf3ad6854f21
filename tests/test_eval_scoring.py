"""Scoring: V2P-Bench's eval.py parity, per-group sums, the unparsable count, bootstrap CIs,
and the official extractors on hand-worked answers."""
import json

import numpy as np
import pytest

from seeker_jax.eval.protocols import (extract_v2p_official, extract_videomme,
                                       extract_videoseeker_official, get_protocol)
from seeker_jax.eval.readers import DIMENSIONS, read_samples
from seeker_jax.eval.runner import score_row
from seeker_jax.eval.scoring import Scored, bootstrap_interval, summarize


def official_v2p_eval(lines):
    """V2P-Bench eval/eval.py's logic, re-implemented here from its source (gaotiexinqu/
    V2P-Bench, eval/eval.py): dimension sums over codes, buckets by `< 240`, `< 1800`, else
    long, and `response[0] == answer`. Returns {name: (correct, total)}."""
    durations = [0, 240, 1800, 7200]
    dim_sum, dim_cor = [0] * 16, [0] * 16
    buckets = {"short": [0, 0], "medium": [0, 0], "long": [0, 0]}
    for line in lines:
        dim = line["dimension"]
        dim_sum[dim - 1] += 1
        b = ("short" if line["duration"] < durations[1] else
             "medium" if line["duration"] < durations[2] else "long")
        buckets[b][1] += 1
        if line["response"][0] == line["answer"]:
            dim_cor[dim - 1] += 1
            buckets[b][0] += 1
    out = {DIMENSIONS[i + 1]: (dim_cor[i], dim_sum[i]) for i in range(16)
           if i + 1 not in (8, 11, 15, 16) and dim_sum[i]}
    out.update({k: tuple(v) for k, v in buckets.items()})
    out["overall"] = (sum(dim_cor), sum(dim_sum))
    return out


def _v2p_file(tmp_path, n=60, seed=0):
    rng = np.random.default_rng(seed)
    (tmp_path / "v").mkdir()
    (tmp_path / "f").mkdir()
    lines = []
    responses = ["A", "B", "C", "D", "(A)", "!!!", "b", "D. the cat", "The answer is C", " A"]
    for i in range(n):
        vid = f"v{i}"
        (tmp_path / "v" / f"{vid}.mp4").write_bytes(b"x")
        frame = [f"{vid}_0.jpg", f"{vid}_1.jpg"] if i % 7 == 0 else f"{vid}.jpg"
        for f in ([frame] if isinstance(frame, str) else frame):
            (tmp_path / "f" / f).write_bytes(b"x")
        lines.append({"video_id": vid, "video_path": f"{vid}.mp4",
                      "duration": float(rng.choice([30, 239.9, 240, 1799, 1800, 4000])),
                      "question": "Q?\nA: a\nB: b\nC: c\nD: d", "answer": "ABCD"[i % 4],
                      "source": "S", "frame_path": frame,
                      "dimension": int(rng.choice(list(DIMENSIONS))), "category": 1,
                      "response": responses[int(rng.integers(len(responses)))]})
    path = tmp_path / "v2p.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    return path, lines


def test_v2p_official_scoring_equals_v2p_eval_py(tmp_path):
    path, lines = _v2p_file(tmp_path)
    samples = read_samples("v2p", path, tmp_path / "v", tmp_path / "f")
    assert all(s.error is None for s in samples)
    assert samples[0].frames == ("f/v0_0.jpg", "f/v0_1.jpg")  # a list of frames is kept
    protocol = get_protocol("v2p_official")
    rows = [score_row(s, protocol, [line["response"]], "no_tool_call_or_answer", [])
            for s, line in zip(samples, lines)]
    items = [Scored(r["id"], r["groups"], r["correct"], r["parsed"]) for r in rows]
    ours = summarize(items, ["dimension", "duration"], resamples=200)
    official = official_v2p_eval(lines)
    got = {k: (f["correct"], f["n"]) for k, f in ours["by"]["dimension"].items()}
    got.update({k: (f["correct"], f["n"]) for k, f in ours["by"]["duration"].items()})
    got["overall"] = (ours["overall"]["correct"], ours["overall"]["n"])
    assert got == official
    # unparsable: first character not a choice letter ("(A)", "!!!", "b", "The...", " A")
    bad = sum(line["response"][0] not in "ABCD" for line in lines)
    assert ours["overall"]["unparsable"] == bad > 0


def test_per_group_counts_add_up_to_overall(tmp_path):
    path, lines = _v2p_file(tmp_path, n=97, seed=3)
    samples = read_samples("v2p", path, tmp_path / "v", tmp_path / "f")
    protocol = get_protocol("v2p_official")
    items = [Scored(s.id, s.groups, **{k: r[k] for k in ("correct", "parsed")})
             for s, r in ((s, score_row(s, protocol, [x["response"]], "", []))
                          for s, x in zip(samples, lines))]
    summary = summarize(items, ["dimension", "duration"], resamples=100)
    for key in ("dimension", "duration"):
        figs = summary["by"][key].values()
        for field in ("n", "correct", "unparsable", "errors"):
            assert sum(f[field] for f in figs) == summary["overall"][field]


def test_parsed_only_figure_is_the_inflated_one():
    items = [Scored(str(i), {}, correct=i < 20, parsed=i < 30) for i in range(40)]
    f = summarize(items, [])["overall"]
    assert (f["accuracy"], f["accuracy_parsed_only"], f["unparsable"]) == (0.5, 20 / 30, 10)


def test_bootstrap_interval_only_from_30_and_brackets_the_mean():
    assert bootstrap_interval(np.ones(29)) is None
    x = (np.arange(200) % 4 == 0).astype(float)  # mean 0.25, se = sqrt(.25*.75/200) = 0.0306
    lo, hi = bootstrap_interval(x, resamples=4000)
    assert lo < 0.25 < hi
    # the normal-approximation half width is 1.96 * se = 0.060; the bootstrap agrees to 0.01
    assert abs((hi - lo) / 2 - 1.96 * np.sqrt(0.25 * 0.75 / 200)) < 0.01
    assert bootstrap_interval(x, resamples=500) == bootstrap_interval(x, resamples=500)


@pytest.mark.parametrize("turns,want", [
    (["<think>x</think><answer>B</answer>"], "B"),
    (["<think>x</think><tool_call>..</tool_call>", "<answer> c) red</answer><answer>A</answer>"],
     "C"),
    (["<answer>(B)</answer>"], None),   # its regex needs a letter first
    (["B"], None),                       # no <answer>: undetermined
])
def test_videoseeker_official_extraction(turns, want):
    assert extract_videoseeker_official(turns, None) == want


@pytest.mark.parametrize("text,want", [
    ("The best answer is: B", "B"), ("Answer: (C)", "C"), ("D", "D"),
    ("The correct answer is A. a dog", "A"), ("no idea", None)])
def test_videomme_extraction(text, want):
    assert extract_videomme([text], None) == want


def test_v2p_first_character_rule():
    assert extract_v2p_official(["B. red"], None) == "B"
    assert extract_v2p_official(["(B)"], None) is None
    assert extract_v2p_official([""], None) is None


def test_synthetic_split_reads_from_its_array_record(synth_world, tmp_path):
    """A dataset split as `seeker-jax synth` writes it: paths resolve from the dataset root,
    every record is read, a missing video is that sample's error, a corrupt file a clear one."""
    import shutil

    from seeker_jax.data.records import read_records, split_path, write_records
    from seeker_jax.eval.readers import ReadError

    root = tmp_path / "world"
    shutil.copytree(synth_world, root)  # broken splits are written beside the good one
    path = split_path(root, "train")
    want = read_records(root, "train", resolve=False)
    samples = read_samples("synthetic", path)
    assert len(samples) == len(want) > 0
    for s, rec in zip(samples, want):
        assert s.error is None and s.root == root.resolve()
        assert s.record.video_path == rec["video_path"] and s.answer == rec["answer"]
        assert (s.root / s.record.video_path).is_file()
        assert s.groups["prompt_type"] == rec["prompt_type"]
    gone = dict(want[0], video_path="videos/missing.mp4")
    write_records(root / "records" / "broken.array_record", [gone, *want[1:]])
    samples = read_samples("synthetic", root / "records" / "broken.array_record")
    assert "missing.mp4" in samples[0].error and all(s.error is None for s in samples[1:])
    bad = root / "records" / "corrupt.array_record"
    bad.write_bytes(b"not an array record at all")
    with pytest.raises(ReadError, match="ArrayRecord"):
        read_samples("synthetic", bad)
