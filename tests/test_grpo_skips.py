"""A GRPO run on tiny_synth survives bad data: one video of conftest's synthetic world is
corrupted (its two records cannot be read) and one record's question is too long for the
sampler row. The run finishes; metrics.jsonl counts the skipped prompts per iteration, and
their total equals the bad records among the prompts the run drew (read back from the same
seeded prompt iterator). With a skip limit the data breaks, the run stops with a clear error.

One in-process train() per test, each past a minute on 2 cores: marked slow."""
import json
import os
import shutil

import numpy as np
import pytest

from seeker_jax.config import load_config
from seeker_jax.data.records import read_records, split_path, write_records
from seeker_jax.errors import UserError
from seeker_jax.rl.grpo import prompt_iterator, train

BAD_VIDEO = "videos/synth0_000002.mp4"
N = 2  # samples per prompt


def grpo_config(root: str, steps: int):
    """configs/grpo.py:tiny_synth on `root`: 2 prompts x 2 samples, short turns."""
    return load_config("configs/grpo.py:tiny_synth", [
        f"--config.data.root={root}", f"--config.steps={steps}", "--config.checkpoint_every=2",
        f"--config.rollout.n={N}", "--config.rollout.prompts_per_step=2",
        "--config.rollout.max_new_tokens=16", "--config.rollout.max_turns=2",
        "--config.optimizer.lr=1e-3"])


def script(episode: int, turn: int):
    """The first episode of each group answers "A" (a random model writes garbage), so rewards
    differ inside a group."""
    return "<think>done</think><answer>A</answer>" if episode % N == 0 and turn == 0 else None


@pytest.fixture(scope="module")
def broken_world(synth_world, tmp_path_factory):
    """synth_world copied; BAD_VIDEO cut after 3 KB and padded with random bytes; the first
    record of synth0_000001 asks a question of ~3,000 tokens (the row holds 1,024)."""
    root = tmp_path_factory.mktemp("broken") / "world"
    shutil.copytree(synth_world, root)
    path = root / BAD_VIDEO
    path.write_bytes(path.read_bytes()[:3072] + np.random.default_rng(0).bytes(8192))
    records = read_records(str(root), "train", resolve=False)
    long = next(i for i, r in enumerate(records) if r["video_path"].endswith("000001.mp4"))
    records[long] = {**records[long], "question": "What is marked? " * 600}
    write_records(split_path(str(root), "train"), records)
    bad = {r["id"]: ("bad_video" if r["video_path"] == BAD_VIDEO else "prompt_too_long")
           for i, r in enumerate(records) if r["video_path"] == BAD_VIDEO or i == long}
    assert sorted(bad.values()) == ["bad_video", "bad_video", "prompt_too_long"]
    return str(root), bad


def _rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_grpo_finishes_and_counts_the_skips(broken_world, tmp_path):
    root, bad = broken_world
    config = grpo_config(root, steps=3)
    config.rollout.max_skip_fraction = 0.75
    workdir = str(tmp_path / "run")
    train(config, workdir, progress=False, script=script)
    rows = _rows(workdir)
    assert [r["step"] for r in rows] == [1, 2, 3]
    drawn = sum(int(r["prompts"]) for r in rows)
    it = prompt_iterator(root, config)
    order = [next(it)["id"] for _ in range(drawn)]
    for why in ("bad_video", "prompt_too_long"):
        want = sum(bad.get(i) == why for i in order)
        assert sum(r[f"skipped/{why}"] for r in rows) == want, (why, order)
    assert sum(r["skipped_prompts"] for r in rows) == sum(i in bad for i in order) > 0
    assert all(r["skipped/tool_raised"] == 0 for r in rows)
    # every iteration trained on a full batch of usable groups (refills replace the skipped)
    assert all(np.isfinite(r["loss"]) for r in rows)


@pytest.mark.slow
def test_too_many_skips_stop_the_run(broken_world, tmp_path):
    root, _ = broken_world
    config = grpo_config(root, steps=3)
    config.rollout.max_skip_fraction = 0.0
    with pytest.raises(UserError, match=r"prompts .* were skipped as bad samples .*"
                                        r"more than rollout\.max_skip_fraction=0\.0"):
        train(config, str(tmp_path / "run"), progress=False, script=script)
    rows = _rows(str(tmp_path / "run"))      # the iteration that broke it is logged
    assert rows and rows[-1]["skipped_prompts"] > 0
