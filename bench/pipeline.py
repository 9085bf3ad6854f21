"""Pipeline throughput: samples/s per stage, API concurrency reached, SAM frames/s.

    python bench/pipeline.py [--num 24] [--delay 0.2] [--concurrency 8] [--sam sam2,sam3]
    python bench/pipeline.py --sam sam2,sam2_pkg     # with Meta's sam2 package installed

Stages 1-2 run against the deterministic truth server of the tests (valid replies) with a
fixed delay per reply, so samples/s there is bounded by concurrency / delay and the server's
peak in-flight count shows the concurrency actually reached (it should be near --concurrency).
Stage 3 runs the oracle, then tiny random Sam2Video / Sam3Video models (transformers' real
classes) for frames/s; `sam2_pkg` runs Meta's sam2 package with a random sam2.1_hiera_t at
its real 1024 px input (random weights do not change the cost). Figures from a loaded machine
mean nothing: run it on a quiet one.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from seeker_jax.data.testing import ChatServer
from seeker_jax.data.pipeline.testing import DelayedHandler
from seeker_jax.config import load_config
from seeker_jax.data.pipeline import runner
from seeker_jax.data.pipeline.readers import read_synth
from seeker_jax.data.pipeline.run import run_pipeline
from seeker_jax.data.pipeline.stage import StageSpec
from seeker_jax.data.synth import synthesize


def sam_spec(backend: str, tmp: Path, threads: int) -> tuple[StageSpec, str]:
    """The stage spec of a SAM backend, and what model it runs, for the figure's label."""
    common = {"min_neighbour_iou": 0.0, "num_threads": threads}
    if backend == "sam2_pkg":  # Meta's sam2 package (optional); random weights, real sizes
        return StageSpec("seeker_jax.data.pipeline.masks_sam2pkg:Sam2PkgMasks", {
            **common, "model_config": "configs/sam2.1/sam2.1_hiera_t.yaml", "checkpoint": None,
            "device": "cpu"}), "random sam2.1_hiera_t at 1024 px"
    from seeker_jax.data.pipeline.testing import save_tiny_sam2, save_tiny_sam3

    folder = (save_tiny_sam2 if backend == "sam2" else save_tiny_sam3)(tmp / backend)
    cls = "Sam2Masks" if backend == "sam2" else "Sam3Masks"
    return StageSpec(f"seeker_jax.data.pipeline.masks_sam:{cls}",
                     {**common, "model_dir": str(folder)}), "tiny"


def sam_frames_per_s(backend: str, verified: list, tmp: Path, threads: int) -> str:
    spec, model = sam_spec(backend, tmp, threads)
    stage = spec.build()
    frames, start = 0, time.perf_counter()
    for sample in verified:
        info, indices, pixels = stage.frames(sample)
        stage.segment(sample, info, indices, pixels)
        frames += len(indices)
    wall = time.perf_counter() - start
    return (f"{backend} ({model}, {threads} thread(s)): {frames} frames in {wall:.2f} s = "
            f"{frames / wall:.1f} frames/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=24, help="synthetic records")
    ap.add_argument("--delay", type=float, default=0.2, help="server seconds per reply")
    ap.add_argument("--concurrency", type=int, default=8, help="API calls in flight")
    ap.add_argument("--sam", default="sam2,sam3",
                    help="comma list of sam2, sam3, sam2_pkg; '' for none")
    ap.add_argument("--sam-threads", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(tmp / "world", args.num, seed=0, cfg=load_config("configs/synth.py:tiny", []),
                   progress=False)
        samples = read_synth(tmp / "world").samples
        with ChatServer(DelayedHandler(samples, delay_s=args.delay)) as server:
            cfg = load_config("configs/pipeline.py:synth", [
                f"--config.api.model={server.url}#truth", f"--config.workers={args.concurrency}",
                f"--config.api.max_concurrency={args.concurrency}"])
            funnel = run_pipeline(cfg, tmp / "world", tmp / "work")
            peak = server.max_in_flight
        print(f"{len(samples)} samples; server delay {args.delay} s; concurrency limit "
              f"{args.concurrency}; peak in flight at the server: {peak}")
        for s in funnel["stages"][1:]:
            rate = s["num_in"] / s["wall_seconds"] if s["wall_seconds"] else float("inf")
            print(f"  {s['name']:14s} {s['num_in']:4d} in, {s['num_out']:4d} out, "
                  f"{s['wall_seconds']:7.2f} s wall = {rate:7.2f} samples/s, "
                  f"{s['tokens']} API tokens")
        verified = runner.read_stage_output(tmp / "work" / "2_verify")
        for backend in filter(None, args.sam.split(",")):
            print("  " + sam_frames_per_s(backend, verified, tmp, args.sam_threads))


if __name__ == "__main__":
    main()
