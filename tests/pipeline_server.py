"""A deterministic OpenAI-API handler for the pipeline's stages 1-2 that gives VALID replies
from the synthetic world's truth (what a perfect LLM / VLM would say), plus scripted failures.

It is a test stand-in, stated as such: it reads the question back out of the request, looks up
the synthetic sample it came from, and answers the text filter with the target's description
and the verifier with the true tag, a window holding the evidence and the prompt frame, the
original template (one `<target>`) and the target's true box. `script[id]` makes one sample
misbehave: "drop" (text filter says no entity), "not_unique", "bad_once" (garbage, then valid
after the repair turn), "bad_always" (garbage every time).
"""
from __future__ import annotations

import json
from typing import Any

from chat_server import Reply, reply_text
from seeker_jax.data.pipeline import text_filter, verify
from seeker_jax.data.pipeline.readers import split_options
from seeker_jax.data.visual_prompt import mask_bbox
from seeker_jax.data.world import World


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in content if p.get("type") == "text")


def question_of(body: dict) -> str:
    """The question stem the pipeline put in its user turn."""
    text = _text(body["messages"][1]["content"])
    stem = text.split("Question: ", 1)[1].split("\nAnswer: ", 1)[0]
    return split_options(stem)[0]


def truth_window(sample: dict) -> tuple[float, float]:
    t = sample["truth"]
    w0, w1 = t["evidence_window"]
    pt = t["prompt_frame_index"] / World.load(t["tracks_path"]).fps
    return round(min(w0, pt), 3), round(max(w1, pt + 0.01), 3)


class TruthHandler:
    def __init__(self, samples: list[dict], script: dict[str, str] | None = None):
        self.by_question = {s["question"]: s for s in samples}
        self.script = dict(script or {})

    def verification(self, sample: dict) -> dict:
        t = sample["truth"]
        world = World.load(t["tracks_path"])
        w0, w1 = truth_window(sample)
        f = t["prompt_frame_index"]
        x0, y0, x1, y1 = mask_bbox(world.visible_masks(f)[t["target_track_id"]])
        return {"unique": True, "tag": t["description"].removeprefix("the "),
                "start_time": w0, "end_time": w1, "question": t["question_template"],
                "box": [x0, y0, x1 + 1, y1 + 1], "box_time": round(f / world.fps, 4)}

    def __call__(self, body: dict) -> Reply:
        sample = self.by_question[question_of(body)]
        mode = self.script.get(sample["id"], "")
        if mode == "bad_always" or (mode == "bad_once" and len(body["messages"]) == 2):
            return reply_text('{"keep": tru')  # truncated JSON
        if body["messages"][0]["content"] == text_filter.SYSTEM:
            if mode == "drop":
                return reply_text(json.dumps({"keep": False, "entity": "", "reason": "scripted"}))
            return reply_text(json.dumps({"keep": True, "entity": sample["truth"]["description"],
                                          "reason": "a concrete shape"}))
        assert body["messages"][0]["content"] == verify.SYSTEM
        reply = self.verification(sample)
        if mode == "not_unique":
            reply["unique"] = False
        return reply_text(json.dumps(reply))


def default_script(samples: list[dict]) -> dict[str, str]:
    """One sample of each failure, on the first four samples."""
    modes = ("drop", "bad_once", "bad_always", "not_unique")
    return {s["id"]: m for s, m in zip(samples, modes)}


class DelayedHandler(TruthHandler):
    """Valid replies after `delay_s` (kill tests: a stage in flight long enough to be killed)."""

    def __init__(self, samples, script=None, delay_s: float = 0.0):
        super().__init__(samples, script)
        self.delay_s = delay_s

    def __call__(self, body: dict) -> Reply:
        reply = super().__call__(body)
        reply.delay_s = self.delay_s
        return reply


class Slow:
    """A stage that sleeps before each sample, then runs `inner` (a StageSpec's cls, kwargs):
    the same outputs, slow enough for a kill test to land mid-stage."""

    def __init__(self, cls: str, kwargs: dict, delay_s: float):
        from seeker_jax.data.pipeline.stage import StageSpec

        self.inner = StageSpec(cls, kwargs).build()
        self.name, self.holds_model = self.inner.name, self.inner.holds_model
        self.delay_s = delay_s

    def __call__(self, sample):
        import time

        time.sleep(self.delay_s)
        return self.inner(sample)
