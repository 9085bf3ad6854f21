"""Qwen3-VL model sizes, written as the HF config.json they correspond to.

Pick one with `configs/qwen3_vl.py:8b`. The dict goes through
`seeker_jax.models.qwen3_vl.from_hf_dict`, the same path a real checkpoint's config takes.
"""
import ml_collections

from seeker_jax.models.qwen3_vl.tiny import tiny_hf_dict

# name: (text hidden, intermediate, layers, heads, kv heads, tied,
#        vision depth, hidden, intermediate, deepstack indexes)
SIZES = {
    "2b": (2048, 6144, 28, 16, 8, True, 24, 1024, 4096, (5, 11, 17)),
    "4b": (2560, 9728, 36, 32, 8, True, 24, 1024, 4096, (5, 11, 17)),
    "8b": (4096, 12288, 36, 32, 8, False, 27, 1152, 4304, (8, 16, 24)),
    "32b": (5120, 25600, 64, 64, 8, False, 27, 1152, 4304, (8, 16, 24)),
    # A bench size (bench/train_step.py): real vocab and token ids, small widths.
    "small": (256, 512, 4, 4, 2, True, 4, 128, 256, (0, 1)),
}


def hf_config(name: str) -> dict:
    """The HF config.json dict of a named size. "tiny" is the one tiny model that tests,
    benches and the demo share (seeker_jax/models/qwen3_vl/tiny.py), over Qwen's vocabulary."""
    if name == "tiny":
        return tiny_hf_dict(vocab="qwen")
    if name not in SIZES:
        raise ValueError(f"unknown Qwen3-VL size {name!r}; choose from {sorted([*SIZES, 'tiny'])}")
    d, ffn, layers, heads, kv, tied, vdepth, vd, vffn, deepstack = SIZES[name]
    head_dim = 128 if d >= 1024 else d // heads
    section = (24, 20, 20) if head_dim == 128 else _section(head_dim // 2)
    return {
        "model_type": "qwen3_vl",
        "tie_word_embeddings": tied,
        "image_token_id": 151655, "video_token_id": 151656,
        "vision_start_token_id": 151652, "vision_end_token_id": 151653,
        "text_config": {
            "vocab_size": 151936, "hidden_size": d, "intermediate_size": ffn,
            "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv, "head_dim": head_dim, "rms_norm_eps": 1e-6,
            "max_position_embeddings": 262144,
            "rope_parameters": {"rope_type": "default", "rope_theta": 5_000_000.0,
                                "mrope_section": list(section), "mrope_interleaved": True},
        },
        "vision_config": {
            "depth": vdepth, "hidden_size": vd, "intermediate_size": vffn, "num_heads": 16
            if vd >= 1024 else 2, "out_hidden_size": d, "deepstack_visual_indexes":
            list(deepstack), "num_position_embeddings": 2304, "patch_size": 16,
            "temporal_patch_size": 2, "spatial_merge_size": 2,
        },
    }


def _section(half: int) -> tuple[int, int, int]:
    """MRoPE split of `half` frequencies in Qwen3-VL's 24:20:20 proportion."""
    h = w = round(half * 20 / 64)
    return (half - h - w, h, w)


def get_config(name: str = "tiny") -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(hf_config(name))
