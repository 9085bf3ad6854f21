"""A new user's whole path, exactly as docs/data.md's "From your own checkpoint and records"
lists it: a tiny random HF Qwen3-VL (the Qwen vocabulary) and five hand-written records go
convert -> data import -> data show -> sft -> grpo -> eval -> serve (one chat request on
127.0.0.1) -> export -> transformers.

Each command runs through the CLI's `main` in-process (serve in a subprocess, as a user
starts it), with the small settings the walkthrough gives. Each step's outputs are checked,
not only its exit code: the splits hold what import.json says, checkpoints exist at the step
asked for, eval's `n` is the test split's size, the server's reply is a chat completion, and
transformers' logits of the export equal ours of the GRPO checkpoint.
"""
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from seeker_jax.cli.main import main
from seeker_jax.data.records import count_records, split_path

QUESTIONS = [  # (question, answer, dimension): a code, a name, either is accepted
    ("What does the person in the red box pick up?\nA. a knife\nB. a cup", "B", "OA"),
    ("Which way does the marked object move?\nA. left\nB. right", "A", "HA"),
    ("What color is the object in the box?\nA. red\nB. blue", "A", 1),
    ("How many times does the marked person wave?\nA. once\nB. twice", "B", "CR"),
    ("What is the boxed object?\nA. a ball\nB. a hat", "A", "OD"),
]
TOOL_TURN = ('<think>I look at the marked frame.</think>\n<tool_call>\n{"name": '
             '"view_visual_prompt", "arguments": {"frame_path": "frame"}}\n</tool_call>')
SFT = ["--config", "configs/sft.py:tiny_synth", "--config.steps=2", "--config.checkpoint_every=2",
       "--config.data.batch_size=1",
       "--config.data.buckets=(1024,)"]
GRPO = ["--config", "configs/grpo.py:tiny_synth", "--config.steps=1", "--config.rollout.n=2",
        "--config.rollout.prompts_per_step=1", "--config.rollout.minibatches=1",
        "--config.rollout.max_new_tokens=16", "--config.rollout.max_turns=2"]
EVAL = ["--config.max_len=2048", "--config.max_new_tokens=16", "--config.batch_size=2"]
LOGITS_TOL = 1e-4  # float32 both sides: the tolerance of tests/test_qwen3_vl_parity.py


def write_user_files(base: Path) -> Path:
    """What the user brings: an HF folder (hf/) and mine/records.jsonl over small real mp4s
    and a marked frame per video (a red box drawn on one frame)."""
    from PIL import Image, ImageDraw

    from seeker_jax.env.testing import index_frame, write_index_video
    from seeker_jax.models.qwen3_vl.tiny import save_tiny_hf

    save_tiny_hf(str(base / "hf"), vocab="qwen", scale=5.0)
    mine = base / "mine"
    (mine / "videos").mkdir(parents=True)
    (mine / "frames").mkdir()
    with open(mine / "records.jsonl", "w") as f:
        for i, (question, answer, dimension) in enumerate(QUESTIONS):
            write_index_video(mine / "videos" / f"clip{i}.mp4", 40, fps=10)
            frame = Image.fromarray(index_frame(12, 96, 128))
            ImageDraw.Draw(frame).rectangle((30, 20, 80, 70), outline=(255, 0, 0), width=3)
            frame.save(mine / "frames" / f"clip{i}.png")
            f.write(json.dumps({
                "video_id": f"clip{i}", "video_path": f"videos/clip{i}.mp4",
                "frame_path": f"frames/clip{i}.png", "question": question, "answer": answer,
                "dimension": dimension,
                "teacher_turns": [TOOL_TURN, f"<think>The box shows it.</think>\n"
                                             f"<answer>{answer}</answer>"]}) + "\n")
    return mine / "records.jsonl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(spec: str, port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "seeker_jax.cli.main", "serve", "--model", spec,
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_healthy(proc: subprocess.Popen, url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}:\n{proc.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=2) as r:
                if json.load(r)["status"] == "ok":
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    pytest.fail("serve did not become healthy")


# Slow (~90 s, eight CLI processes): each command on the path has its own default-suite tests.
@pytest.mark.slow
def test_a_new_user_goes_from_an_hf_folder_and_five_records_to_an_export(
        tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records = write_user_files(tmp_path)

    assert main(["convert", "--hf-dir", "hf", "--out", "ckpt"]) == 0
    assert (tmp_path / "ckpt" / "params").is_dir()

    assert main(["data", "import", str(records), "--out", "data", "--val-fraction", "0.4",
                 "--test-fraction", "0.2"]) == 0
    splits = json.loads((tmp_path / "data" / "import.json").read_text())["splits"]
    assert splits == {"train": 2, "val": 1, "test": 2}  # a hash of video_id, fixed
    assert {s: count_records(split_path("data", s)) for s in splits} == splits

    capsys.readouterr()
    assert main(["data", "show", "data", "--split", "train", "--index", "0"]) == 0
    shown = capsys.readouterr().out
    assert "carry the loss" in shown and "[[<think>I look at the marked frame." in shown

    assert main(["sft", "--workdir", "runs/sft", *SFT, "--config.model.init_from=ckpt",
                 "--config.data.root=data"]) == 0
    assert (tmp_path / "runs" / "sft" / "checkpoints" / "2").is_dir()
    rows = [json.loads(x) for x in open(tmp_path / "runs" / "sft" / "metrics.jsonl")]
    assert any("val_loss" in r for r in rows)  # the val split was read
    assert "note: sft" not in capsys.readouterr().err  # one full validation batch

    assert main(["grpo", "--workdir", "runs/grpo", *GRPO, "--config.model.init_from=runs/sft",
                 "--config.data.root=data", "--config.data.split=train"]) == 0
    grpo = tmp_path / "runs" / "grpo"
    assert (grpo / "checkpoints" / "1").is_dir()
    assert "reward" in json.loads((grpo / "metrics.jsonl").read_text().splitlines()[-1])
    assert list((grpo / "episodes").glob("iteration_*.html"))

    port = free_port()
    server = start_server("ckpt:runs/grpo", port)  # it loads while eval runs
    try:
        assert main(["eval", "--model", "ckpt:runs/grpo", "--data",
                     "data/records/test.array_record", "--workdir", "runs/eval", *EVAL]) == 0
        summary = json.loads((tmp_path / "runs" / "eval" / "summary.json").read_text())
        assert summary["overall"]["n"] == splits["test"]
        assert (tmp_path / "runs" / "eval" / "episodes.html").stat().st_size > 0

        import openai

        url = f"http://127.0.0.1:{port}/v1"
        wait_healthy(server, url)
        client = openai.OpenAI(base_url=url, api_key="none")
        model = client.models.list().data[0].id
        reply = client.chat.completions.create(
            model=model, max_tokens=8, temperature=0,
            messages=[{"role": "user", "content": "What is in the red box?"}])
        assert reply.object == "chat.completion" and reply.model == model
        choice = reply.choices[0]
        assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
        assert choice.finish_reason in ("stop", "length", "tool_calls")
        assert 0 < reply.usage.completion_tokens <= 8
    finally:
        server.send_signal(signal.SIGTERM)
        out = server.communicate(timeout=60)[0]
    assert server.returncode == 0 and "Traceback" not in out, out[-3000:]

    assert main(["export", "--ckpt", "runs/grpo", "--out", "hf_out"]) == 0
    from seeker_jax.checkpointing.checkpoint import load_model
    from seeker_jax.cli.demo import compare_with_transformers

    diff = compare_with_transformers(str(tmp_path / "hf_out"), load_model(str(grpo)))
    assert diff is not None and diff <= LOGITS_TOL, diff

    assert "Traceback" not in capsys.readouterr().err


def test_sft_says_why_there_is_no_validation_loss(tmp_path):
    """A val split smaller than one batch gives no validation batch (batches are full), as a
    missing one does: SFT's note names the file, its count and the batch size."""
    from seeker_jax.data.records import write_records
    from seeker_jax.training.sft import no_validation_note

    assert "holds 0 record(s)" in no_validation_note(str(tmp_path), 2)
    write_records(split_path(tmp_path, "val"), [{"id": "a"}])
    note = no_validation_note(str(tmp_path), 2)
    assert note.startswith(f"note: sft: {split_path(tmp_path, 'val')} holds 1 record(s)")
    assert "--config.data.batch_size=2" in note and "--val-fraction" in note


def test_eval_of_an_empty_split_is_one_error_line(tmp_path, capsys):
    from seeker_jax.data.records import write_records

    write_records(split_path(tmp_path / "data", "test"), [])
    code = main(["eval", "--model", f"ckpt:{tmp_path}", "--data",
                 str(split_path(tmp_path / "data", "test")), "--workdir", str(tmp_path / "e")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "holds no records" in err[0], err
    assert not (tmp_path / "e").exists()
