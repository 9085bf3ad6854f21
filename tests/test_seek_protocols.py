"""bench/seek.py's protocols: the GRPO settings each one fixed in docs/results.md, and the
warmup schedule protocol 3's guard relies on (the first update has lr 0)."""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seek():
    sys.path.insert(0, str(ROOT / "bench"))           # bench/seek.py imports its siblings
    spec = importlib.util.spec_from_file_location("seek_bench", ROOT / "bench" / "seek.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(ROOT / "bench"))


@pytest.mark.parametrize("protocol, steps, lr, warmup", [(1, 10, 1e-3, 0), (2, 10, 1e-3, 0),
                                                         (3, 20, 5e-4, 3)])
def test_grpo_settings_are_the_protocols(seek, tmp_path, protocol, steps, lr, warmup):
    src = tmp_path / "p2"
    c = seek.grpo_settings(str(tmp_path / "p3"), 7, src=str(src), protocol=protocol)
    assert (c.steps, c.optimizer.total_steps) == (steps, steps)
    assert c.optimizer.lr == pytest.approx(lr) and c.optimizer.warmup_steps == warmup
    assert c.seed == 7 and (c.rollout.prompts_per_step, c.rollout.n) == (4, 8)
    assert c.model.init_from == str(src / "sft")      # protocol 3 reads protocol 2's model
    assert c.data.root == str(src / "data" / "task")


def test_protocol_3_warms_up_from_zero(seek, tmp_path):
    from seeker_jax.training.optim import make_schedule

    c = seek.grpo_settings(str(tmp_path), 7, protocol=3).optimizer
    lrs = [float(make_schedule(c)(i)) for i in range(c.total_steps)]
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(5e-4 / 3)
    assert lrs[3:] == pytest.approx([5e-4] * (c.total_steps - 3))     # constant after warmup


def test_protocol_3_reuses_protocol_2_and_fresh_seeds(seek):
    p2, p3 = seek.PROTOCOLS[2], seek.PROTOCOLS[3]
    assert p3["reuse"] == p2["sub"] and p3["preset"] == p2["preset"]
    assert not set(p3["seeds"]) & {1, 2, 3, 4, 5, 6}      # the seeds protocol 2 ran
    assert p3["held_out_seed"] not in {seek.HELD_OUT_SEED, p2["held_out_seed"]}
