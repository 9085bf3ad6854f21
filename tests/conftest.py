"""Test-wide environment (CPU JAX with 8 fake devices for mesh tests, no model hub) and the
shared session fixtures: one tiny synthetic world, one index-video sample, one tiny random
transformers Qwen3-VL saved with `save_pretrained` (tied, and its untied 8B-style twin), the
same over the real Qwen vocabulary as our checkpoint, and the offline tokenizer.

Session fixtures are built once and shared by every module that asks: never write into them.
A test that must write copies first (`shutil.copytree(synth_world, tmp_path / "world")`).
A test that needs another variant (a different seed, size or dtype) builds its own.
"""
import os
from pathlib import Path
from typing import Any, NamedTuple

import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT_DIR = Path(__file__).resolve().parent.parent


class TinyHF(NamedTuple):
    """A Hugging Face folder written by transformers' `save_pretrained`, and the torch model
    (float32, eval mode) it holds: the reference the Flax model is checked against."""
    path: str
    torch_model: Any


class TinyQwen(NamedTuple):
    """A tiny random Qwen3-VL over the real Qwen vocabulary: our checkpoint (with its env
    config and the offline tokenizer) and the same weights as a Hugging Face folder."""
    ckpt: str
    hf: str


@pytest.fixture(scope="session")
def tok():
    """The offline Qwen3 tokenizer (seeker_jax.models.tokenizer.offline_qwen_tokenizer)."""
    from seeker_jax.models.tokenizer import offline_qwen_tokenizer

    return offline_qwen_tokenizer()


@pytest.fixture(scope="session")
def synth_world(tmp_path_factory) -> str:
    """A dataset root as `seeker-jax synth` writes it: 8 records of configs/synth.py:tiny,
    seed 0 (96x64 mp4s, prompt frames, tracks, records/<split>.array_record). Read-only."""
    from seeker_jax.config import load_config
    from seeker_jax.data.synth import synthesize

    root = tmp_path_factory.mktemp("synth_world")
    synthesize(root, 8, 0, load_config(str(ROOT_DIR / "configs" / "synth.py") + ":tiny"),
               progress=False)
    return str(root)


@pytest.fixture(scope="session")
def index_sample(tmp_path_factory) -> Path:
    """root/videos/v1.mp4: 95 index frames at 10 fps (9.5 s, 128x96; frame i shows i, read
    back with seeker_jax.env.testing.read_index), and root/videos/v1_prompt.png (index frame
    33). Tests make their records over these paths. Read-only."""
    from PIL import Image

    from seeker_jax.env.testing import index_frame, write_index_video

    root = tmp_path_factory.mktemp("index_sample")
    (root / "videos").mkdir()
    write_index_video(root / "videos" / "v1.mp4", 95, fps=10)
    Image.fromarray(index_frame(33, 96, 128)).save(root / "videos" / "v1_prompt.png")
    return root


def _tiny_hf(tmp_path_factory, name: str, tied: bool, seed: int) -> TinyHF:
    from seeker_jax.models.qwen3_vl.tiny import save_tiny_hf

    path = str(tmp_path_factory.mktemp(name))
    # scale 5 sharpens the random logits: greedy tokens differ between prompts, and parity
    # tolerances are checked on logits that are not all near zero
    return TinyHF(path, save_tiny_hf(path, tied=tied, seed=seed, scale=5.0))


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory) -> TinyHF:
    """The one tiny random transformers Qwen3-VL (seeker_jax.models.qwen3_vl.tiny: test
    vocabulary of 1,000, vision token ids 990-993), tied embeddings (4B-style), float32, one
    safetensors file. Read-only."""
    return _tiny_hf(tmp_path_factory, "tiny_hf", tied=True, seed=0)


@pytest.fixture(scope="session")
def tiny_hf_untied(tmp_path_factory) -> TinyHF:
    """The same config with a separate lm_head (8B-style), other random weights. Read-only."""
    return _tiny_hf(tmp_path_factory, "tiny_hf_untied", tied=False, seed=1)


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory) -> TinyQwen:
    """seeker_jax.checkpointing.tiny.save_tiny_checkpoint with the default env config.
    Read-only."""
    from seeker_jax.checkpointing.tiny import save_tiny_checkpoint

    root = str(tmp_path_factory.mktemp("tiny_qwen"))
    return TinyQwen(save_tiny_checkpoint(root), os.path.join(root, "hf"))


@pytest.fixture(scope="session")
def rollout_world(index_sample, tok, tiny_qwen):
    """(root, records, tok, model) for rollout and GRPO tests: the index sample with two
    multiple-choice records over it (answer "A"), the offline tokenizer, and the tiny
    Qwen-vocabulary model loaded in Flax. Shared: copy the model's arrays before training it
    (a Sampler keeps buffers of its own)."""
    from seeker_jax.env.records import SampleRecord
    from seeker_jax.models.qwen3_vl import from_pretrained

    records = [SampleRecord(f"v1_{k}", "videos/v1.mp4", q, "A", 9.5, "videos/v1_prompt.png")
               for k, q in enumerate(["What is marked?\nA. a car\nB. a dog",
                                      "Where does the marked thing go?\nA. left\nB. right"])]
    return index_sample, records, tok, from_pretrained(tiny_qwen.hf)
