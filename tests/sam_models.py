"""Tiny random SAM video models (transformers' real classes) saved to a folder, for tests and
the bench: Sam2VideoModel (box-prompted) and Sam3VideoModel (text-prompted). Image size 128."""
from __future__ import annotations

from pathlib import Path

IMAGE = 128


def tiny_sam2_config():
    from transformers import Sam2VideoConfig

    backbone = dict(hidden_size=16, num_attention_heads=1, image_size=[IMAGE, IMAGE],
                    blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[16, 32, 64, 128],
                    num_attention_heads_per_stage=[1, 1, 1, 1],
                    window_size_per_stage=[4, 4, 4, 4], global_attention_blocks=[3],
                    window_positional_embedding_background_size=[4, 4])
    vision = dict(backbone_config={"model_type": "sam2_hiera_det_model", **backbone}, backbone_channel_list=[128, 64, 32, 16],
                  backbone_feature_sizes=[[IMAGE // 4] * 2, [IMAGE // 8] * 2, [IMAGE // 16] * 2],
                  fpn_hidden_size=128)
    return Sam2VideoConfig(
        vision_config={"model_type": "sam2_vision_model", **vision},
        prompt_encoder_config=dict(hidden_size=128, image_size=IMAGE, patch_size=16),
        mask_decoder_config=dict(hidden_size=128, mlp_dim=64, num_attention_heads=1,
                                 iou_head_hidden_dim=32),
        image_size=IMAGE, memory_attention_hidden_size=128, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[IMAGE // 16] * 2, memory_encoder_hidden_size=128,
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
        mask_decoder_config=dict(hidden_size=hidden, num_upsampling_stages=2, num_attention_heads=4))
    tracker = dict(
        model_type="sam3_tracker_video", vision_config=vision,
        prompt_encoder_config=dict(hidden_size=hidden, image_size=SAM3_IMAGE, patch_size=SAM3_PATCH),
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
