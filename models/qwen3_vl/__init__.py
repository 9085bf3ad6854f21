"""Qwen3-VL in Flax NNX, with Hugging Face weights in and out."""
from seeker_jax.models.qwen3_vl.config import (ConfigError, Qwen3VLConfig, TextConfig,
                                               VisionConfig, from_hf_dict, load_hf_config,
                                               to_hf_dict)
from seeker_jax.models.qwen3_vl.hf_io import CheckpointError, from_pretrained, save_pretrained
from seeker_jax.models.qwen3_vl.modeling import (Qwen3VLForConditionalGeneration, Qwen3VLModel, forward,
                                                 Qwen3VLOutput, prepare_vision)
from seeker_jax.models.qwen3_vl.text import LayerCache, init_cache
from seeker_jax.models.qwen3_vl.vision_inputs import (VisionBuckets, VisionInputs,
                                                      build_vision_inputs, layout_pixels)

__all__ = [
    "CheckpointError", "ConfigError", "LayerCache", "Qwen3VLConfig", "Qwen3VLForConditionalGeneration",
    "Qwen3VLModel", "Qwen3VLOutput", "TextConfig", "VisionConfig", "from_hf_dict",
    "forward", "from_pretrained", "init_cache", "load_hf_config", "save_pretrained", "to_hf_dict",
    "VisionBuckets", "VisionInputs", "build_vision_inputs", "layout_pixels", "prepare_vision",
]
