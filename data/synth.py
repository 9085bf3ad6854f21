"""Writes a synthetic dataset: mp4 videos, exact tracks, prompt frames and V2P-style records.

Why per-video seeds: video i is drawn from `np.random.default_rng([seed, i])` alone, so videos
can be made in parallel, in any order, and the same seed gives byte-identical files (libx264
runs with one thread and without mbtree; records are JSON with sorted keys). Dimensions and prompt types cycle
with the global question slot so a dataset is balanced over both.
"""
from __future__ import annotations

import json
import math
import multiprocessing
from pathlib import Path
from typing import Any, Iterator

import av
import ml_collections
import numpy as np
from PIL import Image
from tqdm import tqdm

from seeker_jax.data import records as records_lib
from seeker_jax.data.questions import Context, Question, answer_of, ask
from seeker_jax.data.simulate import simulate
from seeker_jax.data.visual_prompt import fill_placeholder, render_visual_prompt
from seeker_jax.data.world import COLOR_NAMES, World

SOURCE = "seeker-synth"
LETTERS = "ABCD"
_GOLDEN = 0.6180339887498949


def write_mp4(path: str | Path, frames: Iterator[np.ndarray], fps: int, crf: int = 23,
              preset: str = "veryfast") -> None:
    """Encodes (H, W, 3) uint8 frames to H.264 yuv420p mp4, byte-deterministic: one thread,
    explicit pts, no macroblock-tree rate control."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = None
        for index, frame in enumerate(frames):
            if stream is None:
                h, w = frame.shape[:2]
                if h % 2 or w % 2:
                    raise ValueError(f"write_mp4: yuv420p needs even sizes, got {w}x{h}")
                stream = container.add_stream("libx264", rate=fps)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                stream.codec_context.thread_count = 1
                # mbtree reads uninitialized lookahead padding: with it on, the same frames
                # encode to different bytes from run to run (seen here at 96x64 and 320x240).
                stream.options = {"crf": str(crf), "preset": preset, "threads": "1",
                                  "x264-params": "mbtree=0"}
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = index
            for packet in stream.encode(vf):
                container.mux(packet)
        if stream is None:
            raise ValueError("write_mp4: no frames")
        for packet in stream.encode():
            container.mux(packet)


def split_of(index: int, cfg: ml_collections.ConfigDict) -> str:
    """Split of video `index`: a low-discrepancy sequence, so even small sets get val/test."""
    u = ((index + 1) * _GOLDEN) % 1.0
    return "val" if u < cfg.splits.val else "test" if u < cfg.splits.val + cfg.splits.test else "train"


def _prompt_frames(ctx: Context, k: int, min_frac: float) -> np.ndarray:
    ok = (ctx.visible_px[k] >= ctx.min_visible_px) & (
        ctx.visible_px[k] >= min_frac * np.maximum(ctx.full_px[k], 1))
    return np.nonzero(ok)[0]


def _options(q: Question, rng: np.random.Generator) -> dict[str, str] | None:
    """A-D with the answer and 3 distractors (up to 2 from other instances' answers)."""
    if len(q.distractors) < 3:
        return None
    n_others = min(2, len(q.distractors))
    picks = list(q.distractors[:n_others])
    rest = q.distractors[n_others:]
    picks += [rest[i] for i in rng.permutation(len(rest))[:3 - len(picks)]]
    opts = [q.answer] + picks
    opts = [opts[i] for i in rng.permutation(4)]
    return {LETTERS[i]: o[0].upper() + o[1:] for i, o in enumerate(opts)}


def make_video_records(cfg: ml_collections.ConfigDict, seed: int, index: int,
                       out: str | Path) -> list[dict[str, Any]]:
    """Simulates video `index`, writes its mp4, tracks and prompt frames under `out`, and
    returns its records (up to `questions.per_video`), paths relative to `out`."""
    if cfg.get("seek") is not None:
        from seeker_jax.data import seek
        return seek.make_video_records(cfg, seed, index, out)
    out = Path(out)
    rng = np.random.default_rng([seed, index])
    world = simulate(cfg, rng)
    video_id = f"synth{seed}_{index:06d}"
    video_rel, tracks_rel = f"videos/{video_id}.mp4", f"tracks/{video_id}.npz"
    background = world.render_background()
    write_mp4(out / video_rel, (world.render_frame(f, background) for f in range(world.num_frames)),
              world.fps, cfg.video.crf, cfg.video.preset)
    world.save(out / tracks_rel)
    ctx = Context.build(world, cfg.questions.min_visible_px,
                        cfg.questions.get("color_stable_s", 0.0))
    dims, types = list(cfg.questions.dimensions), list(cfg.prompts.types)
    per_video = int(cfg.questions.per_video)
    candidates = [k for k in range(world.num_instances)
                  if len(_prompt_frames(ctx, k, cfg.questions.min_visible_frac))]
    records, asked = [], set()
    for q_slot in range(per_video):
        slot = index * per_video + q_slot
        order = [dims[(slot + i) % len(dims)] for i in range(len(dims))]
        question = None
        for dimension in order:  # the slot's dimension first, then the next ones
            for _ in range(12 if candidates else 0):
                k = int(rng.choice(candidates))
                prompt_f = int(rng.choice(_prompt_frames(ctx, k, cfg.questions.min_visible_frac)))
                question = ask(ctx, k, dimension, rng, prompt_f)
                if question is not None and (k, question.template) not in asked:
                    break
                question = None
            if question is not None:
                break
        if question is None:
            continue
        asked.add((k, question.template))
        records.append(_record(world, ctx, question, k, prompt_f, types[slot % len(types)],
                               cfg, rng, video_id, video_rel, tracks_rel, len(records), out))
    return records


def _record(world: World, ctx: Context, q: Question, k: int, prompt_f: int, prompt_type: str,
            cfg: ml_collections.ConfigDict, rng: np.random.Generator, video_id: str,
            video_rel: str, tracks_rel: str, n: int, out: Path) -> dict[str, Any]:
    masks = world.visible_masks(prompt_f)
    others = [masks[j] for j in range(world.num_instances)
              if j != k and masks[j].sum() >= cfg.questions.min_visible_px]
    vp = render_visual_prompt(world.render_frame(prompt_f), masks[k], others, rng, prompt_type)
    record_id = f"{video_id}_q{n}"
    frame_rel = f"frames/{record_id}.png"
    Image.fromarray(vp.image).save(out / frame_rel, optimize=False)
    options = _options(q, rng) if rng.random() < cfg.questions.mc_fraction else None
    text = fill_placeholder(q.template, vp.phrase)
    if options:
        answer = next(letter for letter, o in options.items() if o.lower() == q.answer.lower())
        text = text + "".join(f"\n{letter}. {o}" for letter, o in options.items())
    else:
        answer = q.answer
    guess = _guess_answer(q, options, cfg, rng)
    shortcut = (_shortcut_answer(ctx, q, k, prompt_f, options, cfg, rng) if guess is None
                else None)
    confused = (_confused_answer(q, options, cfg, rng) if guess is None and shortcut is None
                else None)
    return {**({"teacher_shortcut": shortcut} if shortcut is not None else {}),
        **({"teacher_guess": guess} if guess is not None else {}),
        **({"teacher_answer": confused} if confused is not None else {}),
        "id": record_id, "video_id": video_id, "video_path": video_rel,
        "duration": round(world.duration, 3), "question": text, "answer": answer,
        "source": SOURCE, "frame_path": frame_rel, "dimension": q.dimension,
        "category": "synthetic", "target_track_id": k, "prompt_type": prompt_type,
        "prompt_frame_index": prompt_f, "prompt_time": round(world.time(prompt_f), 4),
        "evidence_window": list(q.evidence), "question_form": "mc" if options else "open",
        "options": options or {}, "answer_text": q.answer, "question_template": q.template,
        "target_phrase": vp.phrase, "spec": q.spec, "tracks_path": tracks_rel,
        "prompt_color": vp.color, "prompt_geometry": vp.geometry,
        "split": split_of(int(video_id.rsplit("_", 1)[1]), cfg),
    }


def _guess_answer(q: Question, options: dict[str, str] | None,
                  cfg: ml_collections.ConfigDict, rng: np.random.Generator) -> str | None:
    """For a `teacher.guess` share of the questions: the answer of a teacher that calls no tool
    and guesses, uniformly among the options' letters (multiple choice) or the world's color
    names (an open question whose answer is a color). Right by chance only. Else None, and no
    random draw is made when the share is 0, so worlds without a guessing teacher are
    unchanged."""
    share = float(cfg.get("teacher", {}).get("guess", 0.0))
    if share <= 0:
        return None
    pool = sorted(options) if options else (list(COLOR_NAMES) if q.answer in COLOR_NAMES
                                            else [])
    if not pool or rng.random() >= share:
        return None
    return str(pool[int(rng.integers(len(pool)))])


def confuse_pairs(spec: str) -> dict[str, str]:
    """`teacher.confuse_pairs` ("red:orange,blue:purple") as a symmetric map, color -> the color
    the teacher mistakes it for. Raises on a name that is not a world color or a color in two
    pairs."""
    partner: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        names = [n.strip() for n in pair.split(":")]
        bad = [n for n in names if n not in COLOR_NAMES]
        if len(names) != 2 or bad or names[0] == names[1]:
            raise ValueError(f"teacher.confuse_pairs: {pair!r} is not two different colors "
                             f"a:b of {', '.join(COLOR_NAMES)}")
        for a, b in (names, names[::-1]):
            if a in partner:
                raise ValueError(f"teacher.confuse_pairs: {a!r} is in two pairs")
            partner[a] = b
    return partner


def _confused_answer(q: Question, options: dict[str, str] | None,
                     cfg: ml_collections.ConfigDict, rng: np.random.Generator) -> str | None:
    """For a `teacher.confuse` share of the questions whose answer is a color of one of
    `teacher.confuse_pairs`: the answer of a teacher that looks as always but mixes up the
    pair, the other color (its letter for multiple choice, where it is an option). Else None,
    and no random draw is made when the share is 0 or the answer is in no pair, so other
    worlds are unchanged."""
    teacher = cfg.get("teacher", {})
    share = float(teacher.get("confuse", 0.0))
    if share <= 0:
        return None
    other = confuse_pairs(str(teacher.get("confuse_pairs", ""))).get(q.answer)
    if other is None or rng.random() >= share:
        return None
    if not options:
        return other
    return next((letter for letter, o in options.items() if o.lower() == other), None)


def _shortcut_answer(ctx: Context, q: Question, k: int, prompt_f: int,
                     options: dict[str, str] | None, cfg: ml_collections.ConfigDict,
                     rng: np.random.Generator) -> str | None:
    """For a `teacher.shortcut` share of the questions about one time: the answer a teacher that
    skips the crop gives, what the marked frame shows (the question's reading at the prompt
    frame's time; its letter for multiple choice). Else None, and no random draw is made, so
    worlds without a shortcut teacher are unchanged."""
    share = float(cfg.get("teacher", {}).get("shortcut", 0.0))
    if share <= 0 or "t" not in q.spec or rng.random() >= share:
        return None
    seen = answer_of(ctx, {**q.spec, "t": ctx.world.time(prompt_f)}, k)
    if seen is None or not options:
        return seen
    return next((letter for letter, o in options.items() if o.lower() == seen.lower()), None)


def _work(args: tuple) -> list[dict[str, Any]]:
    cfg_dict, seed, index, out = args
    return make_video_records(ml_collections.ConfigDict(cfg_dict), seed, index, out)


def synthesize(out: str | Path, num: int, seed: int, cfg: ml_collections.ConfigDict,
               workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """Writes `num` records (and their videos) under `out`; returns the summary in meta.json.

    Videos are made until `num` records exist; the last video's extra records are dropped.
    """
    out = Path(out)
    for sub in ("videos", "tracks", "frames", "records"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    per_video = int(cfg.questions.per_video)
    cfg_dict = cfg.to_dict()
    collected: list[dict[str, Any]] = []
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    bar = tqdm(total=num, desc="synth", unit="rec", disable=not progress)
    index = 0
    try:
        while len(collected) < num:
            batch = max(1, math.ceil((num - len(collected)) / per_video))
            batch = min(batch, 4 * max(workers, 1))
            jobs = [(cfg_dict, seed, i, str(out)) for i in range(index, index + batch)]
            results = pool.imap(_work, jobs) if pool else map(_work, jobs)
            for recs in results:
                take = recs[:num - len(collected)]
                collected += take
                bar.update(len(take))
            index += batch
            if index > 50 * max(num, 1):
                raise RuntimeError("synth: the config yields almost no questions; loosen "
                                   "questions.min_visible_px or add instances")
    finally:
        bar.close()
        if pool:
            pool.close()
            pool.join()
    counts = {}
    for split in records_lib.SPLITS:
        counts[split] = records_lib.write_records(
            records_lib.split_path(out, split), (r for r in collected if r["split"] == split))
    meta = {"seed": seed, "num_records": len(collected), "num_videos": index, "splits": counts,
            "config": cfg_dict}
    (out / "meta.json").write_text(json.dumps(meta, sort_keys=True, indent=1, default=list))
    return meta


def prepare_data(config: ml_collections.ConfigDict, workdir: str, writer: bool = True) -> str:
    """A training run's dataset root: config.data.root, or a synthetic world made once in
    WORKDIR/data (config.data.synth_num questions of preset config.data.synth_preset, seed
    config.seed). SFT, GRPO and the demo share it. writer: whether this process writes the
    world (in a multi-host run only process 0 does)."""
    if config.data.root:
        return config.data.root
    root = str(Path(workdir) / "data")
    if writer and not (Path(root) / "records" / "train.array_record").is_file():
        from seeker_jax.config import load_config

        synthesize(root, config.data.synth_num, config.seed,
                   load_config(f"configs/synth.py:{config.data.synth_preset}"))
    return root
