"""seeker_jax.aot.fit: the SFT step compiled for a TPU topology on this CPU (needs jax[tpu]).

One compile of the tiny model's step for v5e:2x2 (4 chips, fsdp=4) serves the figure checks;
a second, with an absurd batch, must come back as "does not fit".

The references are hand counts of the tiny model (configs/qwen3_vl.py:tiny, which is
seeker_jax/models/qwen3_vl/tiny.py over Qwen's vocabulary: text width 64, MLP 128, 3 decoder
layers, 4 query and 2 KV heads of 16, vocabulary 151,936, tied embeddings; a vision tower of
151,744 parameters, frozen by freeze_vision):

  trainable parameters (the language model): embedding 151,936 x 64 = 9,723,904; per layer
  q 64x64 + k, v 2 x 64x32 + o 64x64 = 12,288, gate, up, down 3 x 64x128 = 24,576, RMSNorms
  2 x 64 + q/k norms 2 x 16 = 160, so 37,024; final norm 64: 9,723,904 + 3 x 37,024 + 64
  = 9,835,040.

  the vision tower (width 32, MLP 64, 3 blocks, DeepStack mergers after blocks 0 and 1): patch
  embedding 3 x 2 x 16 x 16 x 32 + 32 = 49,184; position embedding 64 x 32 = 2,048; per block
  two LayerNorms 2 x 64, qkv 32 x 96 + 96, proj 32 x 32 + 32, MLP 32 x 64 + 64 + 64 x 32 + 32,
  so 8,544; the merger LayerNorm(32) 64 + 128 x 128 + 128 + 128 x 64 + 64 = 24,832; each
  DeepStack merger the same with LayerNorm(128): 25,024. 49,184 + 2,048 + 3 x 8,544 + 24,832
  + 2 x 25,024 = 151,744.

  matmul FLOPs per chip of one step (one example of L tokens per chip, the loss on K = 128
  positions): per decoder layer forward 2 L x 12,288 (projections) + 2 L x 24,576 (MLP);
  x 3 layers; x 3 with the backward. The attention is splash on TPU, a Pallas kernel without
  a cost model: XLA counts none of its FLOPs. The tied head on the K positions:
  2 x 128 x 64 x 151,936 = 2,489,319,424, x 3 (forward, the hidden states' gradient, the
  embedding's) = 7,467,958,272. The frozen tower's forward adds under 0.6%.
"""
import pytest

from seeker_jax.aot import fit as aot
from seeker_jax.config import load_config

pytestmark = pytest.mark.skipif(not aot.tpu_compiler_available(),
                                reason="no TPU compiler: pip install 'jax[tpu]' (libtpu)")

TOPOLOGY = "v5e:2x2"


def tiny_config():
    c = load_config("configs/sft.py:tiny_synth")
    c.mesh.data, c.mesh.fsdp = 1, -1
    c.model.freeze_vision = True  # as the real presets: no backward through the tower
    return c


@pytest.fixture(scope="module")
def figures():
    return aot.compile_train_step(tiny_config(), TOPOLOGY, frames=2, text_tokens=128)


def test_video_batch_token_count():
    # 1280x720 under 336*336 px -> 224x448 (multiples of 32): 14x28 patches, 7x14 = 98 tokens
    # per 2-frame group; 32 groups; `<t seconds>` at t = 1, 5, ..., 125 s plus start/end.
    b = aot.video_batch(2, 64)
    assert b.grid == (32, 14, 28) and b.video_tokens == 32 * 98
    # "<1.0 seconds>" -> '<' '1' '.' '0' ' seconds' '>'
    assert aot.timestamp_tokens(1.0) == 6 and aot.timestamp_tokens(125.0) == 8
    stamps = 3 * 8 + 22 * 9 + 7 * 10  # 1..9 s, 13..97 s, 101..125 s, each + start/end
    assert b.timestamp_tokens == stamps
    assert b.seq_len == -(-(32 * 98 + stamps + 1024) // 256) * 256 == 4608
    with pytest.raises(aot.AotError, match="shorter than the video"):
        aot.video_batch(2, 64, seq_len=1024)


def test_tiled_bytes_closed_form():
    assert aot.tiled_bytes((3, 64), 4, (0, 1), (4, 128)) == 4 * 128 * 4
    assert aot.tiled_bytes((32, 8), 4, (1, 0), (8, 128)) == 8 * 128 * 4  # transposed layout
    assert aot.tiled_bytes((), 4, (), (128,)) == 512
    assert aot.tiled_bytes((1024, 256), 2, (0, 1), (8, 128)) == 1024 * 256 * 2


def test_memory_figures(figures):
    f = figures
    assert f["fits"] and f["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1}
    for k in ("argument_bytes", "output_bytes", "temp_bytes", "code_bytes", "total_bytes"):
        assert f[k] > 0, k
    # Arguments: every kept array's per-chip shard, padded to the compiler's TPU tiles.
    assert f["argument_bytes"] == f["argument_bytes_by_hand"]
    # ... and, up to that padding, fp32 params + AdamW's mu and nu, sharded 4 ways (each
    # tiny-model matrix has a dimension the 4 chips divide), plus the batch. By hand (module
    # doc): 4 B x (3 x 9,835,040 trainable + 151,744 frozen) / 4 chips = 29,656,864 bytes, and
    # a few replicated scalars (step counts): within 0.1%. Moments kept for the frozen tower
    # too would add 1.0%.
    state = 29_656_864
    assert state <= f["state_bytes_per_chip"] < state * 1.001
    unpadded = f["state_bytes_per_chip"] + f["batch_bytes_per_chip"]
    assert unpadded - 2 * 4 * 256 <= f["argument_bytes"] <= unpadded * 1.01  # 2 unused (1, 256)
    # donated params and optimizer state come back in the same buffers
    assert f["alias_bytes"] == f["output_bytes"] or f["alias_bytes"] > 0.9 * f["output_bytes"]


# XLA also counts elementwise work; nearly all of it is the log-softmax and its gradient
# over the K x vocabulary logits (about 18 FLOPs a logit here; AdamW and the norms are under
# 1% of the step). The compiled count must hold the hand-counted matmuls and at most 30
# FLOPs a logit more: a count for all 4 chips, a missing backward or a head over every
# position instead of the K loss positions is far outside.
ELEMENTWISE_PER_LOGIT = 30
LOGITS = 128 * 151_936


def test_parameters_tokens_and_6nt_hand_worked(figures):
    assert figures["trainable_params"] == 9_835_040 and figures["frozen_params"] == 151_744
    # 4 examples (one per chip) of 2 video + 6 timestamp + 2 start/end + 128 text tokens,
    # padded to 256
    assert figures["global_batch"] == 4 and figures["seq_len"] == 256
    assert figures["tokens_per_step"] == 1024
    assert figures["flops_6nt_per_chip"] == 6 * 9_835_040 * 1024 / 4 == 15_106_621_440


def test_compiled_flops_against_a_hand_count(figures):
    # L = 256: a layer's forward is 2 x 256 x 12,288 + 2 x 256 x 24,576 = 18,874,368;
    # x 3 layers x 3 = 169,869,312; the head 7,467,958,272 (module doc)
    assert figures["attention_impl"] == "splash" and figures["pallas_kernels"] > 0
    matmuls = 169_869_312 + 7_467_958_272
    flops = figures["flops_per_chip"]
    print(f"\nSFT step FLOPs per chip {flops:.6e}: {(flops - matmuls) / LOGITS:.1f} a logit "
          "beyond the hand-counted matmuls")
    assert matmuls <= flops <= matmuls + ELEMENTWISE_PER_LOGIT * LOGITS
    assert figures["flops_ratio"] == pytest.approx(flops / 15_106_621_440)


def test_roofline_projection_from_the_compiler_counts(figures):
    """The projection is made of this step's per-chip counts (test_roofline checks its
    arithmetic). A tiny-width model does few FLOPs per byte: about 6, far below v5e's ridge
    point of 240.5 (197 TFLOP/s over 819 GB/s), so the step is memory-bound."""
    p, f = figures["projection"], figures
    # every argument is read and every output written at least once
    assert f["bytes_accessed_per_chip"] >= f["argument_bytes"] + f["output_bytes"]
    assert p["chip"] == "v5e" and p["bound"] == "memory"
    assert p["arithmetic_intensity"] == pytest.approx(
        f["flops_per_chip"] / f["bytes_accessed_per_chip"]) and p["arithmetic_intensity"] < 24
    assert p["memory_s"] * 0.819e12 == pytest.approx(f["bytes_accessed_per_chip"])
    assert p["compute_s"] * 197e12 == pytest.approx(f["flops_per_chip"])
    assert p["mfu"] * p["step_s"] * 197e12 == pytest.approx(15_106_621_440)
    assert "PROJECTION (roofline, not measured)" in aot.format_report(f)


def test_does_not_fit_is_a_result(capsys):
    # 4,096 examples a chip: the logits alone are 4,096 x 128 x 151,936 floats. (An absurd
    # length would do too, but splash builds its block mask on the host, minutes at 1M tokens.)
    code = aot.run_aot(tiny_config(), TOPOLOGY, None, frames=2, batch_per_chip=4096,
                       text_tokens=128)
    out = capsys.readouterr().out
    assert code == 2 and "DOES NOT FIT" in out and "Traceback" not in out
    assert "to fit: the activations dominate" in out and "tensor" in out  # which axis to grow
    assert "Ran out of memory" in out or "RESOURCE_EXHAUSTED" in out
    assert "needs" in out  # the compiler's figures, read from its message (GiB)


def test_unknown_topology_is_a_message(capsys):
    assert aot.run_aot(tiny_config(), "v5e:3x7x9", None, frames=2) == 1
    assert "no TPU topology" in capsys.readouterr().out


def test_scanned_decoder_flops_are_scaled_by_the_trip_count(figures):
    """cost_analysis counts a scan body once; the report adds the other n - 1 layers, each
    measured by compiling one layer's fwd+bwd alone. Reference: the unrolled step's count."""
    c = tiny_config()
    c.model.scan_layers = True
    scanned = aot.compile_train_step(c, TOPOLOGY, frames=2, text_tokens=128)
    n = load_config(f"configs/qwen3_vl.py:{c.model.size}").text_config.num_hidden_layers
    assert n > 1 and scanned["scan_layers"] and not figures["scan_layers"]
    assert scanned["flops_as_compiled"] < figures["flops_per_chip"]  # the undercount is real
    gap = abs(scanned["flops_per_chip"] - figures["flops_per_chip"]) / figures["flops_per_chip"]
    print(f"\nscanned (scaled) vs unrolled FLOPs per chip: relative gap {gap:.2e}")
    assert gap < 0.02
    assert "decoder scanned" in aot.format_report(scanned)
    # bytes are scaled the same way (the stacked weights add traffic of their own)
    assert scanned["bytes_accessed_per_chip"] > scanned["bytes_as_compiled"]
    assert scanned["projection"]["step_s"] > 0


def _probe_setup():
    """The tiny SFT config's model config, mesh and rules on TOPOLOGY (as compile_train_step
    builds them)."""
    from seeker_jax.models.qwen3_vl import from_hf_dict
    from seeker_jax.sharding import rules_from_config

    c = tiny_config()
    mesh = aot.topology_mesh(c, TOPOLOGY)[2]
    cfg = from_hf_dict(load_config(f"configs/qwen3_vl.py:{c.model.size}").to_dict())
    return c, cfg, mesh, rules_from_config(c.mesh.rules)


def test_flops_only_probe_counts_the_same_flops():
    """The FLOPs probe compiles at jax's lowest exec-time effort: the FLOPs of the default
    effort within 1e-4 (6.3e-5 here; identical for the 8B layer); its bytes may differ and
    are never used."""
    from seeker_jax.aot.cost import LOW_EFFORT, decoder_layer_cost

    c, cfg, mesh, rules = _probe_setup()
    default = decoder_layer_cost(c, cfg, mesh, rules, 4, 1536)
    fast = decoder_layer_cost(c, cfg, mesh, rules, 4, 1536, "reference", LOW_EFFORT)
    gap = abs(fast[0] - default[0]) / default[0]
    print(f"\nlayer FLOPs, default effort {default[0]:.6e}, lowest {fast[0]:.6e}: relative "
          f"gap {gap:.1e}")
    assert default[0] > 0 and gap < 1e-4


def test_probe_on_one_chips_share_counts_what_the_partitioned_layer_counts():
    """chip_share: on an fsdp-only mesh a probe compiles one chip holding its rows, and counts
    the partitioned layer's per-chip FLOPs (within 1e-3: 2.7e-4 here, 2e-5 for the 8B layer);
    its bytes leave out the gathers' writes (within 5%: 2.2% here). A mesh that also splits
    the heads keeps the real mesh, as does a row count the chips do not divide."""
    from seeker_jax.aot.cost import LOW_EFFORT, chip_share, decoder_layer_cost

    c, cfg, mesh, rules = _probe_setup()
    one, rows = chip_share(mesh, rules, 4)
    assert one.devices.size == 1 and rows == 1 and one.axis_names == mesh.axis_names
    whole = decoder_layer_cost(c, cfg, mesh, rules, 4, 1536, "chunked", LOW_EFFORT)
    share = decoder_layer_cost(c, cfg, one, rules, rows, 1536, "chunked", LOW_EFFORT)
    flops_gap = abs(share[0] - whole[0]) / whole[0]
    bytes_gap = abs(share[1] - whole[1]) / whole[1]
    print(f"\nlayer on 4 chips: {whole[0]:.6e} FLOPs, {whole[1]:.4e} B per chip; one chip's "
          f"share: {share[0]:.6e}, {share[1]:.4e} (gaps {flops_gap:.1e}, {bytes_gap:.1e})")
    assert flops_gap < 1e-3 and bytes_gap < 0.05
    assert chip_share(mesh, rules, 6) == (mesh, 6)  # 6 rows do not split over 4 chips
    c.mesh.fsdp, c.mesh.tensor = 2, 2
    tensor_mesh = aot.topology_mesh(c, TOPOLOGY)[2]
    assert chip_share(tensor_mesh, rules, 4) == (tensor_mesh, 4)


# Slow (~17 s): test_scanned_decoder_flops_are_scaled_by_the_trip_count checks the
# compiled FLOP count in the default suite.
@pytest.mark.slow
def test_layer_flops_quadratic_fit_matches_the_compiled_count(monkeypatch):
    """Where the dense layer does not fit a chip, its FLOPs come from three short compiles
    and the quadratic in L through them. Checked against the layer compiled at the length
    itself; then the fallback path, with the direct compile made to run out of memory."""
    from seeker_jax.aot import cost as aot_cost

    c, cfg, mesh, rules = _probe_setup()
    length = 6144
    direct, how = aot_cost.decoder_layer_flops(c, cfg, mesh, rules, 4, length)
    assert how == "compiled"
    short = [aot_cost.decoder_layer_cost(c, cfg, mesh, rules, 4, n, "reference",
                                         aot_cost.LOW_EFFORT)[0]
             for n in aot_cost.FIT_LENGTHS]
    fit = aot_cost.quadratic_at(aot_cost.FIT_LENGTHS, short, length)
    print(f"\nlayer FLOPs at {length}: compiled {direct:.6e}, quadratic fit {fit:.6e}, "
          f"relative error {abs(fit - direct) / direct:.1e}")
    assert abs(fit - direct) / direct < 1e-5
    real = aot_cost.decoder_layer_cost

    def dense_does_not_fit(c_, cfg_, mesh_, rules_, batch, seq_len, *args):
        return None if seq_len == length else real(c_, cfg_, mesh_, rules_, batch, seq_len,
                                                   *args)
    monkeypatch.setattr(aot_cost, "decoder_layer_cost", dense_does_not_fit)
    fitted, how = aot_cost.decoder_layer_flops(c, cfg, mesh, rules, 4, length)
    assert how == "quadratic fit" and fitted == fit


def test_quadratic_at_closed_form():
    from seeker_jax.aot.cost import quadratic_at

    f = lambda x: 7.0 + 3.0 * x + 0.5 * x * x  # noqa: E731
    assert quadratic_at((1, 2, 3), [f(1), f(2), f(3)], 10) == pytest.approx(f(10), rel=1e-12)


# --- the GRPO update step (rl.aot): the learner's loss and per-token arrays, one episode per row


def tiny_grpo_config():
    c = load_config("configs/grpo.py:tiny_synth")
    c.mesh.data, c.mesh.fsdp = 1, -1
    c.model.freeze_vision = True
    return c


@pytest.fixture(scope="module")
def grpo_figures():
    from seeker_jax.rl.aot import compile_grpo_step

    return compile_grpo_step(tiny_grpo_config(), TOPOLOGY, frames=2, text_tokens=128)


def test_grpo_per_token_arrays_follow_the_config():
    from seeker_jax.rl.aot import grpo_per_token

    c = tiny_grpo_config()  # kl_coef 0.001, minibatches 2: reference and old log-probs ride along
    assert grpo_per_token(c) == ("advantages", "sampler_logprobs", "ref_logprobs", "old_logprobs")
    c.loss.kl_coef, c.rollout.minibatches = 0.0, 1
    assert grpo_per_token(c) == ("advantages", "sampler_logprobs")


def test_grpo_step_memory_figures(grpo_figures):
    f, c = grpo_figures, tiny_grpo_config()
    assert f["fits"] and f["step"] == "GRPO" and f["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1}
    # One episode per chip: a 2-frame video at the tiny env's 4,096 px (1280x720 -> 32x64:
    # 2x4 patches, 2 tokens) + "<1.0 seconds>" 6 + start/end 2, + 128 prompt text + 48
    # response tokens = 186 -> the learner's bucket 512 (not 256); K = 48: one turn rounded
    # up to 16 (rl.grpo_batch.turn_loss_len).
    assert f["global_batch"] == 4 and f["video_tokens"] == 2 and f["video_grid"] == [1, 2, 4]
    assert f["seq_len"] == 512 == min(b for b in c.rollout.buckets if b >= 2 + 8 + 128 + 48)
    assert f["loss_positions"] == 48 and f["response_tokens"] == 48
    assert f["per_token"] == ["advantages", "sampler_logprobs", "ref_logprobs", "old_logprobs"]
    # 2 prompts x n=4 over 2 minibatches = 4 episodes an update = one step of 4
    assert f["episodes_per_update"] == 4 and f["micro_steps_per_update"] == 1
    assert f["argument_bytes"] == f["argument_bytes_by_hand"]
    # Every per-token (B, K) float32 array is read by the loss, so kept: arguments are at least
    # the unpadded state and batch less the two arrays the step never reads (loss_mask,
    # mm_token_type_ids: (1, 512) int32 per chip each).
    unpadded = f["state_bytes_per_chip"] + f["batch_bytes_per_chip"]
    assert unpadded - 2 * 4 * f["seq_len"] <= f["argument_bytes"] <= unpadded * 1.01
    per_token_bytes = 4 * f["global_batch"] * f["loss_positions"] * 4 // 4  # 4 arrays, 4 chips
    assert f["batch_bytes_per_chip"] > per_token_bytes
    # FLOPs against the hand count (module doc) at L = 512, K = 48: a layer's forward is
    # 2 x 512 x 12,288 + 2 x 512 x 24,576 = 37,748,736; x 3 layers x 3 = 339,738,624; the
    # head as in SFT at K = 48: 48 x 151,936 x 64 x 2 x 3 = 2,800,484,352
    assert f["attention_impl"] == "splash" and f["pallas_kernels"] > 0
    matmuls, logits = 339_738_624 + 2_800_484_352, 48 * 151_936
    print(f"\nGRPO step FLOPs per chip {f['flops_per_chip']:.6e}: "
          f"{(f['flops_per_chip'] - matmuls) / logits:.1f} a logit beyond the matmuls")
    assert matmuls <= f["flops_per_chip"] <= matmuls + ELEMENTWISE_PER_LOGIT * logits
    assert f["flops_6nt_per_chip"] == 6 * 9_835_040 * (4 * 512) / 4 == 30_213_242_880
    assert "GRPO: 48-token responses" in aot.format_report(f)


def test_grpo_cli_dispatch_and_does_not_fit(capsys):
    from seeker_jax.cli.main import main

    code = main(["aot", "--config", "configs/grpo.py:tiny_synth", "--config.mesh.data=1",
                 "--config.mesh.fsdp=-1", "--topology", TOPOLOGY, "--frames", "2",
                 "--batch-per-chip", "4096", "--text-tokens", "128"])
    out = capsys.readouterr().out
    assert code == 2 and "compiling the GRPO step" in out and "GRPO step on v5e:2x2" in out
    assert "DOES NOT FIT" in out and "needs" in out and "Traceback" not in out


# --- the sampler's decode step (seeker_jax.aot.decode): KV cache beside the learner's state


@pytest.mark.parametrize("scan", [False, True])
def test_decode_step_memory_figures(capsys, tmp_path, scan):
    """The tiny GRPO config's sampler: 8 rows x (1024 + 256 chunk) slots, fp32, batch over 4
    chips. The cache is counted by hand; the compiled arguments hold the weights and cache.
    A scanned (stacked) learner's sampler unrolls its decoder: the same figures."""
    import json

    from seeker_jax.cli.main import main

    out = tmp_path / "decode.json"
    code = main(["aot", "--decode", "--config", "configs/grpo.py:tiny_synth",
                 "--config.mesh.data=1", "--config.mesh.fsdp=-1", "--topology", TOPOLOGY,
                 "--rows", "8", "--json", str(out), f"--config.model.scan_layers={scan}"])
    text = capsys.readouterr().out
    f = json.loads(out.read_text())
    assert code == 0 and f["fits"] and f["fits_beside_learner"]
    text_cfg = load_config("configs/qwen3_vl.py:tiny").text_config
    slots = 1024 + 256
    by_hand = (2 * text_cfg.num_hidden_layers * 8 * slots * text_cfg.num_key_value_heads
               * text_cfg.head_dim * 4)
    assert f["cache_slots"] == slots and f["cache_bytes_total"] == by_hand
    assert f["cache_bytes_per_chip"] == by_hand // 4  # rows split over the 4 chips
    assert f["argument_bytes"] >= f["cache_bytes_per_chip"] + 0.9 * f["weights_bytes_per_chip"]
    assert f["alias_bytes"] >= f["cache_bytes_per_chip"]  # the donated cache is updated in place
    assert f["beside_learner_bytes"] == f["total_bytes"] + f["learner_state_bytes_per_chip"]
    assert "sampler decode step on v5e:2x2" in text and "beside the learner's state" in text
    # "auto" resolved for the TPU it compiles for, as the learner's step (the decode step
    # itself reads the cache with cache_attention)
    assert f["attention_impl"] == "splash" and "prefill on this target: splash" in text


# --- "auto" attention resolves for the target the step compiles for, not for this CPU host


@pytest.mark.parametrize("configured, tpu, gpu, cpu", [
    ("auto", "splash", "cudnn", "reference"),
    ("chunked", "chunked", "chunked", "chunked"),  # a named choice is kept on every target
    ("reference", "reference", "reference", "reference"),
])
def test_target_model_config_resolves_for_each_target(configured, tpu, gpu, cpu):
    """The model config the AOT state, the step and the decode check all take
    (aot.target_model_config), for a TPU topology's mesh, a GPU mesh and a CPU mesh."""
    import types

    import jax
    import numpy as np
    from seeker_jax.sharding import rules_from_config

    c = tiny_config()
    c.model.attention_impl = configured
    rules = rules_from_config(c.mesh.rules)
    tpu_mesh = aot.topology_mesh(c, TOPOLOGY)[2]
    cpu_mesh = jax.make_mesh((1, 4, 1), ("data", "fsdp", "tensor"), devices=jax.devices()[:4],
                             axis_types=(jax.sharding.AxisType.Auto,) * 3)
    assert cpu_mesh.devices.flat[0].platform == "cpu"
    # no GPU here: a mesh stand-in whose devices say "gpu" (all the resolution reads)
    gpu_mesh = types.SimpleNamespace(devices=np.array([types.SimpleNamespace(platform="gpu")]))
    for mesh, want in ((tpu_mesh, tpu), (gpu_mesh, gpu), (cpu_mesh, cpu)):
        assert aot.target_model_config(c, mesh, rules).attention_impl == want


def test_report_says_which_attention_it_chose(figures):
    """tiny_synth says "auto": compiled for v5e, the step runs splash (Pallas kernel calls in
    the compiled program), and the report says so and why."""
    assert tiny_config().model.attention_impl == "auto"
    assert figures["attention_impl"] == "splash" and figures["pallas_kernels"] > 0
    assert "attention splash (auto for tpu)" in aot.format_report(figures)


@pytest.mark.slow
def test_8b_sft_paper_recipe_fits_v5p_8_from_the_preset():
    """The 8B SFT preset as shipped (no flag) on v5p-8 at the paper's 16,384 tokens with a
    256-frame video: "auto" is splash for the TPU, and the step fits its 95 GiB (with the
    dense reference attention it needed 97.98 GiB: issue #36). One 8B compile and its cost
    probes: minutes."""
    f = aot.compile_train_step(load_config("configs/sft.py:qwen3_vl_8b"), "v5p:2x2x1",
                               frames=256, seq_len=16384)
    print("\n" + aot.format_report(f))
    assert f["attention_impl"] == "splash" and f["pallas_kernels"] > 0
    assert f["fits"] and f["total_bytes"] <= 95 * aot.GIB
    assert f["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1} and f["seq_len"] == 16384
    # The state by hand: 16 bytes per trainable parameter (fp32 param, AdamW mu and nu, the
    # 8-step accumulated gradient) and 4 per frozen one, over 4 chips; within 1% (padding to
    # the chips and a few replicated scalars). The compiled arguments hold it.
    state = (16 * f["trainable_params"] + 4 * f["frozen_params"]) / 4
    assert state <= f["state_bytes_per_chip"] < 1.01 * state
    assert f["state_bytes_per_chip"] <= f["argument_bytes"] <= f["total_bytes"]


def test_memory_only_skips_the_probes(tmp_path, capsys, monkeypatch):
    """`aot --memory-only` on a scanned step: the fit answer from the step's own compile, no
    per-layer probe compiled, and no FLOPs or projection claimed from a count that has each
    scan body once."""
    import json

    from seeker_jax.cli.main import main

    def no_probes(*args, **kwargs):
        raise AssertionError("a probe compiled under --memory-only")

    monkeypatch.setattr(aot, "scan_costs", no_probes)
    out = tmp_path / "memory.json"
    code = main(["aot", "--config", "configs/sft.py:tiny_synth", "--config.mesh.data=1",
                 "--config.mesh.fsdp=-1", "--config.model.freeze_vision=True",
                 "--config.model.scan_layers=True", "--topology", TOPOLOGY, "--frames", "2",
                 "--text-tokens", "128", "--memory-only", "--json", str(out)])
    text, f = capsys.readouterr().out, json.loads(out.read_text())
    assert code == 0 and f["fits"] and f["scan_layers"] and not f["cost_probes"]
    assert f["total_bytes"] > f["state_bytes_per_chip"]
    assert f["flops_per_chip"] is None and f["projection"] is None and f["flops_as_compiled"] > 0
    assert "FLOPs: not counted (memory only" in text and "PROJECTION" not in text
