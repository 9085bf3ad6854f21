"""Stage 3 with tiny random Sam2Video and Sam3Video models through transformers' real classes:
masks come back at the video's size for every 1 fps frame of the window, the RLE stored in the
record decodes to exactly the masks the model gave (pycocotools), and random-weight garbage is
rejected with a reason, never a crash. Mask checks on hand-made masks."""
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from chat_server import ChatServer
from pipeline_server import TruthHandler
from sam_models import save_tiny_sam2, save_tiny_sam3
from seeker_jax.config import load_config
from seeker_jax.data.pipeline import runner
from seeker_jax.data.pipeline.masks import (check_masks, decode_rle, encode_rle, iou,
                                            window_indices)
from seeker_jax.data.pipeline.readers import read_synth
from seeker_jax.data.pipeline.run import run_pipeline
from seeker_jax.data.pipeline.stage import StageSpec
from seeker_jax.data.synth import synthesize
from seeker_jax.env.video import VideoFile

REASONS = {"mask_empty", "mask_tiny", "mask_unstable", "mask_ambiguous"}


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    """Stage-2 output of 3 synthetic samples (truth server: valid replies)."""
    root = tmp_path_factory.mktemp("sam_synth")
    synthesize(root, 3, seed=4, cfg=load_config("configs/synth.py:tiny", []), progress=False)
    work = tmp_path_factory.mktemp("sam_work")
    samples = read_synth(root).samples
    with ChatServer(TruthHandler(samples)) as server:
        cfg = load_config("configs/pipeline.py:synth", [f"--config.api.model={server.url}#t"])
        run_pipeline(cfg, root, work, stop_after="2_verify")
    return runner.read_stage_output(work / "2_verify")


def test_rle_round_trip_and_checks():
    m = np.zeros((6, 5), bool)
    m[1:4, 2:4] = True
    counts = encode_rle(m)
    rle = {"size": [6, 5], "counts": counts.encode()}
    assert mask_utils.area(rle) == 6
    np.testing.assert_array_equal(decode_rle(counts, [6, 5]), m)
    # column-major runs (COCO): 13 zeros (2 columns + 1), 3 ones, 3 zeros, 3 ones, 8 zeros
    assert mask_utils.frPyObjects({"size": [6, 5], "counts": [13, 3, 3, 3, 8]}, 6, 5)["counts"] == rle["counts"]
    empty = np.zeros((3, 6, 5), bool)
    assert check_masks(empty, 0.01, 0.3).reason == "mask_empty"
    tiny = empty.copy()
    tiny[1, 0, 0] = True
    assert check_masks(tiny, 0.1, 0.0).reason == "mask_tiny"
    jump = empty.copy()
    jump[0, :3, :2] = jump[2, 3:, 3:] = True   # disjoint neighbours (frame 1 empty: skipped)
    assert iou(jump[0], jump[2]) == 0.0
    assert check_masks(jump, 0.1, 0.3).reason == "mask_unstable"
    assert check_masks(jump, 0.1, 0.0) is None


@pytest.mark.parametrize("backend", ["sam2", "sam3"])
def test_tiny_sam_masks(verified, tmp_path, backend):
    folder = (save_tiny_sam2 if backend == "sam2" else save_tiny_sam3)(tmp_path / backend)
    cls = "Sam2Masks" if backend == "sam2" else "Sam3Masks"
    kwargs = {"model_dir": str(folder), "min_neighbour_iou": 0.0, "min_area_frac": 0.0,
              "num_threads": 1}
    if backend == "sam3":
        kwargs["ambiguous_above"] = None  # random scores: take the best object
    spec = StageSpec(f"seeker_jax.data.pipeline.masks_sam:{cls}", kwargs)
    stage = spec.build()
    sample = verified[0]
    info, indices, frames = stage.frames(sample)
    np.testing.assert_array_equal(indices, window_indices(info, sample["window"]))
    size = stage.model.config.image_size
    assert frames.shape == (len(indices), size, size, 3)
    masks = stage.segment(sample, info, indices, frames)
    assert masks.shape == (len(indices), info.height, info.width) and masks.dtype == bool
    out = stage(sample)
    if out.kept:  # the record's RLE is exactly the model's masks
        rec = out.value
        assert rec["mask_backend"] == backend and rec["masks"]["size"] == [info.height, info.width]
        got = np.stack([decode_rle(c, rec["masks"]["size"]) for c in rec["masks"]["rle"]])
        np.testing.assert_array_equal(got, masks)
    else:
        assert out.value.reason in REASONS
    # defaults (stability and ambiguity checks on) through the runner: kept or a reason
    defaults = StageSpec(spec.cls, {"model_dir": str(folder), "num_threads": 1})
    kept, report = runner.run_stage("3_masks", defaults, verified, tmp_path / "stage")
    assert report.num_in == len(verified) and set(report.rejected) <= REASONS
    assert len(kept) + sum(report.rejected.values()) == len(verified)
    assert VideoFile(sample["video_path"]).info.width == info.width
