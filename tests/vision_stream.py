"""A stream of mixed vision grids, a compile counter, and transformers' vision features: what
test_vision_buckets and test_compile_counts share (a test helper, not a test module)."""
import jax
import numpy as np
import torch

IMAGES = [(2, 2), (4, 4), (4, 6), (6, 8), (8, 8)]          # patch grids (h, w)
FRAMES = [(2, 2), (4, 6)]                                  # 32x32 and 64x96 px frames
VIDEO_T = [2, 8, 32]                                       # 4, 16, 64 frames / 2 per group


class CompileCounter:
    """Counts XLA backend compiles while active (JAX's '/jax/core/compile/...' event)."""

    def __init__(self):
        self.count = 0

    def _listen(self, event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            self.count += 1

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listen)


def mixed_stream(n: int, seed: int = 0) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    """n batches of (image grids, video grids): 1-3 images and/or 1-2 videos each."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        images = [(1, *IMAGES[j]) for j in rng.integers(0, len(IMAGES), rng.integers(1, 4))]
        videos = [(VIDEO_T[rng.integers(0, 3)], *FRAMES[rng.integers(0, 2)])
                  for _ in range(rng.integers(1, 3))]
        kind = i % 3  # images only, videos only, both
        out.append((np.array(images) if kind != 1 else None,
                    np.array(videos) if kind != 0 else None))
    # every video length at every frame size appears at least once
    for t in VIDEO_T:
        for hw in FRAMES:
            assert any(v is not None and ((v[:, 0] == t) & (v[:, 1] == hw[0])).any()
                       for _, v in out), (t, hw)
    return out


def patches(grid, seed):
    n = int(np.asarray(grid).prod(-1).sum())
    return np.random.default_rng(seed).standard_normal((n, 1536)).astype(np.float32)


def hf_vision(hf, x, grid):
    with torch.no_grad():
        ref = hf.model.visual(torch.from_numpy(x), grid_thw=torch.from_numpy(np.asarray(grid)))
    return ref.pooler_output.numpy(), [d.numpy() for d in ref.deepstack_features]
