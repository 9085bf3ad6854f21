"""Synthetic-world throughput: records per second and disk per record, by stage.

    python bench/synth.py [--num 40] [--workers 1] [--config configs/synth.py:default]

Prints the time split between simulation, rendering + H.264 encoding, and question/prompt work
for one video, then a whole `synthesize` run, and the bytes on disk per record and per video.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from seeker_jax.config import load_config
from seeker_jax.data.questions import Context
from seeker_jax.data.records import read_records
from seeker_jax.data.simulate import simulate
from seeker_jax.data.synth import synthesize, write_mp4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/synth.py:default")
    ap.add_argument("--num", type=int, default=40, help="records to write")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    cfg = load_config(args.config)
    v = cfg.video
    print(f"video: {v.seconds} s, {v.fps} fps, {v.width}x{v.height}; "
          f"{cfg.questions.per_video} questions per video")

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        world = simulate(cfg, rng)
        t1 = time.perf_counter()
        frames = [world.render_frame(f) for f in range(world.num_frames)]
        t2 = time.perf_counter()
        write_mp4(Path(tmp) / "x.mp4", iter(frames), world.fps, v.crf, v.preset)
        t3 = time.perf_counter()
        Context.build(world, cfg.questions.min_visible_px)
        t4 = time.perf_counter()
        print(f"one video: simulate {1e3 * (t1 - t0):.1f} ms, render {1e3 * (t2 - t1):.0f} ms, "
              f"encode {1e3 * (t3 - t2):.0f} ms, masks for questions {1e3 * (t4 - t3):.0f} ms")

        out = Path(tmp) / "ds"
        start = time.perf_counter()
        meta = synthesize(out, args.num, seed=0, cfg=cfg, workers=args.workers, progress=False)
        wall = time.perf_counter() - start
        sizes = {sub: sum(p.stat().st_size for p in (out / sub).rglob("*") if p.is_file())
                 for sub in ("videos", "tracks", "frames", "records")}
        total = sum(sizes.values())
        n, nv = meta["num_records"], meta["num_videos"]
        print(f"synthesize: {n} records from {nv} videos in {wall:.1f} s with {args.workers} "
              f"worker(s): {n / wall:.2f} records/s, {nv / wall:.2f} videos/s")
        json_bytes = sum(len(p.read_bytes()) for p in (out / "records").glob("*"))
        payload = sum(len(json.dumps(r)) for s in ("train", "val", "test")
                      for r in read_records(out, s, resolve=False))
        print(f"records: {payload / n:.0f} B of JSON per record; the 3 ArrayRecord files take "
              f"{json_bytes / 1024:.0f} KiB (each file is padded to >= 128 KiB)")
        print(f"disk: {total / n / 1024:.1f} KiB per record ({total / nv / 1024:.1f} KiB per video): "
              + ", ".join(f"{k} {val / n / 1024:.1f}" for k, val in sizes.items()) + " KiB/record")


if __name__ == "__main__":
    main()
