"""Checkpoints both ways: HF -> orbax -> HF is bit-exact, and transformers loads the export.

References: the HF folder transformers itself wrote (tensor bytes, names, config), and
transformers' own forward on the exported folder (logits within 1e-4 of the Flax model's).
"""
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
import torch
import transformers
from flax import nnx
from safetensors.torch import load_file, save_file

from hf_reference import hf_logits, make_inputs, save_tiny_hf
from seeker_jax.checkpointing import checkpoint as C
from seeker_jax.checkpointing.convert import convert, export
from seeker_jax.models.qwen3_vl import (CheckpointError, ConfigError, forward, from_pretrained,
                                        save_pretrained)
from seeker_jax.models.qwen3_vl import hf_io, safetensors_io
from seeker_jax.models.qwen3_vl.hf_io import INDEX, SINGLE, TensorSpec, parse_size, plan_shards
from tensor_files import assert_bit_exact, hf_tensors, no_partials

TOL = 1e-4
MIXED = [[("text", 3), ("image", (4, 4)), ("text", 4), ("video", (2, 4, 4)), ("text", 5)]]


CASES = {  # tied (4B-style) / untied (8B-style), input sharded or not, dtype
    "tied-single-fp32": (True, None, "float32"),
    "untied-sharded-bf16": (False, "100KB", "bfloat16"),
    "tied-sharded-bf16": (True, "100KB", "bfloat16"),
    "untied-single-fp32": (False, None, "float32"),
}


@pytest.fixture(scope="module", params=list(CASES))
def converted(request, tmp_path_factory):
    tied, shard, dtype = CASES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    hf_dir, ckpt = str(root / "hf"), str(root / "ckpt")
    hf = save_tiny_hf(hf_dir, tied=tied, seed=2, dtype=dtype, max_shard_size=shard, scale=5.0)
    convert(hf_dir, ckpt, progress=False)
    return hf, hf_dir, ckpt, dtype


def test_round_trip_is_bit_exact(converted, tmp_path):
    _, hf_dir, ckpt, dtype = converted
    stored = C.stored_metadata(C.find_params(ckpt).params_dir)
    assert {str(m.dtype) for m in stored.values()} == {dtype}
    export(ckpt, str(tmp_path / "single"), progress=False)
    export(ckpt, str(tmp_path / "sharded"), max_shard_size="120KB", progress=False)
    assert os.path.exists(tmp_path / "sharded" / INDEX)
    original = hf_tensors(hf_dir)
    for out in ("single", "sharded"):
        assert_bit_exact(original, hf_tensors(str(tmp_path / out)))
    # the config comes back as it went in, only the dtype restated
    exported = json.load(open(tmp_path / "single" / "config.json"))
    source = json.load(open(os.path.join(hf_dir, "config.json")))
    assert exported == {**source, "dtype": dtype}


def test_block_by_block_reading_and_writing_are_exact(converted, tmp_path, monkeypatch):
    """Big matrices are read, transposed and written in row blocks; force tiny blocks."""
    _, hf_dir, ckpt, _ = converted
    monkeypatch.setattr(hf_io, "BLOCK_BYTES", 1000)
    monkeypatch.setattr(safetensors_io, "BLOCK_BYTES", 1000)
    blocks = str(tmp_path / "ckpt")
    convert(hf_dir, blocks, progress=False)
    whole, blockwise = C.restore_params(ckpt), C.restore_params(blocks)
    for k in whole:
        np.testing.assert_array_equal(np.asarray(whole[k]), np.asarray(blockwise[k]))
    export(blocks, str(tmp_path / "hf"), progress=False)
    assert_bit_exact(hf_tensors(hf_dir), hf_tensors(str(tmp_path / "hf")))


@pytest.mark.parametrize("converted", ["tied-single-fp32", "untied-sharded-bf16"], indirect=True)
def test_transformers_loads_export_and_matches_flax(converted, tmp_path):
    hf, _, ckpt, dtype = converted
    out = str(tmp_path / "hf")
    export(ckpt, out, dtype="float32", max_shard_size="150KB", progress=False)
    loaded, info = transformers.Qwen3VLForConditionalGeneration.from_pretrained(
        out, output_loading_info=True)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"])
    model = C.load_model(ckpt, dtype=jnp.float32)
    inputs = make_inputs(MIXED, seed=5)
    ours = np.asarray(forward(model, **inputs.arrays()).logits)
    ref = hf_logits(loaded.eval(), inputs)
    assert np.abs(ours - ref).max() <= TOL
    if dtype == "float32":  # the export is the model the user started from (casting the
        # bf16 reference back would also round its rotary buffers, so only fp32 compares)
        np.testing.assert_array_equal(ref, hf_logits(hf.eval(), inputs))


def _train_a_little(model, steps: int = 3) -> nnx.Optimizer:
    """A few Adam steps on next-token loss over text."""
    opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, 900, (2, 12)))

    @nnx.jit
    def step(model, opt):
        def loss_fn(m):
            logits = m(ids).logits[:, :-1]
            return optax.softmax_cross_entropy_with_integer_labels(logits, ids[:, 1:]).mean()
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt)) for _ in range(steps)]
    assert losses[-1] < losses[0]
    return opt


def _nudge_vision(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _, var in nnx.to_flat_state(nnx.state(model.model.visual, nnx.Param)):
        noise = 0.05 * rng.standard_normal(var.shape).astype(np.float32)
        var.set_value(jnp.asarray(np.asarray(var.get_value()) + noise))


def test_trained_checkpoint_exports_and_matches(tiny_hf_untied, tmp_path):
    """A CheckpointManager root as a trainer writes it (params + opt_state per step)."""
    hf_dir, hf = tiny_hf_untied
    model = from_pretrained(hf_dir)
    root = str(tmp_path / "run" / "checkpoints")
    C.write_model_config(root, model.config, assets_from=hf_dir)
    opt = _train_a_little(model)
    opt_state = nnx.to_pure_dict(nnx.state(opt, nnx.OptState))
    with ocp.CheckpointManager(root, item_names=("params", "opt_state")) as mngr:
        for step in (1, 2):
            if step == 2:
                _nudge_vision(model, step)  # so the tower's export is checked on new values
            mngr.save(step, args=ocp.args.Composite(
                params=ocp.args.StandardSave(C.params_tree(model)),
                opt_state=ocp.args.StandardSave(opt_state)))
        mngr.wait_until_finished()
    loc = C.find_params(str(tmp_path / "run"))  # a workdir holding checkpoints/
    assert loc.step == 2 and loc.config_dir == os.path.abspath(root)

    out = str(tmp_path / "export")
    export(str(tmp_path / "run"), out, progress=False)
    loaded, info = transformers.Qwen3VLForConditionalGeneration.from_pretrained(
        out, output_loading_info=True)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"])
    inputs = make_inputs(MIXED, seed=6)
    ours = np.asarray(forward(model, **inputs.arrays()).logits)
    ref = hf_logits(loaded.eval(), inputs)
    assert np.abs(ours - ref).max() <= TOL
    assert np.abs(ref - hf_logits(hf, inputs)).max() > 1e-2  # training did change the model


def test_save_pretrained_from_python_casts_and_shards(tiny_hf, tmp_path):
    hf_dir, hf = tiny_hf
    model = from_pretrained(hf_dir)
    out = str(tmp_path / "out")
    save_pretrained(model, out, dtype=jnp.bfloat16, max_shard_size="100KB")
    index = json.load(open(os.path.join(out, INDEX)))
    assert len(set(index["weight_map"].values())) > 1
    want = {k: v.to(torch.bfloat16) for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    assert_bit_exact(want, hf_tensors(out))
    assert json.load(open(os.path.join(out, "config.json")))["dtype"] == "bfloat16"
    with pytest.raises(CheckpointError, match="already holds"):
        save_pretrained(model, out)
    save_pretrained(model, out, overwrite=True)
    assert sorted(os.listdir(out)) == ["config.json", "generation_config.json", SINGLE]
    assert no_partials(str(tmp_path))


@pytest.mark.parametrize("converted", ["untied-single-fp32"], indirect=True)
def test_parameters_land_sharded(converted, tmp_path):
    _, hf_dir, ckpt, _ = converted
    mesh = jax.make_mesh((8,), ("fsdp",), axis_types=(jax.sharding.AxisType.Auto,))
    spec = jax.sharding.PartitionSpec

    def shard_embed_axis(path, axes):  # what a logical-axis rule table would give
        return jax.sharding.NamedSharding(mesh, spec(*("fsdp" if a == "embed" else None
                                                       for a in axes)))

    key = "model.language_model.embed_tokens.embedding"
    plain = C.restore_params(ckpt)
    sharded = C.restore_params(ckpt, shardings=shard_embed_axis)
    assert sharded[key].sharding.spec == spec(None, "fsdp")  # (vocab, embed)
    assert len(sharded[key].addressable_shards) == 8
    # convert places each parameter as it is read; it is saved and restored unchanged
    target = C.abstract_params(C.read_model_config(ckpt)[0], shardings=shard_embed_axis)
    placed = str(tmp_path / "placed")
    convert(hf_dir, placed, progress=False,
            place=lambda path, x: jax.device_put(x, target[C.param_key(path)].sharding))
    again = C.restore_params(placed)
    for tree in (sharded, again):
        for k in plain:
            np.testing.assert_array_equal(np.asarray(plain[k]), np.asarray(tree[k]))


# --- bad input: a clear error naming the problem, and nothing half-written ----------------

@pytest.fixture(scope="module")
def good_hf(tiny_hf):
    return tiny_hf.path  # read-only: the bad-input cases edit a copy


QKV = "model.visual.blocks.1.attn.qkv.weight"


def _tensors(edit):
    """A folder edit that rewrites model.safetensors after edit(tensors)."""
    def apply(d):
        path = os.path.join(d, SINGLE)
        tensors = load_file(path)
        edit(tensors)
        save_file({k: v.contiguous() for k, v in tensors.items()}, path,
                  metadata={"format": "pt"})
    return apply


def _truncate(d):
    path = os.path.join(d, SINGLE)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _retype(d):
    path = os.path.join(d, "config.json")
    cfg = json.load(open(path))
    json.dump({**cfg, "model_type": "qwen2_5_vl"}, open(path, "w"))


BAD = {
    "missing": (_tensors(lambda t: t.pop(QKV)), CheckpointError,
                rf"missing 1 tensor\(s\): {QKV}"),
    "unexpected": (_tensors(lambda t: t.update({"model.visual.blocks.9.attn.qkv.weight": t[QKV].clone()})),
                   CheckpointError, r"unexpected 1 tensor\(s\): model.visual.blocks.9"),
    "shape": (_tensors(lambda t: t.update({QKV: t[QKV][:, :16]})), CheckpointError,
              rf"{QKV}: shape \(96, 16\) in the checkpoint, the config expects \(96, 32\)"),
    "truncated": (_truncate, CheckpointError, "truncated or corrupt"),
    "model_type": (_retype, ConfigError, "model_type='qwen2_5_vl'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_and_leaves_nothing(good_hf, tmp_path, case):
    edit, error, message = BAD[case]
    hf_dir = str(tmp_path / "hf")
    shutil.copytree(good_hf, hf_dir)
    edit(hf_dir)
    out = str(tmp_path / "ckpt")
    with pytest.raises(error, match=message):
        convert(hf_dir, out, progress=False)
    assert not os.path.exists(out) and no_partials(str(tmp_path))


def test_output_folder_holding_a_checkpoint_is_refused(good_hf, tmp_path):
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    convert(good_hf, first, progress=False)
    export(first, second, progress=False)
    with pytest.raises(CheckpointError, match="already holds files.*--overwrite"):
        convert(good_hf, second, progress=False)
    with pytest.raises(CheckpointError, match="already holds files"):
        export(first, second, progress=False)
    before = hf_tensors(second)
    assert_bit_exact(before, hf_tensors(second))  # untouched by the refusals
    export(first, second, dtype="bfloat16", overwrite=True, progress=False)
    assert {str(t.dtype) for t in hf_tensors(second).values()} == {"torch.bfloat16"}
    with pytest.raises(CheckpointError, match="overlaps the input"):
        export(first, first, overwrite=True, progress=False)
    assert no_partials(str(tmp_path))


def test_checkpoint_that_does_not_fit_its_config(good_hf, tmp_path):
    ckpt = str(tmp_path / "ckpt")
    convert(good_hf, ckpt, progress=False)
    cfg_path = os.path.join(ckpt, C.CONFIG_FILE)
    cfg = json.load(open(cfg_path))
    cfg["text_config"]["num_hidden_layers"] = 2
    json.dump(cfg, open(cfg_path, "w"))
    with pytest.raises(CheckpointError, match=r"unexpected \d+: model.language_model.layers.2"):
        export(ckpt, str(tmp_path / "out"), progress=False)
    with pytest.raises(CheckpointError, match="holds no parameters"):
        C.find_params(str(tmp_path))
    assert not os.path.exists(tmp_path / "out")


def test_sizes_and_shard_plan():
    assert parse_size("5GB") == 5 * 10**9 and parse_size("2GiB") == 2 * 2**30
    assert parse_size("100KB") == 100_000 and parse_size(123) == 123
    with pytest.raises(ValueError, match="cannot read size"):
        parse_size("lots")
    specs = [TensorSpec(str(i), (n,), np.dtype("float32")) for i, n in enumerate([10, 10, 30, 5])]
    plan = [[s.name for s in shard] for shard in plan_shards(specs, 80)]
    assert plan == [["0", "1"], ["2"], ["3"]]  # 40 B, a 120 B tensor alone, then the rest
