"""`seeker-jax pipeline` and `seeker-jax trajectories` end to end on the synthetic world against
the deterministic test servers (valid replies: seeker_jax/data/pipeline/testing.py), the readers' bad
records and videos, and user errors (one line, exit 2)."""
import json

import pytest

from seeker_jax.data.testing import ChatServer, reply_text
from seeker_jax.data.pipeline.testing import TruthHandler, default_script
from seeker_jax.cli.main import main as cli_main
from seeker_jax.config import load_config
from seeker_jax.data.pipeline.readers import (read_llava_video, read_qa_jsonl, read_synth,
                                              read_v2p, split_options)
from seeker_jax.data.pipeline.verify import VlmVerify
from seeker_jax.data.records import RecordSource
from seeker_jax.data.synth import synthesize
from seeker_jax.data.trajectories import teacher_turns


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_synth")
    synthesize(root, 5, seed=9, cfg=load_config("configs/synth.py:tiny", []), progress=False)
    return root


def test_pipeline_cli_and_trajectories_cli(root, tmp_path, capsys):
    samples = read_synth(root).samples
    with ChatServer(TruthHandler(samples, default_script(samples))) as server:
        assert cli_main(["pipeline", "--config", "configs/pipeline.py:synth", "--input", str(root),
                         "--workdir", str(tmp_path / "pipe"),
                         f"--config.api.model={server.url}#truth"]) == 0
    out = capsys.readouterr().out
    n = len(samples)
    assert f"pipeline: {n} -> {n} -> {n - 2} -> {n - 3}" in out
    dataset = RecordSource(tmp_path / "pipe" / "dataset", "train")
    records = [dataset[i] for i in range(len(dataset))]
    assert records and all(r["mask_backend"] == "oracle" for r in records)

    def scripted(body):  # the teacher: the scripted turns for the record the question names
        text = json.dumps(body["messages"])
        record = next(r for r in records if json.dumps(r["question"])[1:-1] in text)
        turn = sum(m["role"] == "assistant" for m in body["messages"])
        return reply_text(teacher_turns(record)[turn])

    with ChatServer(scripted) as server:
        assert cli_main(["trajectories", "--teacher", f"openai:{server.url}#teacher", "--data",
                         str(tmp_path / "pipe" / "dataset"), "--workdir", str(tmp_path / "traj"),
                         "--tries", "1"]) == 0
    table = json.loads((tmp_path / "traj" / "acceptance.json").read_text())
    assert sum(r["accepted"] for r in table.values()) == len(records)
    sft = RecordSource(tmp_path / "traj" / "sft", "train")
    assert len(sft) == len(records) and len(sft[0]["teacher_turns"]) == 3


def test_pipeline_user_errors(root, tmp_path, capsys):
    assert cli_main(["pipeline", "--config", "configs/pipeline.py:synth", "--input", str(root),
                     "--workdir", str(tmp_path / "w")]) == 2
    assert "needs a model: set --config.api.model=URL#MODEL" in capsys.readouterr().err
    assert cli_main(["pipeline", "--config", "configs/pipeline.py:default", "--input", str(root),
                     "--workdir", str(tmp_path / "w"), "--config.api.model=http://x/v1#m"]) == 2
    assert "masks.model_dir" in capsys.readouterr().err
    assert cli_main(["trajectories", "--teacher", "http://x/v1#m", "--data", str(root),
                     "--workdir", str(tmp_path / "t")]) == 2
    assert "openai:URL#MODEL" in capsys.readouterr().err


def test_readers_reject_bad_records_and_go_on(tmp_path, root):
    video = next((root / "videos").glob("*.mp4"))
    (tmp_path / "v.mp4").write_bytes(video.read_bytes())
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    lines = [{"video": "v.mp4", "question": "What color is the red car?", "answer": "red"},
             {"video": "missing.mp4", "question": "Q?", "answer": "a"},
             {"video": "v.mp4", "question": "Q?"},
             {"video": "v.mp4", "question": "Which?\nA. x\nB. y", "answer": "A", "id": "mc"}]
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    got = read_qa_jsonl(tmp_path / "qa.jsonl")
    assert [s["id"] for s in got.samples] == ["qa_000000", "mc"]
    assert got.samples[1]["options"] == {"A": "x", "B": "y"} and got.samples[1]["question"] == "Which?"
    assert [r.reason for _, r in got.rejected] == ["video_missing", "bad_record", "bad_record"]
    llava = [{"id": "l1", "video": "v.mp4", "conversations": [
        {"from": "human", "value": "<video>\nWhat is the circle doing?"},
        {"from": "gpt", "value": "Moving."}, {"from": "human", "value": "And the square?"},
        {"from": "gpt", "value": "Still."}]}, {"id": "l2", "video": "v.mp4"}]
    (tmp_path / "llava.json").write_text(json.dumps(llava))
    got = read_llava_video(tmp_path / "llava.json")
    assert [s["question"] for s in got.samples] == ["What is the circle doing?", "And the square?"]
    assert got.rejected[0][0] == "l2"
    v2p = [{"video_id": "a", "video_path": "v.mp4", "question": "Q?\n(A) one\n(B) two",
            "answer": "B", "dimension": 3}, {"video_id": "b", "video_path": "broken.mp4",
                                             "question": "Q?", "answer": "A"}]
    (tmp_path / "v2p.json").write_text(json.dumps(v2p))
    got = read_v2p(tmp_path / "v2p.json")
    assert got.samples[0]["options"] == {"A": "one", "B": "two"} and len(got.samples) == 2
    # a corrupt video passes the reader (it exists) and is rejected at stage 2, with its reason
    stage = VlmVerify("http://127.0.0.1:9/v1#unused", max_retries=0)
    out = stage(got.samples[1])
    assert out.value.reason == "video_corrupt" and "broken.mp4" in out.value.detail
    assert split_options("Just a question?") == ("Just a question?", {})

