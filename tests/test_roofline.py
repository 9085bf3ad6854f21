"""seeker_jax.aot.roofline: the projected step time and MFU, against hand-worked numbers."""
import pytest

from seeker_jax.aot.roofline import CHIP_PEAKS, chip_of, format_projection, roofline


def figures(**kw):
    f = {"topology": "v5p:2x2x1", "chips": 4, "fits": True, "tokens_per_step": 4 * 8192,
         "flops_per_chip": 459e12 * 2.0,            # 2 s of compute at the v5p peak
         "bytes_accessed_per_chip": 2.76e12 * 0.5,  # 0.5 s of HBM traffic
         "flops_6nt_per_chip": 459e12 * 1.5}
    f.update(kw)
    return f


def test_compute_bound_hand_worked():
    p = roofline(figures())
    assert p["bound"] == "compute" and p["chip"] == "v5p"
    assert p["compute_s"] == pytest.approx(2.0) and p["memory_s"] == pytest.approx(0.5)
    assert p["step_s"] == pytest.approx(2.0)
    assert p["mfu"] == pytest.approx(0.75)       # 1.5 s of model FLOPs in a 2 s step
    assert p["hfu"] == pytest.approx(1.0)
    assert p["tokens_per_s_per_chip"] == pytest.approx(8192 / 2.0)
    assert p["arithmetic_intensity"] == pytest.approx(459e12 * 2 / (2.76e12 * 0.5))
    text = format_projection(p)
    assert "PROJECTION" in text and "not measured" in text and "MFU <= 75%" in text


def test_memory_bound_hand_worked():
    p = roofline(figures(bytes_accessed_per_chip=2.76e12 * 4.0))
    assert p["bound"] == "memory" and p["step_s"] == pytest.approx(4.0)
    assert p["mfu"] == pytest.approx(1.5 / 4.0)


def test_no_projection_without_figures():
    assert roofline(figures(flops_per_chip=None)) is None        # probe did not fit
    assert roofline(figures(bytes_accessed_per_chip=0.0)) is None
    assert roofline(figures(fits=False)) is None
    assert roofline(figures(topology="v99:2x2")) is None


def test_chips():
    assert chip_of("v6e:4x4") == "v6e" and chip_of("v5p-8") == "v5p"
    assert CHIP_PEAKS["v5p"] == (459e12, 2.76e12)  # the figures the issue names
