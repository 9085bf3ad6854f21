"""The runner end to end on real mp4s and PNG frames, against a scripted OpenAI-compatible
server on 127.0.0.1 (seeker_jax/data/testing.py): what the model is sent (video frames and the
prompt frame after the question as image_url parts), bad records counted as errors, the
summaries, resume, and the videoseeker_official tool round."""
import json

import numpy as np
import pytest
from PIL import Image

from seeker_jax.data.testing import ChatServer, reply_text
from eval_envs import tiny_env
from seeker_jax.config import load_config
from seeker_jax.env.testing import index_frame, write_index_video
from seeker_jax.data.openai_content import unpatchify
from seeker_jax.eval.models import load_backend
from seeker_jax.eval.report import bar_labels
from seeker_jax.eval.protocols import get_protocol
from seeker_jax.eval.readers import read_samples
from seeker_jax.eval.runner import read_done, run_eval
from seeker_jax.models.processing import preprocess_image


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2p")
    (root / "videos").mkdir()
    (root / "frames").mkdir()
    write_index_video(root / "videos" / "a.mp4", 40, fps=10)
    Image.fromarray(index_frame(7, 96, 128)).save(root / "frames" / "a.png")
    base = {"video_id": "a", "video_path": "a.mp4", "duration": 4.0, "source": "S",
            "frame_path": "a.png", "category": 1}
    lines = [dict(base, question="Q1?\nA: x\nB: y", answer="A", dimension=1),
             dict(base, question="Q2?\nA: x\nB: y", answer="B", dimension=2),
             dict(base, question="Q3?", answer="A", dimension=3, video_path="gone.mp4"),
             {k: v for k, v in dict(base, question="Q4?", dimension=4).items()}]  # no answer
    path = root / "bench.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    return path, root


def test_unpatchify_inverts_preprocess_image():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    img = preprocess_image(rgb, 32 * 32, 64 * 96)
    back = unpatchify(img.pixel_values, img.grid_thw)
    assert back.shape == (2, 64, 96, 3)
    assert np.array_equal(back[0], rgb) and np.array_equal(back[1], rgb)  # exact (no resize)


def test_bad_records_are_errors_that_name_the_record(bench):
    path, root = bench
    samples = read_samples("v2p", path, root / "videos", root / "frames")
    errors = [s.error for s in samples]
    assert errors[:2] == [None, None]
    assert "record 2:a" in errors[2] and "gone.mp4" in errors[2]
    assert "record 3:a" in errors[3] and "answer" in errors[3]


def test_v2p_official_through_openai_endpoint_and_resume(bench, tmp_path):
    path, root = bench
    samples = read_samples("v2p", path, root / "videos", root / "frames")
    replies = {"Q1?": "A", "Q2?": "(B)"}  # the second is right but the official rule says no

    def handler(body):
        text = [p["text"] for p in body["messages"][-1]["content"] if p["type"] == "text"][-1]
        return reply_text(replies[text.split("\n")[0]])

    protocol = get_protocol("v2p_official")
    with ChatServer(handler) as server:
        backend, saved = load_backend(f"openai:{server.url}#tiny", batch_size=4, max_len=4096,
                                      max_new_tokens=64, max_turns=1)
        assert saved is None
        summary = run_eval(samples, backend, tiny_env("v2p_official"), protocol, tmp_path,
                           group_keys=["dimension", "duration"], meta={"model": "tiny"})
        first = list(server.requests)
        run_eval(samples, backend, tiny_env("v2p_official"), protocol, tmp_path,
                 group_keys=["dimension", "duration"])
        assert len(server.requests) == len(first) == 2  # the rerun asked nothing
    body = first[0]
    assert body["temperature"] == 0 and body["max_tokens"] == 64 and "tools" not in body
    assert [m["role"] for m in body["messages"]] == ["user"]  # no system prompt, no tools
    kinds = [p["type"] for p in body["messages"][0]["content"]]
    # the video (one frame list: 4 frames, each with its time), the question, the prompt frame
    assert kinds == ["video_url", "text", "image_url"]
    parts = body["messages"][0]["content"]
    video = parts[0]["video_url"]
    assert video["url"].startswith("data:video/png;base64,")
    assert len(video["url"].split(",")) == 1 + 4 and len(video["timestamps"]) == 4
    assert video["timestamps"][0] == video["timestamps"][1] < video["timestamps"][2]
    question = parts[1]["text"]  # requests run on threads: either sample may come first
    assert question.endswith(("Q1?\nA: x\nB: y", "Q2?\nA: x\nB: y"))
    o = summary["overall"]
    assert (o["n"], o["correct"], o["unparsable"], o["errors"]) == (4, 1, 1, 2)
    rows = read_done(tmp_path / "results.jsonl")
    assert len(rows) == 4 and rows["0:a"]["turns"] == ["A"] and rows["0:a"]["correct"]
    assert "gone.mp4" in rows["2:a"]["error"] and not rows["2:a"]["correct"]
    md = (tmp_path / "summary.md").read_text()
    assert "| overall | 4 | 1 | 25.0 | n < 30 | 1 | 2 |" in md
    assert (tmp_path / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((tmp_path / "summary.json").read_text())
    figures = {"overall": summary["overall"], **summary["by"]["dimension"]}
    assert bar_labels(figures)[0] == "1/4"  # every bar, a 0% group's too, says correct/n


def test_resume_after_a_torn_line(bench, tmp_path):
    path, root = bench
    samples = read_samples("v2p", path, root / "videos", root / "frames")[:2]
    with ChatServer(lambda body: reply_text("A")) as server:
        backend, _ = load_backend(f"openai:{server.url}#tiny", batch_size=1, max_len=4096,
                                  max_new_tokens=64, max_turns=1)
        run_eval(samples[:1], backend, tiny_env("v2p_official"), get_protocol("v2p_official"),
                 tmp_path, batch_size=1)
        with open(tmp_path / "results.jsonl", "a") as f:
            f.write('{"id": "1:a", "tur')  # killed mid-write
        summary = run_eval(samples, backend, tiny_env("v2p_official"),
                           get_protocol("v2p_official"), tmp_path, batch_size=1)
        assert len(server.requests) == 2
    assert summary["overall"]["n"] == 2


def test_videoseeker_official_tool_round_as_text(bench, tmp_path):
    path, root = bench
    samples = read_samples("v2p", path, root / "videos", root / "frames")[:1]
    call = ('<think>look</think><tool_call>\n{"name": "view_visual_prompt", "arguments": '
            '{"frame_path": "frames/a.png"}}\n</tool_call>')
    script = iter([call, "<think>ok</think><answer>A</answer>"])
    with ChatServer(lambda body: reply_text(next(script))) as server:
        backend, _ = load_backend(f"openai:{server.url}#tiny", batch_size=1, max_len=4096,
                                  max_new_tokens=64, max_turns=6)
        summary = run_eval(samples, backend, tiny_env("videoseeker_official"),
                           get_protocol("videoseeker_official"), tmp_path)
        second = server.requests[1]
    system = second["messages"][0]
    assert system["role"] == "system" and "view_visual_prompt" in system["content"]
    assert "crop_video" not in system["content"]  # only view_visual_prompt on V2P
    user = second["messages"][1]["content"]
    assert "<0.0 seconds>" in user[0]["text"]  # one image per frame after its timestamp
    assert "The visual prompt frame path for this video is: frames/a.png." in user[-1]["text"]
    assert second["messages"][-1]["role"] == "tool"  # serve renders it as <tool_response>
    tool = second["messages"][-1]["content"]
    assert [p["type"] for p in tool] == ["image_url", "text"]
    assert "The tool executed successfully" in tool[-1]["text"]
    assert summary["overall"]["correct"] == 1
    row = read_done(tmp_path / "results.jsonl")["0:a"]
    assert row["calls"][0]["name"] == "view_visual_prompt" and row["calls"][0]["error"] is None


def test_config_video_mode_and_tool_role_reach_the_backend(bench, tmp_path):
    """configs/eval.py's video_mode / tool_role go to the openai: backend; a typo is a clear
    error before any request (no server is needed to see it)."""
    from seeker_jax.errors import UserError
    from seeker_jax.eval.cli import run_eval_command

    path, root = bench
    for key, bad, name in (("video_mode", "mp4", "video_mode 'mp4'"),
                           ("tool_role", "system", "tool_role 'system'")):
        c = load_config("configs/eval.py:v2p_official", [f"--config.{key}={bad}"])
        with pytest.raises(UserError, match=name):
            run_eval_command(c, "openai:http://127.0.0.1:9#m", str(path), str(tmp_path / key),
                             str(root / "videos"), str(root / "frames"))
    backend, _ = load_backend("openai:http://127.0.0.1:9#m", batch_size=1, max_len=64,
                              max_new_tokens=8, max_turns=1, video_mode="images",
                              tool_role="user")
    assert (backend.video_mode, backend.tool_role) == ("images", "user")


def test_a_rerun_with_another_model_is_refused_not_relabelled(bench, tmp_path):
    """results.jsonl belongs to the run that made it: rerunning in the same folder with
    another --model (or protocol, data, config) is an error naming what differs, before any
    request; --limit and batch_size may change; overwrite deletes the old answers."""
    from seeker_jax.errors import UserError
    from seeker_jax.eval.cli import run_eval_command

    path, root = bench
    config = load_config("configs/eval.py:v2p_official")
    with ChatServer(lambda body: reply_text("A")) as server:
        def run(model, limit=None, overwrite=False, overrides=()):
            c = load_config("configs/eval.py:v2p_official", list(overrides))
            return run_eval_command(c, f"openai:{server.url}#{model}", str(path), str(tmp_path),
                                    str(root / "videos"), str(root / "frames"), limit,
                                    overwrite)

        assert run("m1", limit=1)["overall"]["n"] == 1
        asked = len(server.requests)
        assert run("m1", overrides=["--config.batch_size=2"])["overall"]["n"] == 4  # resumes
        assert len(server.requests) == asked + 1  # only the new runnable sample
        asked = len(server.requests)
        with pytest.raises(UserError, match=r"model: 'openai:.*#m1' -> 'openai:.*#m2'.*"
                                            r"new --workdir, or --overwrite"):
            run("m2")
        with pytest.raises(UserError, match=r"config.max_new_tokens: .* -> 5"):
            run("m1", overrides=["--config.max_new_tokens=5"])
        assert len(server.requests) == asked  # refused before any request
        summary = run("m2", overwrite=True)
        assert len(server.requests) == asked + 2  # both runnable samples asked again
    assert summary["model"].endswith("#m2") and summary["overall"]["n"] == 4
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 4
    assert config.protocol == json.loads((tmp_path / "run_key.json").read_text())["protocol"]


def test_a_ckpt_workdir_trained_further_is_another_model(bench, tmp_path):
    """`ckpt:WORKDIR` is keyed by the step folder it loads (the latest), so evaluating the
    same workdir after more training does not reuse the older step's answers."""
    from seeker_jax.eval.cli import run_key

    path, root = bench
    run = tmp_path / "sft"
    (run / "checkpoints" / "4" / "params").mkdir(parents=True)
    (run / "checkpoints" / "model_config.json").write_text("{}")
    config = load_config("configs/eval.py:agentic")
    key = run_key(config, f"ckpt:{run}", str(path), None, None)
    assert key["model"] == f"ckpt:{run / 'checkpoints' / '4'}"
    (run / "checkpoints" / "6" / "params").mkdir(parents=True)
    assert run_key(config, f"ckpt:{run}", str(path), None, None)["model"].endswith("/6")
    assert run_key(config, "ckpt:nowhere", str(path), None, None)["model"].endswith("/nowhere")


def test_results_from_before_runs_were_keyed_are_not_reused(tmp_path):
    """A results.jsonl without run_key.json (an older folder) may be any model's: refused,
    and --overwrite deletes it."""
    from seeker_jax.errors import UserError
    from seeker_jax.eval.runner import check_run_key

    (tmp_path / "results.jsonl").write_text('{"id": "0:a"}\n')
    with pytest.raises(UserError, match="written before runs were keyed.*--overwrite"):
        check_run_key(tmp_path, {"model": "m"})
    check_run_key(tmp_path, {"model": "m"}, overwrite=True)
    assert not (tmp_path / "results.jsonl").exists()
    assert json.loads((tmp_path / "run_key.json").read_text()) == {"model": "m"}
    check_run_key(tmp_path, {"model": "m"})  # the same run again: resumes
