"""The episode viewer (seeker_jax/eval/viewer.py): a real eval run (our environment, a scripted
OpenAI-compatible server on 127.0.0.1, real mp4 and PNG) writes episodes.html; the page is
checked as text (escaping, the frames each call returned against the video's own frame
indices) and in a real headless browser (screenshot, DOM after the script ran, filters by URL
fragment and query, no console errors).

The browser tests need Debian's chromium; install it (as root) with:

    apt-get update && apt-get install -y chromium

Without it they skip, saying so.
"""
import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval_envs import tiny_env
from seeker_jax.data.testing import ChatServer, reply_text
from seeker_jax.env.testing import read_index
from seeker_jax.eval.models import load_backend
from seeker_jax.eval.protocols import get_protocol
from seeker_jax.eval.readers import read_samples
from seeker_jax.eval.runner import read_done, run_eval

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed: apt-get update && apt-get install -y "
                             "chromium (Debian's package) to run the episodes.html browser tests")
SCREENSHOT = Path("/tmp/episodes_screenshot.png")
HOSTILE = "What is <script>alert('pwned')</script> marked?\nA: a car\nB: a dog"
CROP = ('<think>look closer</think><tool_call>\n{"name": "crop_video", "arguments": '
        '{"video_path": "v1.mp4", "start_time": 2.0, "end_time": 6.0}}\n</tool_call>')
VIEW = ('<think>see the mark <img src=x onerror=alert(2)></think><tool_call>\n{"name": '
        '"view_visual_prompt", "arguments": {"frame_path": "v1_prompt.png"}}\n</tool_call>')
BAD_CROP = ('<think>too far</think><tool_call>\n{"name": "crop_video", "arguments": '
            '{"video_path": "v1.mp4", "start_time": 50.0, "end_time": 60.0}}\n</tool_call>')
# question (first line) -> the model's turns
SCRIPTS = {"What is <script>": [CROP, "<think>a car</think><answer>A</answer>"],
           "Where does it go?": [VIEW, BAD_CROP, "<think>left</think><answer>A</answer>"],
           "Which colour?": ["<think>no idea</think><answer>B</answer>"]}


@pytest.fixture(scope="module")
def eval_run(index_sample, tmp_path_factory):
    """An `agentic` eval of 4 V2P-style records over the index video: a crop then a right
    answer (its question holds a <script>), a frame view, a refused crop and a wrong answer,
    a wrong answer without tools, and a record whose video is missing (an error)."""
    root = index_sample / "videos"
    base = {"video_id": "v1", "video_path": "v1.mp4", "duration": 9.5, "source": "S",
            "frame_path": "v1_prompt.png", "category": 1}
    lines = [dict(base, question=HOSTILE, answer="A", dimension=1),
             dict(base, question="Where does it go?\nA: left\nB: right", answer="B", dimension=2),
             dict(base, question="Which colour?\nA: red\nB: blue", answer="A", dimension=1),
             dict(base, question="Q4?", answer="A", dimension=3, video_path="gone.mp4")]
    out = tmp_path_factory.mktemp("viewer_eval")
    data = out / "bench.jsonl"
    data.write_text("\n".join(json.dumps(x) for x in lines))
    samples = read_samples("v2p", data, root, root)

    def handler(body):
        user = " ".join(p.get("text", "") for m in body["messages"] if m["role"] == "user"
                        for p in (m["content"] if isinstance(m["content"], list) else []))
        turns = SCRIPTS[next(k for k in SCRIPTS if k in user)]
        done = sum(m["role"] == "assistant" for m in body["messages"])
        return reply_text(turns[done])

    workdir = out / "run"
    with ChatServer(handler) as server:
        backend, _ = load_backend(f"openai:{server.url}#tiny", batch_size=4, max_len=4096,
                                  max_new_tokens=64, max_turns=6)
        run_eval(samples, backend, tiny_env("agentic"), get_protocol("agentic"), workdir,
                 group_keys=["dimension", "duration"], meta={"model": "tiny", "data": "bench"})
    return workdir


def test_seeker_jax_eval_writes_the_page_and_says_where(eval_run, index_sample, tmp_path,
                                                        capsys):
    """Through the CLI: the page is written and named; viewer_mb may change on a resume (it
    changes no answer), and -1 writes no page."""
    from seeker_jax.cli.main import main

    root = index_sample / "videos"
    argv = ["eval", "--config", "configs/eval.py:agentic", "--data",
            str(eval_run.parent / "bench.jsonl"), "--video-root", str(root), "--frame-root",
            str(root)]
    with ChatServer(lambda body: reply_text("<answer>A</answer>")) as server:
        model = ["--model", f"openai:{server.url}#m"]
        assert main([*argv, *model, "--workdir", str(tmp_path / "a"), "--config.viewer_mb=0.5"]) == 0
        assert f"episodes: open {tmp_path / 'a' / 'episodes.html'} in a browser" in \
            capsys.readouterr().out
        asked = len(server.requests)
        assert main([*argv, *model, "--workdir", str(tmp_path / "a"), "--config.viewer_mb=2"]) == 0
        assert len(server.requests) == asked  # resumed: nothing asked again
        capsys.readouterr()
        assert main([*argv, *model, "--workdir", str(tmp_path / "b"), "--config.viewer_mb=-1"]) == 0
    assert len(_articles((tmp_path / "a" / "episodes.html").read_text())) == 4
    assert not (tmp_path / "b" / "episodes.html").exists()
    out = capsys.readouterr().out
    assert "eval agentic: 2/4" in out and "episodes:" not in out


def _articles(page: str) -> dict[str, str]:
    """episode id -> its <article> markup."""
    return {m.group(1): m.group(0) for m in re.finditer(
        r'<article class="ep" data-id="([^"]*)".*?</article>', page, re.S)}


def _image(url: str) -> np.ndarray:
    head, data = url.split(",", 1)
    assert head == "data:image/jpeg;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def test_the_page_shows_each_episode_escaped_with_the_frames_its_calls_returned(eval_run):
    page = (eval_run / "episodes.html").read_text()
    rows = read_done(eval_run / "results.jsonl")
    eps = _articles(page)
    assert list(eps) == ["0:v1", "1:v1", "2:v1", "3:v1"]
    assert [re.search(r'data-verdict="(\w+)"', a).group(1) for a in eps.values()] == \
        ["correct", "wrong", "wrong", "error"]
    # model and record strings are text: the only script is ours, the hostile ones escaped
    assert page.count("<script") == 1 and "<img src=x" not in page
    assert "What is &lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; marked?" in eps["0:v1"]
    assert "see the mark &lt;img src=x onerror=alert(2)&gt;" in eps["1:v1"]
    assert "script-src 'sha256-" in page and "http://" not in page and "https://" not in page
    # the crop's frames: each thumbnail shows the video frame its caption's time names
    crop = re.search(r'<div class="call" data-tool="crop_video">.*?</div></div>', eps["0:v1"],
                     re.S).group(0)
    shown = re.findall(r'<img src="([^"]+)" alt="([\d.]+) s">', crop)
    assert len(shown) == 4 and rows["0:v1"]["calls"][0]["error"] is None
    times = [float(t) for _, t in shown]
    assert times == sorted(times) and times[0] == 2.0 and times[-1] <= 6.0
    for url, t in shown:
        assert abs(read_index(_image(url)) / 10 - float(t)) <= 0.1  # the video is 10 fps
    # the visual-prompt frame (index frame 33) on top of every episode, and the viewed one
    marked = re.findall(r'<figure class="marked"><img src="([^"]+)"', eps["1:v1"])
    assert len(marked) == 1 and read_index(_image(marked[0])) == 33
    view = re.search(r'data-tool="view_visual_prompt">.*?alt="still image"', eps["1:v1"], re.S)
    assert view is not None
    # a refused call shows the environment's message and no frames; the answer vs truth
    assert "crop_video: start_time 50.0 is past the video&#x27;s end" in eps["1:v1"]
    assert '<b class="prediction">A</b> · truth: <b class="truth">B</b>' in eps["1:v1"]
    assert "gone.mp4" in eps["3:v1"] and "<img" not in eps["3:v1"]
    assert 'id="capped"' not in page
    assert '<img src="data:image/png;base64,' in page and 'alt="accuracy.png"' in page


def test_the_image_budget_caps_the_page_and_says_so(eval_run, index_sample, tmp_path):
    """With half the budget the full page used, images stop, the page says how many were left
    out, and the text of every episode is still there."""
    from seeker_jax.eval.runner import write_episodes

    root = index_sample / "videos"
    samples = read_samples("v2p", eval_run.parent / "bench.jsonl", root, root)
    summary = json.loads((eval_run / "summary.json").read_text())
    shutil.copy(eval_run / "accuracy.png", tmp_path / "accuracy.png")
    done = read_done(eval_run / "results.jsonl")
    full = (eval_run / "episodes.html").read_text()
    used = [len(u) for u in re.findall(r'src="(data:[^"]+)"', full)]
    budget = used[0] + sum(used[1:]) // 2  # the plot comes first, then half the frames
    path = write_episodes(samples, done, tiny_env("agentic"), tmp_path, summary,
                          max_bytes=budget)
    page = path.read_text()
    kept = [len(u) for u in re.findall(r'src="(data:[^"]+)"', page)]
    assert kept == used[:len(kept)] and 1 < len(kept) < len(used) and sum(kept) <= budget
    capped = re.search(r'id="capped">Images capped at [\d.]+ MiB: (\d+) image\(s\) left out, '
                       r'and the frames of (\d+) tool call', page)
    assert capped is not None and int(capped.group(1)) > 0 and "[image left out]" in page
    assert len(_articles(page)) == 4 and "What is &lt;script&gt;" in page


def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    """One headless chromium run on `url` (console messages on stderr)."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
         "--v=0", *args, url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = [line for line in proc.stderr.splitlines()
               if "CONSOLE" in line or "Uncaught" in line or "Content Security Policy" in line]
    assert not console, "\n".join(console)
    return proc


def _shown(dom: str) -> list[str]:
    """Ids of the episodes the script left visible."""
    tags = re.findall(r'<article class="ep"[^>]*>', dom)
    return [re.search(r'data-id="([^"]*)"', t).group(1) for t in tags
            if not re.search(r'\shidden(=""|\s|>)', t)]


@needs_chromium
def test_chromium_renders_the_page_without_console_errors(eval_run, tmp_path):
    url = (eval_run / "episodes.html").as_uri()
    chromium(tmp_path, url, f"--screenshot={SCREENSHOT}", "--window-size=1280,2000",
             "--hide-scrollbars")
    with Image.open(SCREENSHOT) as im:
        assert im.size == (1280, 2000)
        rgb = np.asarray(im.convert("RGB"))
    colours = np.unique(rgb.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 50  # text, badges and thumbnails, not a blank or one-colour page
    assert (rgb[:60].mean(axis=(0, 1)) < 100).all()  # the dark header rendered at the top
    dom = chromium(tmp_path, url, "--dump-dom").stdout
    assert 'data-shown="4">4 of 4 episodes shown<' in dom  # the script ran
    menu = re.search(r'<select data-filter="dimension">(.*?)</select>', dom, re.S).group(1)
    assert re.findall(r'<option value="(\w*)">', menu) == ["", "HA", "OA", "OD"]
    assert 'value="crop_video">called crop_video<' in dom
    assert "&lt;script&gt;alert(" in dom and "<script>alert" not in dom


@needs_chromium
def test_the_console_check_catches_a_script_error(tmp_path):
    """The check above can fail: a page whose script throws is caught."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body>x<script>undefinedFunction();</script></body></html>")
    with pytest.raises(AssertionError, match="Uncaught ReferenceError"):
        chromium(tmp_path, page.as_uri(), "--dump-dom")


@needs_chromium
def test_filters_come_from_the_url_fragment_and_query(eval_run, tmp_path):
    url = (eval_run / "episodes.html").as_uri()
    dom = chromium(tmp_path, url + "#dimension=OA&verdict=incorrect", "--dump-dom").stdout
    assert _shown(dom) == ["2:v1"] and "1 of 4 episodes shown" in dom
    dom = chromium(tmp_path, url + "?tools=crop_video", "--dump-dom").stdout
    assert _shown(dom) == ["0:v1", "1:v1"]
    dom = chromium(tmp_path, url + "#tools=none", "--dump-dom").stdout
    assert _shown(dom) == ["2:v1", "3:v1"]
    dom = chromium(tmp_path, url + "#tools=error", "--dump-dom").stdout
    assert _shown(dom) == ["1:v1"]


def _tb_texts(tb_dir: Path) -> dict[str, str]:
    """tag -> text of the add_text events in a TensorBoard folder (TFRecord framing read by
    hand: length u64, crc u32, the Event proto, crc u32)."""
    import struct

    from tensorboardX.proto import event_pb2

    out = {}
    for path in sorted(tb_dir.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (n,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + n])
            at += 12 + n + 4
            for value in event.summary.value:
                if value.tensor.string_val:
                    out[value.tag] = value.tensor.string_val[0].decode()
    return out


def test_grpo_logs_sampled_rollout_episodes_to_a_page_and_tensorboard(rollout_world, tmp_path):
    """rl/grpo_episodes.py on real rollout episodes (the tiny model, scripted turns, the real
    environment and rewards): the drawn episodes go to episodes/iteration_<N>.html with their
    reward parts and advantage, and to TensorBoard as preformatted text naming the frames'
    times; the draw depends on (seed, iteration) only."""
    from episode_scripts import ANSWER, BAD_JSON, CONFIG, CROP, VIEW
    from seeker_jax.agents.rollout import Rollout, RolloutConfig, env_sampler
    from seeker_jax.config import load_config
    from seeker_jax.env.episode import Episode, make_formatter
    from seeker_jax.generation.sampling import SamplingParams
    from seeker_jax.rl.grpo import Collected
    from seeker_jax.rl.grpo_episodes import log_episodes, sample_indices
    from seeker_jax.rl.rewards import RewardConfig, RewardModel, from_episode
    from seeker_jax.training.trainer import MetricsWriter

    root, records, tok, model = rollout_world
    fm = make_formatter(tok, CONFIG)
    scripts = [[CROP, ANSWER], [VIEW, ANSWER], [BAD_JSON, ANSWER], [ANSWER]]
    encode = lambda text: tok.encode(text, add_special_tokens=False)  # noqa: E731
    sampler = env_sampler(model, tok, batch_size=4, max_len=2048, params=SamplingParams(1.0),
                          decode_steps=16, max_chunk=256, min_bucket=256, seed=1)
    recs = [records[i // 2].to_dict() for i in range(4)]
    results, _ = Rollout(sampler, RolloutConfig(max_new_tokens=64), lambda i, t: (
        scripts[i][t] if t < len(scripts[i]) else None), encode).run(
        [Episode(records[i // 2], fm, root, CONFIG) for i in range(4)], group_size=2)
    reward = RewardModel(RewardConfig.from_config(load_config("configs/grpo.py:tiny_synth").reward))
    scores = reward.score([from_episode(r, rec) for r, rec in zip(results, recs)])
    batch = Collected(results=results, records=recs, contexts=[], scores=scores,
                      keep=np.ones(4, bool), stats=None)
    advantages = np.array([0.5, -0.5, 1.0, -1.0])
    writer = MetricsWriter(str(tmp_path))
    path = log_episodes(batch, advantages, iteration=7, seed=3, k=4, group_size=2,
                        root=str(root), config=CONFIG, workdir=str(tmp_path), writer=writer,
                        max_bytes=1 << 20)
    writer.close()
    assert path == tmp_path / "episodes" / "iteration_000007.html"
    eps = _articles(path.read_text())
    assert list(eps) == ["it7/g0/e0", "it7/g0/e1", "it7/g1/e0", "it7/g1/e1"]
    first = eps["it7/g0/e0"]
    assert re.findall(r'data-verdict="(\w+)"', first) == ["correct"]
    assert "<td>advantage</td>" in first and "<td>0.500</td>" in first
    assert "<td>format</td>" in first and "<td>accuracy</td>" in first
    crop = re.findall(r'alt="([\d.]+) s"', first)
    assert crop and float(crop[0]) == 1.0  # crop_video from 1 s
    assert "not valid JSON" in eps["it7/g1/e0"]
    texts = _tb_texts(tmp_path / "tb")
    assert sorted(texts) == [f"episodes/{k}/text_summary" for k in range(4)]
    text = texts["episodes/0/text_summary"]
    assert all(line.startswith("    ") for line in text.splitlines())
    assert ">>> crop_video(" in text and f"frames at {crop[0]}s" in text
    assert "reward: accuracy=1.000, format=" in text and "advantage=0.500" in text
    # the draw: k of the real episodes, the same for the same (seed, iteration)
    real = np.array([True, True, False, True])
    assert sample_indices(real, 2, 3, 7) == sample_indices(real, 2, 3, 7)
    assert set(sample_indices(real, 3, 3, 7)) == {0, 1, 3}
    assert sample_indices(real, 0, 3, 7) == [] and len(sample_indices(real, 2, 3, 8)) == 2
