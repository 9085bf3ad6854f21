"""Greedy agreement: the same tiny checkpoint evaluated in-process (`ckpt:`, the rollout engine)
and through `openai:` against our own `seeker-jax serve` (a real HTTP server on 127.0.0.1)
gives the same model turns, hence the same answers, on every sample."""
import json

import numpy as np
import pytest
from PIL import Image

from hf_reference import build_hf, tiny_hf_config
from seeker_jax import checkpoint as ckpt
from seeker_jax.env.testing import index_frame, write_index_video
from seeker_jax.eval.models import load_backend
from seeker_jax.eval.protocols import get_protocol
from seeker_jax.eval.readers import read_samples
from seeker_jax.eval.runner import read_done, run_eval
from seeker_jax.models.qwen3_vl import from_pretrained
from seeker_jax.models.tokenizer import offline_qwen_tokenizer
from seeker_jax.serve.loading import ServeConfig
from seeker_jax.serve.testing import serve_in_thread
from test_eval_run import tiny_env


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A tiny random Qwen3-VL over the Qwen vocabulary, saved as our checkpoint with its env."""
    tok = offline_qwen_tokenizer()
    cfg = tiny_hf_config(vocab_size=151936)
    for name, token in (("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                        ("vision_start_token_id", "<|vision_start|>"),
                        ("vision_end_token_id", "<|vision_end|>")):
        setattr(cfg, name, tok.convert_tokens_to_ids(token))
    hf = tmp_path_factory.mktemp("hf")
    build_hf(cfg, scale=5.0).save_pretrained(str(hf))
    model = from_pretrained(str(hf))
    out = str(tmp_path_factory.mktemp("ckpt"))
    ckpt.save_params(out, model, model.config)
    ckpt.write_env_config(out, tiny_env("agentic"), "offline_qwen")
    return out


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2p")
    (root / "videos").mkdir()
    (root / "frames").mkdir()
    write_index_video(root / "videos" / "a.mp4", 40, fps=10)
    Image.fromarray(index_frame(7, 64, 96)).save(root / "frames" / "a.png")
    base = {"video_id": "a", "video_path": "a.mp4", "duration": 4.0, "source": "S",
            "frame_path": "a.png", "category": 1}
    lines = [dict(base, question=f"Q{i}?\nA: x\nB: y\nC: z", answer="ABC"[i % 3], dimension=i + 1)
             for i in range(3)]
    path = root / "bench.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    return path, root


@pytest.mark.parametrize("protocol", ["v2p_official", "agentic"])
def test_greedy_agreement_in_process_vs_serve(tiny_ckpt, bench, tmp_path, protocol):
    path, root = bench
    samples = read_samples("v2p", path, root / "videos", root / "frames")
    env, proto = tiny_env(protocol), get_protocol(protocol)
    kw = dict(batch_size=3, max_len=2048, max_new_tokens=12, max_turns=2)
    local, _ = load_backend(f"ckpt:{tiny_ckpt}", **kw)
    run_eval(samples, local, env, proto, tmp_path / "local")
    config = ServeConfig(model_name="tiny", batch_size=3, max_len=2048)
    with serve_in_thread(f"ckpt:{tiny_ckpt}", config=config) as server:
        remote, _ = load_backend(f"openai:{server.url}#tiny", **kw)
        run_eval(samples, remote, env, proto, tmp_path / "remote")
    a, b = read_done(tmp_path / "local" / "results.jsonl"), read_done(tmp_path / "remote" /
                                                                      "results.jsonl")
    assert sorted(a) == sorted(b) and len(a) == 3
    for key in a:
        assert a[key]["turns"] == b[key]["turns"], key  # same greedy tokens, turn by turn
        assert a[key]["prediction"] == b[key]["prediction"]
    assert any(t for row in a.values() for t in row["turns"])  # the model did say something
