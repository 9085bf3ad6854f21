"""seeker_jax.training.trainer: metrics rows past the restored step are dropped on resume, and a
checkpoint is a dict of named items (a caller adds its own beside the standard four)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

from seeker_jax.config import load_config
from seeker_jax.models.qwen3_vl.config import from_hf_dict
from seeker_jax.models.qwen3_vl.modeling import Qwen3VLForConditionalGeneration
from seeker_jax.training.train_state import create_train_state
from seeker_jax.training.trainer import (ArrayItem, JsonItem, MetricsWriter, restore_latest,
                                save_checkpoint, state_items, truncate_metrics)


def test_truncate_metrics_hand_worked(tmp_path):
    path = str(tmp_path / "metrics.jsonl")
    rows = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5}, {"step": 2, "val_loss": 2.7},
            {"step": 3, "loss": 2.0}]
    with open(path, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4, "lo')  # torn line
    assert truncate_metrics(path, 2) == 2
    with open(path) as f:
        assert [json.loads(line) for line in f] == rows[:3]
    writer = MetricsWriter(str(tmp_path), resume_step=1)  # a resume from step 1
    writer.write(2, {"loss": 9.0})
    writer.close()
    with open(path) as f:
        assert [json.loads(line) for line in f] == [rows[0], {"step": 2, "loss": 9.0}]


def test_checkpoint_named_items_round_trip(tmp_path, capsys):
    cfg = from_hf_dict(load_config("configs/qwen3_vl.py:tiny").to_dict())
    tx = optax.adam(1e-3)

    def fresh(seed):
        model = Qwen3VLForConditionalGeneration(cfg, rngs=nnx.Rngs(seed))
        return create_train_state(model, tx, None, freeze_vision=True)

    state = fresh(0)
    state.step = 7
    ref = {"w": jnp.arange(6.0).reshape(2, 3)}  # e.g. GRPO's reference params
    extra = {"ref_params": ArrayItem(ref), "prompt_order": JsonItem({"epoch": 1, "next": 5})}
    manager = ocp.CheckpointManager(str(tmp_path / "ckpt"),
                                    options=ocp.CheckpointManagerOptions(create=True))
    rng = jax.random.key(3)
    save_checkpoint(manager, 7, {**state_items(state, None, 7, rng), **extra})
    manager.wait_until_finished()

    other = fresh(1)  # different params: restore must overwrite them
    like = {"ref_params": ArrayItem({"w": jnp.zeros((2, 3))}), "prompt_order": JsonItem()}
    step, rng2, got = restore_latest(manager, other, None, jax.random.key(0), True, like)
    assert step == 7 == other.step
    assert capsys.readouterr().out == f"resuming from step 7 ({tmp_path / 'ckpt'})\n"
    np.testing.assert_array_equal(jax.random.key_data(rng2), jax.random.key_data(rng))
    np.testing.assert_array_equal(got["ref_params"]["w"], ref["w"])
    assert got["prompt_order"] == {"epoch": 1, "next": 5}
    for (pa, a), (pb, b) in zip(nnx.to_flat_state(state.trainable),
                                nnx.to_flat_state(other.trainable)):
        assert pa == pb
        np.testing.assert_array_equal(np.asarray(a.get_value()), np.asarray(b.get_value()))
    manager.close()


def test_under_mesh_sets_the_context_mesh_for_splash_only():
    """Splash runs under shard_map over the context mesh: the train / eval steps of SFT and
    GRPO are traced inside jax.set_mesh when (and only when) attention resolves to splash."""
    import jax

    from seeker_jax.sharding import make_mesh
    from seeker_jax.training.trainer import under_mesh

    mesh = make_mesh({"data": 1, "fsdp": 1, "tensor": 1})
    seen = []
    probe = lambda: seen.append(jax.sharding.get_abstract_mesh().empty)  # noqa: E731
    for fn_mesh, impl in ((mesh, "splash"), (mesh, "reference"), (None, "splash"),
                          (mesh, "auto")):  # auto is the reference on this CPU
        under_mesh(probe, fn_mesh, impl)()
    assert seen == [False, True, True, True]
    assert jax.sharding.get_abstract_mesh().empty  # restored after the call


def test_rows_that_learn_nothing_warn_once(tmp_path, capsys):
    """A zero reward and a zero gradient each warn once per run, with what to change; a row
    without the key (SFT has no reward) or with a nonzero value says nothing."""
    writer = MetricsWriter(str(tmp_path))
    writer.write(1, {"loss": 1.0, "grad_norm": 0.5, "reward": 0.25})
    assert "warning" not in capsys.readouterr().err
    writer.write(2, {"loss": 1.0, "grad_norm": 0.0, "reward": 0.0})
    writer.write(3, {"loss": 1.0, "grad_norm": 0.0, "reward": 0.0})
    writer.close()
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if line]
    assert len(err) == 2
    assert err[0].startswith("warning: step 2: every episode's reward is 0")
    assert "--config.model.init_from" in err[0]
    assert err[1].startswith("warning: step 2: the gradient is all zeros")
    assert [json.loads(x)["step"] for x in open(tmp_path / "metrics.jsonl")] == [1, 2, 3]
