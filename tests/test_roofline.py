"""seeker_jax.aot.roofline: the projected step time and MFU, against hand-worked numbers.

Every expected figure below was worked out by hand from the vendors' published per-chip
numbers (bf16 peak, HBM bandwidth): v5p 459 TFLOP/s and 2.76 TB/s, v5e 197 TFLOP/s and
819 GB/s, v6e 918 TFLOP/s and 1.64 TB/s, v4 275 TFLOP/s and 1.2 TB/s. They are written as
decimals, not computed from the module's table, so a wrong peak or a wrong formula fails.
"""
import pytest

from seeker_jax.aot.roofline import chip_of, format_projection, roofline

REL = 1e-5  # the hand-worked decimals carry 6-7 significant figures


def figures(**kw):
    """Qwen3-VL-8B SFT on v5p:2x2x1 (4 chips), 8,192 tokens per chip; the compiler counted
    5.0e14 FLOPs and 2.0e12 HBM bytes per chip."""
    f = {"topology": "v5p:2x2x1", "chips": 4, "fits": True, "tokens_per_step": 4 * 8192,
         "flops_per_chip": 5.0e14, "bytes_accessed_per_chip": 2.0e12,
         # 6 N T per chip: 6 x 8.77e9 params x 8,192 tokens
         "flops_6nt_per_chip": 4.3106304e14}
    f.update(kw)
    return f


def test_compute_bound_hand_worked():
    p = roofline(figures())
    # 5.0e14 / 459e12 = 1.089325 s of compute; 2.0e12 / 2.76e12 = 0.724638 s of HBM traffic
    assert p["chip"] == "v5p" and p["bound"] == "compute"
    assert p["compute_s"] == pytest.approx(1.089325, rel=REL)
    assert p["memory_s"] == pytest.approx(0.724638, rel=REL)
    assert p["step_s"] == pytest.approx(1.089325, rel=REL)
    assert p["mfu"] == pytest.approx(0.862126, rel=REL)  # 4.3106304e14 of 5.0e14 FLOPs
    assert p["hfu"] == pytest.approx(1.0, rel=REL)       # compute-bound: the chip is busy
    assert p["tokens_per_s_per_chip"] == pytest.approx(7520.256, rel=REL)  # 8,192 / 1.089325
    assert p["arithmetic_intensity"] == pytest.approx(250.0, rel=REL)      # FLOPs per byte
    text = format_projection(p)
    assert "PROJECTION" in text and "not measured" in text and "MFU <= 86%" in text
    assert "459 TFLOP/s" in text and "2.76 TB/s" in text and "step >= 1.09 s" in text


def test_memory_bound_hand_worked():
    """A decode-like step on v5e: few FLOPs per byte."""
    p = roofline(figures(topology="v5e:2x2", flops_per_chip=2.0e12,
                         bytes_accessed_per_chip=1.638e12, flops_6nt_per_chip=1.0e12,
                         tokens_per_step=4 * 4096))
    # 2.0e12 / 197e12 = 0.0101523 s of compute; 1.638e12 / 0.819e12 = 2.0 s of HBM traffic
    assert p["chip"] == "v5e" and p["bound"] == "memory"
    assert p["compute_s"] == pytest.approx(0.0101523, rel=REL)
    assert p["step_s"] == p["memory_s"] == pytest.approx(2.0, rel=REL)
    assert p["mfu"] == pytest.approx(0.00253807, rel=REL)  # 1.0e12 / (2.0 s x 197e12)
    assert p["hfu"] == pytest.approx(0.00507614, rel=REL)  # 2.0e12 / (2.0 s x 197e12)
    assert p["tokens_per_s_per_chip"] == pytest.approx(2048.0, rel=REL)


@pytest.mark.parametrize("topology,ridge", [("v5p:2x2x1", 166.3043), ("v6e:4x4", 559.7561),
                                            ("v5e:2x2", 240.5372), ("v5litepod-16", 240.5372),
                                            ("v4:2x2x1", 229.1667)])
def test_the_bound_flips_at_each_chips_ridge_point(topology, ridge):
    """The ridge point (peak FLOP/s over HBM bytes/s, worked out by hand per chip): a step
    just above it in FLOPs per byte is compute-bound, just below it memory-bound."""
    hbm = 1.0e12
    above = roofline(figures(topology=topology, flops_per_chip=1.001 * ridge * hbm,
                             bytes_accessed_per_chip=hbm))
    below = roofline(figures(topology=topology, flops_per_chip=0.999 * ridge * hbm,
                             bytes_accessed_per_chip=hbm))
    assert (above["bound"], below["bound"]) == ("compute", "memory")
    assert above["compute_s"] == pytest.approx(above["memory_s"], rel=2e-3)


def test_no_projection_without_figures():
    assert roofline(figures(flops_per_chip=None)) is None        # probe did not fit
    assert roofline(figures(bytes_accessed_per_chip=0.0)) is None
    assert roofline(figures(fits=False)) is None
    assert roofline(figures(topology="v99:2x2")) is None


def test_chip_names_from_topologies():
    assert chip_of("v6e:4x4") == "v6e" and chip_of("v5p-8") == "v5p"
    assert chip_of("v5litepod-16") == "v5litepod" and chip_of("v4:2x2x1") == "v4"
