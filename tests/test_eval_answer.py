"""The evaluator on our own records (protocol "answer": what the demo and `passk` score),
against a scripted OpenAI-compatible server replying with the synthetic world's teacher turns:
every right answer is judged right, a wrong one wrong, an unreadable video is that sample's
error, and `per_sample` episodes come back per sample in order."""
import shutil

from seeker_jax.data.testing import ChatServer, reply_text
from seeker_jax.config import load_config
from seeker_jax.data.records import SPLITS, read_records
from seeker_jax.data.trajectories import teacher_turns
from seeker_jax.env.config import EnvConfig
from seeker_jax.eval.models import load_backend
from seeker_jax.eval.protocols import get_protocol
from seeker_jax.eval.readers import samples_from_records
from seeker_jax.eval.runner import evaluate


class Teacher:
    """Replies with a record's scripted turns; answers record `wrong`'s question wrongly."""

    def __init__(self, records, wrong: int):
        self.records, self.wrong = records, wrong

    def __call__(self, body):
        texts = [p["text"] for m in body["messages"] if isinstance(m["content"], list)
                 for p in m["content"] if p["type"] == "text"]
        i = next(i for i, r in enumerate(self.records) if any(r["question"] in t for t in texts))
        text = teacher_turns(self.records[i])[sum(m["role"] == "assistant"
                                                  for m in body["messages"])]
        if i == self.wrong and "<answer>" in text:
            text = "<think>A guess.</think>\n<answer>not it</answer>"
        return reply_text(text)


def test_answer_protocol_on_our_records(synth_world, tmp_path):
    root = tmp_path / "world"
    shutil.copytree(synth_world, root)
    records = [r for s in SPLITS for r in read_records(root, s, resolve=False)][:4]
    (root / records[3]["video_path"]).write_bytes(b"not a video")
    env = EnvConfig.from_config(load_config("configs/sft.py:tiny_synth").env)
    with ChatServer(Teacher(records, wrong=1)) as server:
        backend, _ = load_backend(f"openai:{server.url}#teacher", batch_size=4, max_len=4096,
                                  max_new_tokens=64, max_turns=env.max_rounds + 1)
        judged = evaluate(samples_from_records(records, root), backend, env,
                          get_protocol("answer"), per_sample=2)
    assert [len(j) for j in judged] == [2, 2, 2, 2]
    assert [[x.correct for x in j] for j in judged] == [[True] * 2, [False] * 2, [True] * 2,
                                                       [False] * 2]
    assert judged[0][0].prediction == str(records[0]["answer"])
    assert judged[0][0].outcome.answer == judged[0][0].prediction
    assert [c["name"] for c in judged[0][0].outcome.calls] == ["view_visual_prompt",
                                                               "crop_video"]
    assert judged[1][0].prediction == "not it"
    assert judged[3][0].error and judged[3][0].outcome.end_reason == "video_error"
