"""transformers' own Qwen3-VL video processor, run in a child process, as a test reference.

Why a side directory: the torchvision wheel that matches the CPU torch (0.28.0) ships a CUDA
build of its C++ ops, so a plain `import torchvision` fails ("operator torchvision::nms does not
exist"), and with it importable on the normal path `transformers.image_utils` fails to import
too. So it is installed away from site-packages:

    pip install --no-deps --target .venv/torchvision-ref torchvision==0.28.0

Why a child process: transformers decides once per process whether torchvision is available, so
the two op schemas its meta registrations expect must be declared, and the directory put on
sys.path, before transformers is first imported; the test process has imported it long before.
The child does that, then runs transformers' processors on the requests it is handed (a pickle
of plain dicts and numpy arrays) and writes their outputs back. The video processor uses only
`transforms.v2.functional` (torch kernels), none of those ops.

    python tests/hf_video_reference.py REQUESTS.pkl OUTPUTS.pkl     (what `reference` runs)
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REF_DIR = Path(os.environ.get("SEEKER_TORCHVISION_REF",
                              Path(__file__).resolve().parents[1] / ".venv" / "torchvision-ref"))
INSTALL = f"pip install --no-deps --target {REF_DIR} torchvision==0.28.0"
PROMPT = "<|im_start|>user\n<|video_pad|><|im_end|>\n<|im_start|>assistant\n"


def reference(requests: list[dict]) -> list[dict]:
    """Runs transformers on each request in one child process; skips the test if the reference
    torchvision is not installed.

    A request is {"frames": (T, H, W, 3) uint8, "bounds": (min_pixels, max_total_pixels,
    max_frame_pixels or None)}, and for a whole prompt through Qwen3VLProcessor also
    {"fps": video fps, "indices": the frames' indices} or {"fps", "sample_fps"} to let
    transformers sample the given (every) frame itself. Each output holds the processor's
    arrays (pixel_values_videos, video_grid_thw; input_ids, mm_token_type_ids for prompts).
    """
    import pytest

    if not (REF_DIR / "torchvision").is_dir():
        pytest.skip(f"the reference torchvision is not installed at {REF_DIR}; run `{INSTALL}` "
                    f"(or point SEEKER_TORCHVISION_REF at such a directory)")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "requests.pkl", Path(tmp) / "outputs.pkl"
        src.write_bytes(pickle.dumps(requests))
        done = subprocess.run([sys.executable, __file__, str(src), str(dst)],
                              capture_output=True, text=True, timeout=900)
        if done.returncode:
            raise RuntimeError(f"transformers reference failed:\n{done.stderr[-4000:]}")
        return pickle.loads(dst.read_bytes())


def frame_budget(bounds: tuple[int, int, int | None], num_frames: int) -> int:
    """longest_edge for transformers that applies our per-frame cap.

    transformers caps a frame at `max_video_tokens * 32 * 32` px, so a cap that is not whole
    tokens (crop_video's 336*336) cannot be given that way; it is folded into the budget
    instead: floor(min(B, c * n) / n) = min(B // n, c), the cap transformers then applies.
    """
    _, total, cap = bounds
    return total if cap is None else min(total, cap * num_frames)


def _install_torchvision() -> None:
    import torch

    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor qdets, Tensor qscores, float dets_scale, int dets_zero_point, "
               "float scores_scale, int scores_zero_point, float iou_threshold) -> Tensor")
    _install_torchvision.lib = lib  # the Library owns the schemas: keep it alive
    sys.path.insert(0, str(REF_DIR))
    import torchvision  # noqa: F401

    import transformers.utils.import_utils as iu
    assert iu.is_torchvision_available(), "torchvision did not register with transformers"


def _video_processor(bounds, num_frames: int):
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    size = {"shortest_edge": bounds[0], "longest_edge": frame_budget(bounds, num_frames)}
    # max_video_tokens: no token cap of its own; the per-frame cap lives in the budget above.
    return Qwen3VLVideoProcessor(size=size, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                 cap_pixels_per_frame=bounds[2] is not None,
                                 max_video_tokens=10**9, do_sample_frames=False)


def _run(request: dict) -> dict:
    import torch
    from transformers import Qwen3VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil)
    from transformers.video_utils import VideoMetadata

    frames = torch.from_numpy(np.ascontiguousarray(request["frames"])).permute(0, 3, 1, 2)
    if "fps" not in request:
        proc = _video_processor(request["bounds"], len(frames))
        out = proc(videos=[frames], return_tensors="np")
        return {k: np.asarray(v) for k, v in out.items()}
    from seeker_jax.models.tokenizer import offline_qwen_tokenizer

    sample = "sample_fps" in request
    if sample:  # transformers samples the frames itself (Qwen3VLVideoProcessor.sample_frames)
        meta = VideoMetadata(total_num_frames=len(frames), fps=request["fps"])
        kept = _video_processor(request["bounds"], 1).sample_frames(meta, fps=request["sample_fps"])
        sampled = len(kept)
    else:
        meta = VideoMetadata(total_num_frames=int(max(request["indices"])) + 1,
                             fps=request["fps"], frames_indices=list(request["indices"]))
        sampled = len(frames)
    proc = Qwen3VLProcessor(image_processor=Qwen2VLImageProcessorPil(),
                            tokenizer=offline_qwen_tokenizer(),
                            video_processor=_video_processor(request["bounds"], sampled))
    kwargs = {"do_sample_frames": True, "fps": request["sample_fps"]} if sample else {}
    out = proc(text=[PROMPT], videos=[frames], video_metadata=[meta], return_tensors="np",
               **kwargs)
    return {k: np.asarray(v) for k, v in out.items() if k != "video_metadata"}


def main(src: str, dst: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _install_torchvision()
    requests = pickle.loads(Path(src).read_bytes())
    Path(dst).write_bytes(pickle.dumps([_run(r) for r in requests]))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(*sys.argv[1:])
