"""crop_video latency and preprocessing throughput on a 10-minute 640x360 video.

    python bench/tools.py [--crops 40] [--window 30] [--gop 60]

Generates the video once (cached in /tmp), then times random 30 s crop_video calls through the
real tool path (sandbox, decode, resize, patchify) and splits one call into its stages.
Prints p50/p95 latency and frames/s. Target: p50 under 300 ms on the 2-core dev machine.
Paths, interleaved call by call: the default (decode at native size, PIL bicubic: transformers'
pixels), the opt-in `decoder_scaling` (PyAV scales in swscale: not transformers' pixels), and
decord first.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from seeker_jax.env.parser import ToolCall
from seeker_jax.env.sandbox import Sandbox
from seeker_jax.env.testing import write_index_video
from seeker_jax.env.tools import ToolConfig, ToolRunner, with_crop
from seeker_jax.env.video import VideoFile, sample_frame_indices
from seeker_jax.models.processing import normalize, patchify, resize_frames, video_frame_size


def ensure_video(path: Path, minutes: float, fps: int, gop: int) -> Path:
    if not path.exists():
        t = time.perf_counter()
        write_index_video(path.with_suffix(".tmp.mp4"), int(minutes * 60 * fps), fps=fps,
                          width=640, height=360, gop=gop).rename(path)
        print(f"wrote {path} in {time.perf_counter() - t:.1f} s")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", type=int, default=40)
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--gop", type=int, default=60, help="keyframe interval in frames (2 s)")
    args = ap.parse_args()
    path = ensure_video(Path(f"/tmp/seeker_bench_{args.minutes:g}min_{args.fps}fps_g{args.gop}.mp4"),
                        args.minutes, args.fps, args.gop)

    print(f"crop_video {args.window:g} s windows on {path.name} (640x360, {args.fps} fps, "
          f"keyframe every {args.gop} frames), {args.crops} random calls per path, interleaved:")
    paths = {"pyav (default)": ToolConfig(),
             "pyav decoder_scaling": with_crop(ToolConfig(), decoder_scaling=True),
             "decord": ToolConfig(video_backends=("decord", "pyav"))}
    runners = {k: ToolRunner(Sandbox(path.parent, {"video": path.name}), c)
               for k, c in paths.items()}
    duration = next(iter(runners.values())).video(path.name).info.duration
    rng = np.random.default_rng(0)
    latencies = {k: [] for k in paths}
    frames = 0
    for _ in range(args.crops):
        start = float(rng.uniform(0, duration - args.window))
        call = ToolCall("crop_video", {"video_path": path.name, "start_time": start,
                                       "end_time": start + args.window})
        for name, tools in runners.items():
            t = time.perf_counter()
            obs = tools.run(call)
            latencies[name].append(time.perf_counter() - t)
            assert obs.error is None, obs.error
            frames = len(obs.frames)
    for name, times in latencies.items():
        ms = np.array(times) * 1000
        print(f"  {name:<21} p50 {np.percentile(ms, 50):5.0f} ms  p95 "
              f"{np.percentile(ms, 95):5.0f} ms  ({frames} frames per call; target p50 < 300 ms)")

    # Where the time goes, for one window (median of 10): the default decodes full frames and
    # resizes them with PIL; decoder_scaling scales in swscale instead.
    video = VideoFile(path, backends=("pyav",))
    crop = ToolConfig().crop
    stages = {"decode full frames": [], "PIL bicubic resize": [], "decode+scale (swscale)": [],
              "normalize+patchify": []}
    for _ in range(10):
        start = float(rng.uniform(0, duration - args.window))
        idx = sample_frame_indices(video.info, start, start + args.window, crop.fps,
                                   crop.min_frames, crop.max_frames)
        h, w = video_frame_size(len(idx), 360, 640, min_pixels=crop.min_pixels,
                                max_total_pixels=crop.max_total_pixels,
                                max_frame_pixels=crop.max_frame_pixels)
        t0 = time.perf_counter()
        raw = video.read(idx)
        t1 = time.perf_counter()
        small = resize_frames(raw, h, w)
        t2 = time.perf_counter()
        video.read(idx, (h, w))
        t3 = time.perf_counter()
        patches, _ = patchify(small[: len(small) // 2 * 2])
        normalize(patches)
        t4 = time.perf_counter()
        for times, dt in zip(stages.values(), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times.append(dt)
    n = len(idx)
    for k, v in stages.items():
        med = float(np.median(v))
        print(f"  {k:<22} {med * 1000:6.1f} ms  ({n / med:7.0f} frames/s)")

    # Preprocessing throughput alone (decoded frames in memory -> patches).
    raw = video.read(np.arange(0, 64 * 30, 30))
    t = time.perf_counter()
    reps = 5
    for _ in range(reps):
        h, w = video_frame_size(64, 360, 640, min_pixels=crop.min_pixels,
                                max_total_pixels=crop.max_total_pixels,
                                max_frame_pixels=crop.max_frame_pixels)
        normalize(patchify(resize_frames(raw, h, w))[0])
    dt = (time.perf_counter() - t) / reps
    print(f"preprocessing 640x360 -> {h}x{w}: {64 / dt:.0f} frames/s "
          f"({dt * 1000:.0f} ms per 64 frames)")


if __name__ == "__main__":
    main()
