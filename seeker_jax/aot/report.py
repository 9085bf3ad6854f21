"""The `aot` report of a compiled train step: per-chip memory against the chip's HBM, FLOPs
against 6·N·tokens, the roofline projection, or the compiler's refusal and which mesh axis to
grow (the figures come from seeker_jax.aot.fit.compile_train_step)."""
from __future__ import annotations

from typing import Any

from seeker_jax.aot.cost import FIT_LENGTHS
from seeker_jax.aot.roofline import format_projection

GIB = 1024**3


def format_report(f: dict[str, Any]) -> str:
    """Human-readable figures of compile_train_step (and its callers' f["notes"] lines)."""
    lines = [_format_figures(f)]
    if f.get("projection"):
        lines.append(format_projection(f["projection"]))
    return "\n".join(lines + [f"  {n}" for n in f.get("notes", ())])


def attention(f: dict[str, Any]) -> str:
    """The attention the step compiled with, and why: "splash (auto for tpu)"."""
    requested = f.get("attention_requested", f["attention_impl"])
    why = (f"auto for {f.get('target_platform', 'the target')}" if requested == "auto" else
           "as configured")
    return f"{f['attention_impl']} ({why})"


def _format_figures(f: dict[str, Any]) -> str:
    mesh = " x ".join(f"{k}={v}" for k, v in f["mesh"].items())
    per_token = f" (+ per-token {', '.join(f['per_token'])})" if f.get("per_token") else ""
    head = (f"{f['model']} {f.get('step', 'SFT')} step on {f['topology']} ({f['chips']} chips, "
            f"{f['hbm_gib']:.0f} GiB HBM each), mesh {mesh}\n"
            f"  batch {f['batch_per_chip']}/chip ({f['global_batch']} global) x {f['seq_len']} "
            f"tokens: {f['frames']}-frame video grid {tuple(f['video_grid'])} = "
            f"{f['video_tokens']} video tokens + timestamps + text; {f['loss_positions']} loss "
            f"positions{per_token}\n"
            f"  params: {f['trainable_params'] / 1e9:.2f} B trainable, "
            f"{f['frozen_params'] / 1e9:.2f} B frozen; remat {f['remat']}; attention "
            f"{attention(f)}\n"
            f"  by hand: state {f['state_bytes_per_chip'] / GIB:.2f} GiB/chip, "
            f"batch {f['batch_bytes_per_chip'] / GIB:.3f} GiB/chip\n")
    if not f["fits"] and "error" in f:  # the compiler refused
        used = ("" if f.get("used_gib") is None else
                f": needs {f['used_gib']:.1f} GiB of {f['capacity_gib']:.1f} GiB")
        return head + (f"  DOES NOT FIT{used}\n  compiler: {f['error']}\n"
                       f"  to fit: {grow_hint(f)}")
    g = lambda k: f[k] / GIB  # noqa: E731
    return head + (
        f"  per chip: arguments {g('argument_bytes'):.2f} GiB, outputs {g('output_bytes'):.2f} "
        f"(aliased {g('alias_bytes'):.2f}), temporaries {g('temp_bytes'):.2f}, code "
        f"{g('code_bytes'):.3f}\n"
        f"  total {g('total_bytes'):.2f} GiB of {f['hbm_gib']:.0f} GiB: "
        f"{'FITS' if f['fits'] else 'DOES NOT FIT'} "
        f"({100 * f['total_bytes'] / (f['hbm_gib'] * GIB):.0f}%)\n"
        + (_flops_line(f) if f["flops_ratio"] is not None else
           f"  FLOPs: not counted (memory only: no per-layer probes); the compiler's count with "
           f"each scan body once is {f['flops_as_compiled']:.3e}"
           if not f.get("cost_probes", True) else
           f"  FLOPs: not measured: the probe that counts one scanned decoder layer (compiled "
           f"alone) does not fit a chip here, even at {FIT_LENGTHS[0]} tokens; the compiler's "
           f"count with the layer body once is {f['flops_as_compiled']:.3e}"))


def grow_hint(f: dict[str, Any]) -> str:
    """Which mesh axis to grow for a step that does not fit, from where its bytes are."""
    state = f["state_bytes_per_chip"] / GIB
    if f.get("used_gib") and state > 0.5 * f["used_gib"]:
        return (f"the state is {state:.1f} GiB/chip, most of it: grow the fsdp axis (more chips,"
                " --config.mesh.fsdp) so params and optimizer state split further")
    return ("the activations dominate (state {:.1f} GiB/chip): grow the tensor axis "
            "(--config.mesh.tensor=2 splits heads and MLP per layer), or shorten the example "
            "(--seq-len / --frames), or keep batch_per_chip at 1").format(state)


def _flops_line(f: dict[str, Any]) -> str:
    return (
        f"  FLOPs per chip per step {f['flops_per_chip']:.3e} = {f['flops_ratio']:.2f} x "
        f"6*N*tokens ({f['flops_6nt_per_chip']:.3e}); above 1: remat recompute, attention "
        f"(L^2) and the frozen vision forward; below: embeddings and the LM head (only on loss "
        f"positions) do not cost 6 FLOPs per param per token"
        + (f"\n  decoder scanned: the compiler counts its body once ({f['flops_as_compiled']:.3e});"
           f" scaled by the trip count with one layer's fwd+bwd compiled alone "
           f"({f['scan_body_flops_per_chip']:.3e} per layer, {f['scan_body_flops_counted']})"
           + ("" if f.get("scan_body_bytes_per_chip") is not None else
              "; its HBM bytes: not measured (the layer alone does not fit a chip)")
           if f.get("scan_layers") else ""))


__all__ = ["GIB", "attention", "format_report", "grow_hint"]
