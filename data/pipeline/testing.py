"""Test stand-ins for the pipeline's models, for its tests and bench/pipeline.py (in the package
because bench/ must not import tests/): a deterministic OpenAI-API handler for stages 1-2, and
tiny random SAM video models for stage 3.

The handler gives VALID replies from the synthetic world's truth (what a perfect LLM / VLM
would say), plus scripted failures.

It is a test stand-in, stated as such: it reads the question back out of the request, looks up
the synthetic sample it came from, and answers the text filter with the target's description
and the verifier with the true tag, a window holding the evidence and the prompt frame, the
original template (one `<target>`) and the target's true box. `script[id]` makes one sample
misbehave: "drop" (text filter says no entity), "not_unique", "bad_once" (garbage, then valid
after the repair turn), "bad_always" (garbage every time).

The SAM models are transformers' real classes with random weights, saved to a folder:
Sam2VideoModel (box-prompted) and Sam3VideoModel (text-prompted), image size SAM_IMAGE.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seeker_jax.data.testing import Reply, reply_text
from seeker_jax.data.pipeline import text_filter, verify
from seeker_jax.data.pipeline.readers import split_options
from seeker_jax.data.visual_prompt import mask_bbox
from seeker_jax.data.world import World


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in content if p.get("type") == "text")


def question_of(body: dict) -> str:
    """The question stem the pipeline put in its user turn."""
    text = _text(body["messages"][1]["content"])
    stem = text.split("Question: ", 1)[1].split("\nAnswer: ", 1)[0]
    return split_options(stem)[0]


def truth_window(sample: dict) -> tuple[float, float]:
    t = sample["truth"]
    w0, w1 = t["evidence_window"]
    pt = t["prompt_frame_index"] / World.load(t["tracks_path"]).fps
    return round(min(w0, pt), 3), round(max(w1, pt + 0.01), 3)


class TruthHandler:
    def __init__(self, samples: list[dict], script: dict[str, str] | None = None):
        self.by_question = {s["question"]: s for s in samples}
        self.script = dict(script or {})

    def verification(self, sample: dict) -> dict:
        t = sample["truth"]
        world = World.load(t["tracks_path"])
        w0, w1 = truth_window(sample)
        f = t["prompt_frame_index"]
        x0, y0, x1, y1 = mask_bbox(world.visible_masks(f)[t["target_track_id"]])
        return {"unique": True, "tag": t["description"].removeprefix("the "),
                "start_time": w0, "end_time": w1, "question": t["question_template"],
                "box": [x0, y0, x1 + 1, y1 + 1], "box_time": round(f / world.fps, 4)}

    def __call__(self, body: dict) -> Reply:
        sample = self.by_question[question_of(body)]
        mode = self.script.get(sample["id"], "")
        if mode == "bad_always" or (mode == "bad_once" and len(body["messages"]) == 2):
            return reply_text('{"keep": tru')  # truncated JSON
        if body["messages"][0]["content"] == text_filter.SYSTEM:
            if mode == "drop":
                return reply_text(json.dumps({"keep": False, "entity": "", "reason": "scripted"}))
            return reply_text(json.dumps({"keep": True, "entity": sample["truth"]["description"],
                                          "reason": "a concrete shape"}))
        assert body["messages"][0]["content"] == verify.SYSTEM
        reply = self.verification(sample)
        if mode == "not_unique":
            reply["unique"] = False
        return reply_text(json.dumps(reply))


def default_script(samples: list[dict]) -> dict[str, str]:
    """One sample of each failure, on the first four samples."""
    modes = ("drop", "bad_once", "bad_always", "not_unique")
    return {s["id"]: m for s, m in zip(samples, modes)}


class DelayedHandler(TruthHandler):
    """Valid replies after `delay_s` (kill tests: a stage in flight long enough to be killed)."""

    def __init__(self, samples, script=None, delay_s: float = 0.0):
        super().__init__(samples, script)
        self.delay_s = delay_s

    def __call__(self, body: dict) -> Reply:
        reply = super().__call__(body)
        reply.delay_s = self.delay_s
        return reply


class Slow:
    """A stage that sleeps before each sample, then runs `inner` (a StageSpec's cls, kwargs):
    the same outputs, slow enough for a kill test to land mid-stage."""

    def __init__(self, cls: str, kwargs: dict, delay_s: float):
        from seeker_jax.data.pipeline.stage import StageSpec

        self.inner = StageSpec(cls, kwargs).build()
        self.name, self.holds_model = self.inner.name, self.inner.holds_model
        self.delay_s = delay_s

    def __call__(self, sample):
        import time

        time.sleep(self.delay_s)
        return self.inner(sample)

# ---------------------------------------------------------------- tiny SAM video models

SAM_IMAGE = 128


def tiny_sam2_config():
    from transformers import Sam2VideoConfig

    backbone = dict(hidden_size=16, num_attention_heads=1, image_size=[SAM_IMAGE, SAM_IMAGE],
                    blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[16, 32, 64, 128],
                    num_attention_heads_per_stage=[1, 1, 1, 1],
                    window_size_per_stage=[4, 4, 4, 4], global_attention_blocks=[3],
                    window_positional_embedding_background_size=[4, 4])
    vision = dict(backbone_config={"model_type": "sam2_hiera_det_model", **backbone},
                  backbone_channel_list=[128, 64, 32, 16],
                  backbone_feature_sizes=[[SAM_IMAGE // s] * 2 for s in (4, 8, 16)],
                  fpn_hidden_size=128)
    return Sam2VideoConfig(
        vision_config={"model_type": "sam2_vision_model", **vision},
        prompt_encoder_config=dict(hidden_size=128, image_size=SAM_IMAGE, patch_size=16),
        mask_decoder_config=dict(hidden_size=128, mlp_dim=64, num_attention_heads=1,
                                 iou_head_hidden_dim=32),
        image_size=SAM_IMAGE, memory_attention_hidden_size=128, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[SAM_IMAGE // 16] * 2, memory_encoder_hidden_size=128,
        memory_encoder_output_channels=64, mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128, memory_fuser_intermediate_dim=64, num_maskmem=3)


def save_tiny_sam2(out: str | Path, seed: int = 0) -> Path:
    import torch
    from transformers import Sam2VideoModel

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # random init of small tensors: threads only contend
    try:
        torch.manual_seed(seed)
        Sam2VideoModel(tiny_sam2_config()).eval().save_pretrained(out)
    finally:
        torch.set_num_threads(threads)
    return Path(out)


SAM3_IMAGE, SAM3_PATCH = 112, 14  # an 8x8 patch grid


def tiny_sam3_config():
    """Sam3VideoConfig: a 2-layer ViT detector (facts from transformers' own Sam3 tests) and a
    small tracker; widths 128 where the tracker needs its hidden size > its memory width."""
    from transformers import Sam3VideoConfig

    grid, hidden = SAM3_IMAGE // SAM3_PATCH, 128
    backbone = dict(model_type="sam3_vit_model", hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=64, image_size=SAM3_IMAGE,
                    patch_size=SAM3_PATCH, window_size=grid // 2, global_attn_indexes=[1],
                    pretrain_image_size=SAM3_IMAGE)
    vision = dict(model_type="sam3_vision_model", backbone_config=backbone,
                  fpn_hidden_size=hidden, scale_factors=[4.0, 2.0, 1.0, 0.5],
                  backbone_feature_sizes=[[4 * grid] * 2, [2 * grid] * 2, [grid] * 2])
    detector = dict(
        model_type="sam3", vision_config=vision,
        text_config=dict(model_type="clip_text_model", vocab_size=1000, hidden_size=32,
                         intermediate_size=64, projection_dim=32, num_hidden_layers=1,
                         num_attention_heads=4, max_position_embeddings=32,
                         bos_token_id=2, eos_token_id=3, pad_token_id=0),
        geometry_encoder_config=dict(hidden_size=hidden, num_layers=1, num_attention_heads=4,
                                     intermediate_size=64),
        detr_encoder_config=dict(hidden_size=hidden, num_layers=1, num_attention_heads=4,
                                 intermediate_size=64),
        detr_decoder_config=dict(hidden_size=hidden, num_layers=1, num_queries=5,
                                 num_attention_heads=4, intermediate_size=64),
        mask_decoder_config=dict(hidden_size=hidden, num_upsampling_stages=2,
                                 num_attention_heads=4))
    tracker = dict(
        model_type="sam3_tracker_video", vision_config=vision,
        prompt_encoder_config=dict(hidden_size=hidden, image_size=SAM3_IMAGE,
                                   patch_size=SAM3_PATCH),
        mask_decoder_config=dict(hidden_size=hidden, mlp_dim=64, num_attention_heads=1,
                                 iou_head_hidden_dim=32),
        memory_attention_hidden_size=hidden, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64, memory_attention_rope_feat_sizes=[grid] * 2,
        memory_encoder_hidden_size=hidden, memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=hidden, memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=64, num_maskmem=3, image_size=SAM3_IMAGE)
    return Sam3VideoConfig(detector_config=detector, tracker_config=tracker,
                           low_res_mask_size=4 * grid, hotstart_delay=0,
                           score_threshold_detection=0.0, new_det_thresh=0.0)  # random scores


def save_tiny_sam3(out: str | Path, seed: int = 0) -> Path:
    """The model and a word-level tokenizer (a real PreTrainedTokenizerFast; CLIP's BPE files
    are not available offline) in one folder, as `Sam3Masks` loads them."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Sam3VideoModel

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        Sam3VideoModel(tiny_sam3_config()).eval().save_pretrained(out)
    finally:
        torch.set_num_threads(threads)
    words = ["<pad>", "<unk>", "<s>", "</s>"] + sorted(
        "red green blue yellow orange purple white black striped dotted solid circle square "
        "triangle star diamond hexagon cross ring".split())
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                            bos_token="<s>", eos_token="</s>").save_pretrained(out)
    return Path(out)
