"""The synthetic instance-level video world (`seeker-jax synth`).

Presets:
  default  10 s, 15 fps, 320x240, 4-6 instances: the embedded default and the first runs.
  tiny     4 s, 8 fps, 96x64, 3-4 instances: tests (fractions of a second each).
  demo     tiny, with multiple choice wherever a question has 3 distractors (a letter to
           answer, scored by rule): what `seeker-jax demo` trains, runs and scores.
  demo_128 demo at 128x128 px (objects 26-40 px across): with configs/env.py:tiny_128 each
           frame is 16 vision tokens, not 4, so a tiny model can tell the marked object.
  learn    the "it learns" run (configs/demo.py:long), a world a tiny model trained from
           scratch can read: 128x128 px, ONE large instance that keeps its color, never leaves
           and is never occluded, and one open-ended question per video, "What color is
           <target> at T s?", answered with the color's name (scored by rule). The visual
           prompt still marks it and the tools still show it; telling instances apart is
           what this world leaves out.
  learn_guess  learn, with a lazy scripted teacher: 60% of its trajectories call no tool and
           guess the color (teacher.guess), the rest view the marked frame and crop as
           always. SFT on them learns to skip the tools most of the time, so its greedy answer
           is a guess; a sampled episode that looks is meant to be right far more often, so
           that GRPO's reward favours looking (configs/demo.py:guess).
  learn_confuse  learn, with a teacher that mixes up two pairs of hues (teacher.confuse_pairs,
           red/orange and blue/purple): it views the marked frame and crops as always, but on
           70% of the questions whose answer is one of those four colors it answers the pair's
           other color. The records' answers (what rewards and evaluation score) stay the
           truth. SFT on it is meant to learn the mix-up (its greedy answer wrong for those
           colors, its samples sometimes right): a systematic teacher error that only a reward
           can correct (configs/demo.py:confuse).
  learn_tools  the GRPO "it learns" run (configs/demo.py:tools): learn, but the instance
           changes color at most pauses, so "What color is <target> at T s?" is asked at a
           time its color differs from the marked frame's (data/questions.py) and only the
           crop shows the answer; and a weak scripted teacher: 60% of its trajectories view
           the marked frame and answer from it without cropping (teacher.shortcut). SFT on
           them learns to skip the crop most of the time; whether GRPO learns to crop is the
           question the run answers (docs/results.md).
  seek     the world where the crop decides (data/seek.py; issue #34's run, bench/seek.py):
           one 64x64 shape, 8 s at 8 fps, a base color but for a 1.2 s flash of another color
           that no overview frame shows (4 overview frames, configs/env.py:seek); "What color
           is <target> at k.5 s?" is answered by a crop of [k, k + 1]. An imperfect teacher
           crops that window on 35% of records, the whole video on 55% (too wide) and a 1 s
           window that misses the flash on 10% (wrong), and answers what its crop showed.
  seek_restate  seek, with the teacher's crop turn restating the time asked about first
           ("<think>About k.5 s. I watch a to b s.</think>"): the pilot before issue #34's
           protocol 2 (it did not teach the copy; docs/results.md).
  seek_fixed  seek, but every video flashes around the same second (k = 3): the window to crop
           is the world's, not the question's (issue #34's protocol 2; a tiny model that cannot
           copy a number from its prompt can still learn it).
  seek_perceive  the perception stage's records on the seek world: "What color is <target>
           from a to a + 1 s?" (crop that window, name the shape and color it shows) and
           "What color is <target>?" (no tool; the overview's color), 4 per video.
  learn_crop  learn_tools, but a time is asked about only where the color holds over the
           teacher's whole crop window (questions.color_stable_s 0.5): the crop shows one
           color, the answer (configs/demo.py:crop).
"""
import ml_collections

DIMENSIONS = ("OA", "OD", "FT", "RT", "AS", "SR", "GC")
PROMPT_TYPES = ("rectangle", "mask_contour", "ellipse", "triangle", "scribble", "point",
                "arrow", "set_of_mark")


def get_config(preset: str = "default") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()

    c.video = ml_collections.ConfigDict()
    c.video.width = 320
    c.video.height = 240
    c.video.fps = 15
    c.video.seconds = 10.0
    c.video.crf = 23             # libx264 quality; encoded with one thread (byte-exact)
    c.video.preset = "veryfast"

    c.world = ml_collections.ConfigDict()
    c.world.min_instances = 4
    c.world.max_instances = 6
    c.world.min_kinds = 2            # shape kinds in a video; each kind has >= 2 instances
    c.world.size_frac = (0.07, 0.12)   # instance half-size as a fraction of the frame height
    c.world.segment_seconds = (0.9, 2.2)  # one move or pause
    c.world.speed_frac = (0.12, 0.3)      # speed as a fraction of the frame width per second
    c.world.p_pause = 0.3
    c.world.p_recolor = 0.5              # a pause changes the color
    c.world.p_resize = 0.3               # a pause grows or shrinks the instance
    c.world.p_leave = 0.12               # a move leaves the frame (it re-enters later)
    c.world.p_start_outside = 0.25       # the instance enters the frame after the start
    c.world.occluder = True              # one static foreground bar (occlusions)

    c.questions = ml_collections.ConfigDict()
    c.questions.per_video = 4
    c.questions.dimensions = DIMENSIONS
    c.questions.mc_fraction = 0.7        # the rest are open-ended
    c.questions.min_visible_px = 40      # the target on the prompt frame
    c.questions.min_visible_frac = 0.6   # of its full (unoccluded) in-frame area
    c.questions.color_stable_s = 0.0     # > 0: "What color is it at T s?" only where its color
                                         # holds for T +- this (the teacher's crop window)

    c.prompts = ml_collections.ConfigDict()
    c.prompts.types = PROMPT_TYPES

    c.teacher = ml_collections.ConfigDict()
    c.teacher.shortcut = 0.0   # fraction of records whose scripted teacher answers from the
                               # marked frame alone, without a crop (data/trajectories.py);
                               # only questions about one time have such an answer
    c.teacher.guess = 0.0      # fraction of records whose scripted teacher calls no tool and
                               # guesses (an option letter, or a color name); chance only
    c.teacher.confuse = 0.0    # fraction of the records whose answer is a color of one of
                               # `confuse_pairs` where the scripted teacher looks as always but
                               # answers the pair's other color (data/synth.py)
    c.teacher.confuse_pairs = "red:orange,blue:purple"   # colors the teacher mixes up

    c.seek = None                # a ConfigDict for the seek world (data/seek.py), else None

    c.splits = ml_collections.ConfigDict()
    c.splits.val = 0.1
    c.splits.test = 0.1

    if preset == "default":
        pass
    elif preset == "tiny":
        c.video.width, c.video.height, c.video.fps, c.video.seconds = 96, 64, 8, 4.0
        c.world.min_instances, c.world.max_instances = 3, 4
        c.world.size_frac = (0.1, 0.16)
        c.world.segment_seconds = (0.5, 1.0)
        c.world.speed_frac = (0.25, 0.45)
        c.questions.per_video = 3
        c.questions.min_visible_px = 12
    elif preset == "demo":
        c = get_config("tiny")
        c.questions.mc_fraction = 1.0
    elif preset == "demo_128":
        c = get_config("demo")
        c.video.width = c.video.height = 128
        c.questions.min_visible_px = 32   # the tiny preset's 12 px, scaled by the frame area
    elif preset == "learn":
        c = get_config("demo_128")
        c.world.min_instances = c.world.max_instances = 1
        c.world.min_kinds = 1
        c.world.size_frac = (0.15, 0.25)
        c.world.p_recolor = c.world.p_leave = c.world.p_start_outside = 0.0
        c.world.occluder = False
        c.questions.dimensions = ("OA",)
        c.questions.mc_fraction = 0.0
        c.questions.per_video = 1
    elif preset == "learn_guess":
        c = get_config("learn")
        c.teacher.guess = 0.6
    elif preset == "learn_confuse":
        c = get_config("learn")
        c.teacher.confuse = 0.7
    elif preset == "learn_tools":
        c = get_config("learn")
        c.world.p_pause = 0.6
        c.world.p_recolor, c.world.p_resize = 1.0, 0.0
        c.teacher.shortcut = 0.6
    elif preset == "learn_crop":
        c = get_config("learn_tools")
        c.questions.color_stable_s = 0.5
    elif preset in ("seek", "seek_restate", "seek_fixed", "seek_perceive"):
        c.video.width = c.video.height = 64
        c.video.fps, c.video.seconds = 8, 8.0
        c.questions.per_video = 4 if preset == "seek_perceive" else 1
        c.seek = ml_collections.ConfigDict(dict(
            kind="perceive" if preset == "seek_perceive" else "task",
            restate_time=preset == "seek_restate",   # the crop turn's think restates k.5 s
            fixed_second=3 if preset == "seek_fixed" else None,   # k for every video
            overview_frames=4,        # = configs/env.py:seek's video.max_frames (tested)
            size_frac=(0.28, 0.4),    # the shape's half-size, a fraction of the frame height
            teacher_right=0.35, teacher_wide=0.55,   # the rest: a wrong 1 s window
            perceive_overview=0.25))  # perception questions answered from the overview
    else:
        raise ValueError(f"configs/synth.py: unknown preset {preset!r}; use default, tiny, "
                         "demo, demo_128, learn, learn_guess, learn_confuse, learn_tools, "
                         "learn_crop, seek, seek_restate, seek_fixed or seek_perceive")
    return c
