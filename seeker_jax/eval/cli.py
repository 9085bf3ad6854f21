"""`seeker-jax eval`'s work, behind the CLI's thin wrapper: config -> env, backend, samples."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from seeker_jax.env.config import EnvConfig
from seeker_jax.errors import UserError
from seeker_jax.eval.models import load_backend, model_kind
from seeker_jax.eval.protocols import get_protocol
from seeker_jax.eval.readers import ReadError, read_samples
from seeker_jax.eval.runner import check_run_key, run_eval

GROUP_KEYS = {"v2p": ("dimension", "duration"), "videomme": ("duration", "task_type"),
              "synthetic": ("prompt_type", "duration")}
# Config keys that change how fast answers come, never which: a resume may change them.
RESUMABLE_KEYS = ("batch_size", "resamples", "viewer_mb")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_key(config, model: str, data: str, video_root: str | None,
            frame_root: str | None) -> dict:
    """What makes an eval's answers: the model (paths made absolute; `ckpt:` names the step
    folder it loads, so a workdir trained further is another model), the protocol, the data
    (its path and content hash, the roots) and the config but the RESUMABLE_KEYS."""
    kind, sep, rest = model.partition(":")
    if sep and kind in ("ckpt", "hf"):
        model = f"{kind}:{os.path.abspath(rest)}"
    if sep and kind == "ckpt":  # a workdir trained further is another model: key its step
        from seeker_jax.checkpointing.checkpoint import CheckpointError, find_params

        try:
            model = f"ckpt:{os.path.dirname(find_params(rest).params_dir)}"
        except CheckpointError:
            pass  # loading the model reports it
    conf = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_KEYS}
    return {"model": model, "protocol": str(config.protocol),
            "data": {"path": os.path.abspath(data), "sha256": _sha256(data),
                     "video_root": video_root and os.path.abspath(video_root),
                     "frame_root": frame_root and os.path.abspath(frame_root)},
            "config": conf}


def run_eval_command(config, model: str, data: str, workdir: str, video_root: str | None = None,
                     frame_root: str | None = None, limit: int | None = None,
                     overwrite: bool = False) -> dict:
    """Resolves the config, loads the model and the samples, runs (or resumes) the eval.

    A workdir holding another run's results (runner.check_run_key) is an error before the
    model loads, unless `overwrite` (they are deleted). --limit may change between runs."""
    try:
        protocol = get_protocol(config.protocol)
        model_kind(model)  # a malformed --model is named before the data is read
        samples = read_samples(config.data_format, data, video_root, frame_root)
    except (ValueError, ReadError) as e:
        raise UserError(str(e)) from e
    if not samples:
        raise UserError(f"eval: {data} holds no records, so there is nothing to evaluate; "
                        "give a split that has some (`seeker-jax data import` prints the "
                        "count per split)")
    samples = samples[:limit] if limit else samples
    check_run_key(workdir, run_key(config, model, data, video_root, frame_root), overwrite)
    max_new = int(config.max_new_tokens) or protocol.max_new_tokens
    try:
        backend, saved = load_backend(model, batch_size=int(config.batch_size),
                                      max_len=int(config.max_len), max_new_tokens=max_new,
                                      max_turns=protocol.max_turns,
                                      tool_mode=str(config.tool_mode),
                                      video_mode=str(config.get("video_mode", "frames")),
                                      tool_role=str(config.get("tool_role", "tool")),
                                      cache_dir=str(Path(workdir) / "api_cache"))
    except ValueError as e:
        raise UserError(str(e)) from e
    env = saved if (saved is not None and config.use_saved_env) else \
        EnvConfig.from_config(config.env)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    (Path(workdir) / "config.json").write_text(config.to_json(indent=2))
    return run_eval(samples, backend, env, protocol, workdir, batch_size=int(config.batch_size),
                    group_keys=GROUP_KEYS[config.data_format],
                    meta={"model": model, "data": str(data), "env": env.to_dict()},
                    resamples=int(config.resamples),
                    viewer_bytes=None if config.viewer_mb < 0 else int(config.viewer_mb * 2**20))
