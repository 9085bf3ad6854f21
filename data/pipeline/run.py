"""The whole pipeline: read, then the four stages in order, then the dataset and the funnel.

Workdir layout:
  read/                 rejected.jsonl, report.json (bad records, missing videos)
  1_text_filter/ 2_verify/ 3_masks/ 4_render/   each: log.jsonl, out.array_record,
                        rejected.jsonl, report.json (see runner.py)
  dataset/              records/{train,val,test}.array_record + frames/*.png: what
                        `RecordSource(W/dataset)` (SFT, GRPO, eval) reads
  api_cache/            the chat client's on-disk cache (a rerun never pays twice)
  funnel.json, funnel.md, funnel.png, config.json
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import ml_collections

from seeker_jax.data.pipeline import runner
from seeker_jax.data.pipeline.funnel import write_funnel
from seeker_jax.data.pipeline.masks_sam2pkg import INSTALL as SAM2_INSTALL
from seeker_jax.data.pipeline.readers import READERS, ReadResult
from seeker_jax.data.pipeline.runner import StageReport
from seeker_jax.data.pipeline.stage import StageSpec
from seeker_jax.data.records import SPLITS, split_path, write_records
from seeker_jax.errors import UserError

STAGES = ("1_text_filter", "2_verify", "3_masks", "4_render")
_P = "seeker_jax.data.pipeline"


def _client(cfg: ml_collections.ConfigDict, stage: str, workdir: Path) -> dict[str, Any]:
    model = cfg[stage].model or cfg.api.model
    if not model:
        raise UserError(f"pipeline: stage {stage} needs a model: set --config.api.model="
                        "URL#MODEL (or --config.{stage}.model)")
    return {"model": model, "max_concurrency": int(cfg.api.max_concurrency),
            "rate_limit_per_s": float(cfg.api.rate_limit_per_s) or None,
            "timeout_s": float(cfg.api.timeout_s), "max_retries": int(cfg.api.max_retries),
            "cache_dir": str(workdir / "api_cache"), "attempts": int(cfg.api.attempts),
            "json_mode": cfg.api.json_mode or None, "max_tokens": int(cfg.api.max_tokens)}


def stage_specs(cfg: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict[str, StageSpec]:
    """The four stages of a config, as specs any process (or Ray worker) can build."""
    workdir = Path(workdir).resolve()
    if cfg.text_filter.backend == "rule":
        text = StageSpec(f"{_P}.text_filter:RuleTextFilter")
    elif cfg.text_filter.backend == "llm":
        text = StageSpec(f"{_P}.text_filter:LlmTextFilter", _client(cfg, "text_filter", workdir))
    else:
        raise UserError(f"pipeline: text_filter.backend {cfg.text_filter.backend!r}: use llm or rule")
    verify = StageSpec(f"{_P}.verify:VlmVerify", {
        **_client(cfg, "verify", workdir), "fps": float(cfg.verify.fps),
        "max_frames": int(cfg.verify.max_frames), "max_pixels": int(cfg.verify.max_pixels)})
    common = {"fps": float(cfg.masks.fps), "min_area_frac": float(cfg.masks.min_area_frac),
              "min_neighbour_iou": float(cfg.masks.min_neighbour_iou)}
    backend = cfg.masks.backend
    sam = {**common, "threshold": float(cfg.masks.threshold),
           "num_threads": int(cfg.masks.num_threads) or None}
    if backend == "oracle":
        masks = StageSpec(f"{_P}.masks:OracleMasks", common)
    elif backend in ("sam3", "sam2"):
        if not cfg.masks.model_dir:
            raise UserError(f"pipeline: masks.backend {backend} needs --config.masks.model_dir="
                            "a transformers folder of the model")
        cls = "Sam3Masks" if backend == "sam3" else "Sam2Masks"
        masks = StageSpec(f"{_P}.masks_sam:{cls}", {**sam, "model_dir": cfg.masks.model_dir})
    elif backend == "sam2_pkg":
        masks = _sam2_pkg_spec(cfg, sam)
    else:
        raise UserError(f"pipeline: masks.backend {backend!r}: use sam3, sam2, sam2_pkg or oracle")
    phrase = cfg.render.get("phrase", "template")
    if phrase not in ("template", "llm"):
        raise UserError(f"pipeline: render.phrase {phrase!r}: use template or llm")
    render = StageSpec(f"{_P}.render:Render", {
        "frames_dir": str(workdir / "dataset" / "frames"), "seed": int(cfg.seed),
        "types": list(cfg.render.types),
        "phrase_llm": _client(cfg, "render", workdir) if phrase == "llm" else None})
    return dict(zip(STAGES, (text, verify, masks, render)))


def _sam2_pkg_spec(cfg: ml_collections.ConfigDict, sam: dict[str, Any]) -> StageSpec:
    """Meta's sam2 package as stage 3: checked here, before any stage runs, that the package
    is installed and a checkpoint is given (random weights are for tests only)."""
    if importlib.util.find_spec("sam2") is None:
        raise UserError("pipeline: masks.backend sam2_pkg needs Meta's sam2 package, which is "
                        f"not installed; install it with {SAM2_INSTALL}")
    if not cfg.masks.checkpoint:
        raise UserError("pipeline: masks.backend sam2_pkg needs --config.masks.checkpoint=a "
                        f"sam2 .pt file matching masks.sam2_config ({cfg.masks.sam2_config})")
    if not os.path.isfile(cfg.masks.checkpoint):
        raise UserError(f"pipeline: masks.checkpoint {cfg.masks.checkpoint} is not a file; give "
                        "the path of a sam2 .pt file")
    return StageSpec(f"{_P}.masks_sam2pkg:Sam2PkgMasks", {
        **sam, "model_config": cfg.masks.sam2_config, "checkpoint": cfg.masks.checkpoint,
        "image_size": int(cfg.masks.image_size) or None, "device": cfg.masks.device or None})


def read_input(cfg: ml_collections.ConfigDict, path: str | os.PathLike) -> ReadResult:
    if cfg.reader not in READERS:
        raise UserError(f"pipeline: reader {cfg.reader!r}: one of {sorted(READERS)}")
    if not os.path.exists(path):
        raise UserError(f"pipeline: input {path} does not exist")
    if cfg.reader == "synth":
        return READERS["synth"](path, cfg.split)
    return READERS[cfg.reader](path)


def _read_report(result: ReadResult, out_dir: Path) -> StageReport:
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = [{"id": s["id"], "kept": True, "seconds": 0.0, "tokens": 0} for s in result.samples]
    entries += [{"id": i, "kept": False, "reason": r.reason, "detail": r.detail, "seconds": 0.0,
                 "tokens": 0} for i, r in result.rejected]
    (out_dir / runner.REJECTED).write_text("".join(
        json.dumps({"id": i, "reason": r.reason, "detail": r.detail}, sort_keys=True) + "\n"
        for i, r in result.rejected))
    return runner.summarize("read", entries, 0.0)


def run_pipeline(cfg: ml_collections.ConfigDict, input_path: str | os.PathLike,
                 workdir: str | os.PathLike, *, use_ray: bool = False,
                 stop_after: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Runs (or resumes) every stage; returns the funnel. `stop_after`: a stage name."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(cfg.to_json(indent=1, sort_keys=True))
    specs = stage_specs(cfg, workdir)
    result = read_input(cfg, input_path)
    reports = [_read_report(result, workdir / "read")]
    samples = result.samples
    for name in STAGES:
        samples, report = runner.run_stage(name, specs[name], samples, workdir / name,
                                           workers=int(cfg.workers), use_ray=use_ray,
                                           progress=progress)
        reports.append(report)
        if name == stop_after:
            break
    else:
        records = link_videos(samples, workdir / "dataset")
        for split in SPLITS:
            write_records(split_path(workdir / "dataset", split),
                          [r for r in records if r.get("split", "train") == split])
    return write_funnel(reports, workdir)


def link_videos(records: list[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    """Records whose videos live under the dataset root (hard links, a copy across file
    systems), paths relative to it: the env's sandbox reads only a sample's own files under
    its root, and a dataset can then move as one folder."""
    import shutil

    (root / "videos").mkdir(parents=True, exist_ok=True)
    names: dict[str, str] = {}
    out = []
    for record in records:
        src = os.path.realpath(record["video_path"])
        if src not in names:
            stem, suffix = Path(src).stem, Path(src).suffix
            name = f"{stem}{suffix}"
            if name in names.values():  # two sources, one file name
                name = f"{stem}-{hashlib.sha256(src.encode()).hexdigest()[:8]}{suffix}"
            names[src] = name
            dst = root / "videos" / name
            if not dst.exists():
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
        out.append({**record, "video_path": f"videos/{names[src]}"})
    return out
