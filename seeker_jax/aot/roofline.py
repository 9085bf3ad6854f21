"""A roofline projection of a compiled step's time and MFU on a TPU chip (pure arithmetic).

From the compiler's own per-chip counts (`cost_analysis()`: FLOPs and HBM bytes accessed,
scaled by the scan trip count where layers are scanned; see seeker_jax.aot.fit), a step takes at
least

    t = max(FLOPs / peak FLOP/s, bytes / HBM bandwidth)

on one chip, and its model FLOPs utilization is MFU = 6·N·T per chip / (t · peak). It is a
*projection*, a lower bound on step time, not a measurement:

- collectives (FSDP all-gathers and reduce-scatters over ICI) are assumed to overlap with
  compute; they are not in the bound;
- "bytes accessed" is XLA's per-op operand + output count, an upper bound on HBM traffic
  where fusion keeps values on chip;
- a Pallas kernel (splash attention) has no cost model: with splash, the scanned layers'
  FLOPs and bytes come from a one-layer probe with the pure-JAX online-softmax attention
  (seeker_jax.aot.cost.decoder_layer_cost), which computes every (query, key) block where the
  causal kernel skips about half, and the one layer the compiler counted in the step itself
  has no attention FLOPs.

Chip figures: the vendor's published bf16 peak and HBM bandwidth per chip.
"""
from __future__ import annotations

from typing import Any

# chip -> (peak bf16 FLOP/s, HBM bytes/s), per chip
CHIP_PEAKS: dict[str, tuple[float, float]] = {
    "v5p": (459e12, 2.76e12),
    "v6e": (918e12, 1.64e12),
    "v5e": (197e12, 0.819e12),
    "v5litepod": (197e12, 0.819e12),
    "v4": (275e12, 1.2e12),
}


def chip_of(topology: str) -> str:
    """"v5p:2x2x1" -> "v5p"."""
    return topology.split(":")[0].split("-")[0]


def roofline(figures: dict[str, Any]) -> dict[str, Any] | None:
    """The projection of a compile_train_step figures dict, or None when its FLOPs or bytes
    were not measured (a probe that did not fit) or the chip has no published peaks here."""
    flops, hbm = figures.get("flops_per_chip"), figures.get("bytes_accessed_per_chip")
    chip = chip_of(figures["topology"])
    if not flops or not hbm or chip not in CHIP_PEAKS or not figures.get("fits"):
        return None
    peak, bandwidth = CHIP_PEAKS[chip]
    t_compute, t_memory = flops / peak, hbm / bandwidth
    step_s = max(t_compute, t_memory)
    model_flops = figures["flops_6nt_per_chip"]
    tokens = figures["tokens_per_step"]
    return {
        "chip": chip, "peak_flops": peak, "hbm_bandwidth": bandwidth,
        "compute_s": t_compute, "memory_s": t_memory, "step_s": step_s,
        "bound": "compute" if t_compute >= t_memory else "memory",
        "mfu": model_flops / (step_s * peak),
        "hfu": flops / (step_s * peak),
        "tokens_per_s_per_chip": tokens / figures["chips"] / step_s,
        "arithmetic_intensity": flops / hbm,
    }


def format_projection(p: dict[str, Any]) -> str:
    """Two report lines for a roofline() dict."""
    return (f"  PROJECTION (roofline, not measured): {p['chip']} at {p['peak_flops'] / 1e12:.0f} "
            f"TFLOP/s bf16 and {p['hbm_bandwidth'] / 1e12:.2f} TB/s HBM per chip: step >= "
            f"{p['step_s']:.2f} s ({p['bound']}-bound: compute {p['compute_s']:.2f} s, HBM "
            f"{p['memory_s']:.2f} s), MFU <= {100 * p['mfu']:.0f}% (6NT), hardware FLOPs "
            f"{100 * p['hfu']:.0f}%\n"
            f"    {p['tokens_per_s_per_chip']:.0f} tokens/s/chip; collectives assumed overlapped;"
            f" FLOPs/byte {p['arithmetic_intensity']:.0f}")


__all__ = ["CHIP_PEAKS", "chip_of", "format_projection", "roofline"]
