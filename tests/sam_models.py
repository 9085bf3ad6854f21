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

    torch.manual_seed(seed)
    model = Sam2VideoModel(tiny_sam2_config()).eval()
    model.save_pretrained(out)
    return Path(out)
