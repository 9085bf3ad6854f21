"""Stage 4's LLM phrasing (data/pipeline/phrase.py): the checks on a rewrite by hand-worked
example, the repair turn and the template fallback against a scripted chat server on
127.0.0.1 (seeker_jax/data/testing.py: a stand-in for a real LLM server, which cannot run here), and
the Render stage using it on a real mp4 with a real mask record."""
import numpy as np
import pytest

from seeker_jax.data.testing import ChatServer, Reply, reply_text
from seeker_jax.config import load_config
from seeker_jax.data.pipeline.masks import mask_record
from seeker_jax.data.pipeline.phrase import LlmPhrase, check_rewrite, mark_words
from seeker_jax.data.pipeline.render import Render
from seeker_jax.data.pipeline.run import stage_specs
from seeker_jax.data.visual_prompt import fill_placeholder
from seeker_jax.env.testing import write_index_video
from seeker_jax.errors import UserError

TEMPLATE = "How many times does <target> leave the frame?"
PHRASE = "the object inside the green triangle"
GOOD = '{"question": "How many times does the shape in the green triangle leave the frame?"}'


@pytest.mark.parametrize("phrase, color, want", [
    ("the object inside the green box", "green", ["green", "box"]),
    ("the object outlined in light blue", "light blue", ["light", "blue", "outlined"]),
    ("the object marked by the red dot", "red", ["red", "marked", "dot"]),
    ("the object the yellow arrow points to", "yellow", ["yellow", "arrow"]),
    ("object 3", "red", ["3"]),  # set-of-mark: the label, not the colour
])
def test_mark_words(phrase, color, want):
    assert mark_words(phrase, color) == want


def test_check_rewrite():
    ok = "How many times does the thing in the GREEN triangle leave  the frame?"
    assert check_rewrite(TEMPLATE, PHRASE, "green", ok) is None  # case and spaces aside
    assert "<target>" in check_rewrite(TEMPLATE, PHRASE, "green", TEMPLATE)
    assert "triangle" in check_rewrite(TEMPLATE, PHRASE, "green",
                                       "How many times does the green thing leave the frame?")
    assert "green" in check_rewrite(TEMPLATE, PHRASE, "green",
                                    "How many times does the triangled thing leave the frame?")
    assert "must stay" in check_rewrite(TEMPLATE, PHRASE, "green",
                                        "How often does the object in the green triangle exit?")


def _phrase(server):
    return LlmPhrase(f"{server.url}#tiny", attempts=2, json_mode=None, max_retries=0,
                     timeout_s=5.0)


def test_llm_phrase_good_repaired_and_fallback():
    with ChatServer(lambda body: reply_text(GOOD)) as server:
        stem, tokens, source, error = _phrase(server).stem(TEMPLATE, PHRASE, "green")
    assert (source, error) == ("llm", None) and tokens > 0
    assert stem == "How many times does the shape in the green triangle leave the frame?"
    body = server.requests[0]
    assert TEMPLATE in body["messages"][1]["content"] and PHRASE in body["messages"][1]["content"]

    replies = iter(['{"question": "How many times does the green one leave the frame?"}', GOOD])
    with ChatServer(lambda body: reply_text(next(replies))) as server:
        stem, _, source, _ = _phrase(server).stem(TEMPLATE, PHRASE, "green")
    assert source == "llm" and len(server.requests) == 2  # rejected once, repaired
    assert "triangle" in server.requests[1]["messages"][-1]["content"]  # told why

    for handler in (lambda body: reply_text("not json at all"),
                    lambda body: Reply(500, {"error": {"message": "boom"}})):
        with ChatServer(handler) as server:
            stem, _, source, error = _phrase(server).stem(TEMPLATE, PHRASE, "green")
        assert source == "template_fallback" and error
        assert stem == "How many times does the object inside the green triangle leave the frame?"


def _sample(tmp_path):
    video = write_index_video(tmp_path / "v.mp4", 20, fps=10)
    masks = np.zeros((2, 96, 128), bool)
    masks[:, 30:60, 40:90] = True
    base = {"id": "s1", "video_path": str(video), "duration": 2.0, "answer": "B",
            "question_template": TEMPLATE, "options": {"A": "0", "B": "1"},
            "target_tag": "square", "window": [0.0, 2.0]}
    return mask_record(base, "oracle", np.array([0, 10]), 10.0, masks)


def test_render_with_llm_phrase(tmp_path):
    sample = _sample(tmp_path)
    plain = Render(str(tmp_path / "a" / "frames"), types=["triangle"])(sample)
    assert plain.kept and plain.value["phrase_source"] == "template"
    color = plain.value["prompt_color"]
    phrase = plain.value["target_phrase"]
    rewrite = TEMPLATE.replace("<target>", f"the shape in the {color} triangle")

    with ChatServer(lambda body: reply_text(f'{{"question": "{rewrite}"}}')) as server:
        out = Render(str(tmp_path / "b" / "frames"), types=["triangle"],
                     phrase_llm={"model": f"{server.url}#tiny", "json_mode": None})(sample)
    assert out.kept and out.tokens > 0
    rec = out.value
    assert rec["phrase_source"] == "llm" and rec["question"].startswith(rewrite)
    options = plain.value["question"][len(fill_placeholder(TEMPLATE, phrase)):]
    assert options and rec["question"] == rewrite + options
    assert {k: v for k, v in rec.items() if k not in ("question", "phrase_source", "frame_path")} \
        == {k: v for k, v in plain.value.items()
            if k not in ("question", "phrase_source", "frame_path")}

    with ChatServer(lambda body: reply_text("{}")) as server:  # never valid: the template
        out = Render(str(tmp_path / "c" / "frames"), types=["triangle"],
                     phrase_llm={"model": f"{server.url}#tiny", "json_mode": None,
                                 "attempts": 2})(sample)
    assert out.value["phrase_source"] == "template_fallback" and out.value["phrase_error"]
    assert out.value["question"] == plain.value["question"]


def test_config_wiring(tmp_path):
    c = load_config("configs/pipeline.py:synth", ["--config.render.phrase=llm"])
    c.text_filter.model = c.verify.model = "http://127.0.0.1:9/v1#s"  # only render lacks one
    with pytest.raises(UserError, match="render needs a model"):
        stage_specs(c, tmp_path)
    c.api.model = "http://127.0.0.1:9/v1#m"
    spec = stage_specs(c, tmp_path)["4_render"]
    assert spec.kwargs["phrase_llm"]["model"] == "http://127.0.0.1:9/v1#m"
    c.render.phrase = "poetry"
    with pytest.raises(UserError, match="render.phrase 'poetry'"):
        stage_specs(c, tmp_path)
    c.render.phrase = "template"
    assert stage_specs(c, tmp_path)["4_render"].kwargs["phrase_llm"] is None
