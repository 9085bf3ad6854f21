"""Run one tool call on one record by hand: what exactly would the model see?

Backs `seeker-jax tool --record RECORD.json --call '<tool_call>...</tool_call>'`.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from PIL import Image

from seeker_jax.env.parser import ParseError, parse_tool_calls
from seeker_jax.env.records import SampleRecord
from seeker_jax.env.sandbox import Sandbox
from seeker_jax.env.tools import ToolConfig, ToolRunner


def inspect_call(record: SampleRecord, call_text: str, root: str | os.PathLike,
                 out_dir: str | os.PathLike | None = None,
                 config: ToolConfig = ToolConfig()) -> dict:
    """Runs every call in `call_text` on `record`; saves the frames shown as PNGs in out_dir.

    Returns {"calls": [{"name", "arguments", "error", "text", "latency_s", "frames":
    [{"path", "time"}], "vision": {"grid_thw", "tokens"}}]} — text is the tool response with
    vision spans written as placeholders.
    """
    out = Path(out_dir or tempfile.mkdtemp(prefix="seeker_tool_"))
    out.mkdir(parents=True, exist_ok=True)
    tools = ToolRunner(Sandbox(root, record.assets()), config)
    calls = parse_tool_calls(call_text) or [ParseError("no <tool_call>...</tool_call> found")]
    results = []
    for k, call in enumerate(calls):
        start = time.perf_counter()
        obs = tools.run(call)
        latency = time.perf_counter() - start
        frames = []
        for i, (frame, t) in enumerate(zip(obs.frames, obs.frame_times)):
            path = out / f"call{k}_frame{i:03d}.png"
            Image.fromarray(frame).save(path)
            frames.append({"path": str(path), "time": t})
        vision = [{"grid_thw": p.grid_thw.tolist(),
                   "tokens": int(p.grid_thw.prod()) // 4} for p in obs.parts if hasattr(p, "grid_thw")]
        results.append({
            "name": getattr(call, "name", None), "arguments": getattr(call, "arguments", None),
            "error": obs.error, "text": obs.text, "latency_s": round(latency, 4),
            "frames": frames, "vision": vision})
    return {"record": record.video_id, "calls": results}
