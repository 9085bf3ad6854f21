"""An HF folder's tensors as transformers wrote them, compared bit for bit: what the checkpoint,
convert and scan tests share (a test helper, not a test module)."""
import json
import os

import torch
from safetensors.torch import load_file

from seeker_jax.models.qwen3_vl.hf_io import INDEX, SINGLE


def hf_tensors(hf_dir: str) -> dict[str, torch.Tensor]:
    """Every tensor of an HF folder, single-file or sharded, as transformers wrote it."""
    index = os.path.join(hf_dir, INDEX)
    files = (sorted(set(json.load(open(index))["weight_map"].values()))
             if os.path.exists(index) else [SINGLE])
    out = {}
    for fn in files:
        out.update(load_file(os.path.join(hf_dir, fn)))
    return out


def assert_bit_exact(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        bits = {4: torch.int32, 2: torch.int16}[a[name].element_size()]
        assert torch.equal(a[name].view(bits), b[name].view(bits)), name


def no_partials(parent: str) -> bool:
    return not any(".partial-" in n for n in os.listdir(parent))
