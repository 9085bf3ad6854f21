"""The four-stage synthesis pipeline (`seeker-jax pipeline`).

Presets:
  default  LLM text filter + VLM verification through one OpenAI-compatible endpoint
           (set api.model=URL#MODEL, or text_filter.model / verify.model apart), SAM3 masks
           from a local transformers folder (masks.model_dir); or masks.backend=sam2_pkg
           with masks.checkpoint (Meta's sam2 package, pip install ".[sam2]").
  synth    the synthetic world: rule text filter off by default (LLM), oracle masks (the
           world's true masks; a test of stages 1, 2 and 4 against known truth).
  rules    no LLM at stage 1 (rule filter); VLM still needed for stage 2.
"""
import ml_collections


def get_config(preset: str = "default") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.reader = "qa_jsonl"        # qa_jsonl | llava_video | v2p | synth
    c.split = "train"            # synth reader only
    c.seed = 0                   # render: prompt types and colours per sample id
    c.workers = 8                # API tasks in flight / SAM actors (Ray) per stage

    c.api = ml_collections.ConfigDict()
    c.api.model = ""             # URL#MODEL for stages 1 and 2 unless set per stage
    c.api.max_concurrency = 8
    c.api.rate_limit_per_s = 0.0  # 0: none; per endpoint, per process
    c.api.timeout_s = 120.0
    c.api.max_retries = 3
    c.api.attempts = 3           # invalid JSON replies: ask again with the error, then reject
    c.api.json_mode = "json_schema"  # json_schema | json_object | "" (plain text)
    c.api.max_tokens = 512       # per reply

    c.text_filter = ml_collections.ConfigDict()
    c.text_filter.backend = "llm"  # llm | rule
    c.text_filter.model = ""

    c.verify = ml_collections.ConfigDict()
    c.verify.model = ""
    c.verify.fps = 1.0
    c.verify.max_frames = 16
    c.verify.max_pixels = 224 * 224

    c.masks = ml_collections.ConfigDict()
    # sam3: transformers' Sam3VideoModel, text-prompted by the tag (the paper's);
    # sam2: transformers' Sam2VideoModel, box-prompted by stage 2's box;
    # sam2_pkg: Meta's sam2 package (pip install ".[sam2]"), box-prompted, the reference code;
    # oracle: the synthetic world's true masks (a test of stages 1, 2 and 4)
    c.masks.backend = "sam3"     # sam3 | sam2 | sam2_pkg | oracle
    c.masks.model_dir = ""       # sam3 / sam2: transformers folder of the SAM model
    c.masks.sam2_config = "configs/sam2.1/sam2.1_hiera_l.yaml"  # sam2_pkg: the package's model config
    c.masks.checkpoint = ""      # sam2_pkg: its .pt (sam2.1_hiera_large.pt for hiera_l)
    c.masks.image_size = 0       # sam2_pkg: input side, a multiple of 32 (0: the config's, 1024)
    c.masks.device = ""          # sam2_pkg: cuda | cpu ("" : cuda when available)
    c.masks.fps = 1.0
    c.masks.min_area_frac = 0.001
    c.masks.min_neighbour_iou = 0.3
    c.masks.threshold = 0.5
    c.masks.num_threads = 0      # torch threads per SAM process / actor (0: torch default)

    c.render = ml_collections.ConfigDict()
    c.render.types = ("rectangle", "mask_contour", "ellipse", "triangle", "scribble", "point",
                      "arrow", "set_of_mark")
    c.render.phrase = "template"  # template | llm: an LLM words the reference to the mark
                                  # (checked; the template when its replies fail)
    c.render.model = ""           # render.phrase=llm: URL#MODEL (default: api.model)

    if preset == "synth":
        c.reader = "synth"
        c.masks.backend = "oracle"
        c.masks.min_neighbour_iou = 0.0  # toy shapes move a body length per second
    elif preset == "rules":
        c.text_filter.backend = "rule"
    elif preset != "default":
        raise ValueError(f"unknown pipeline preset {preset!r}; one of default, synth, rules")
    return c
