"""One batch type for every consumer: SFT, the GRPO learner, reference log-probs, evaluation.

`collate(conversations, bucket)` turns conversations (anything with the token arrays and pixel
fields of `seeker_jax.models.chat.Segment`: a teacher trajectory, a sampler row) into a
`Batch`; `seeker_jax.training.train_state.place_batch` puts a Batch on the mesh; `array_specs` gives
the shapes and dtypes of what it places, which is also what `seeker_jax.aot.fit` compiles against,
so the abstract batch and the real one cannot drift apart.

Conventions (B rows, L tokens, K loss positions):
  token arrays (B, L) int32: input_ids, attention_mask, mm_token_type_ids, loss_mask.
    loss_mask is 1 on the tokens the loss learns: assistant tokens of a teacher trajectory,
    policy-sampled tokens of a rollout (what rollouts call policy_mask).
  loss_index (B, K) int32: positions t whose NEXT token t+1 is learned, left-aligned, padded
    with 0 and loss_weight 0. K is the batch's largest count rounded up to `multiple`, so only
    K positions (not L) ever go through the vocabulary projection.
  loss_weight (B, K) float32: 1 on real positions, 0 on padding.
  optional per-token arrays (B, K) float32: advantages, old_logprobs, ref_logprobs,
    sampler_logprobs (what the sampler recorded: TIS and the sampler-learner gap); each is
    given per conversation aligned with its tokens (value i belongs to token i) and gathered
    at the learned tokens, i.e. at loss_index + 1, so entry [b, k] goes with loss position k.
  pixels: pixel_values (N, 1536) float32 with image_grid_thw (n, 3), and the same for videos,
    concatenated over rows in row order, as transformers takes them.
Padding: right padding with PAD_ID and attention_mask 0, one id for everyone.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

# <|endoftext|> is Qwen's pad token, but tiny test vocabularies do not reach 151643: 0 is a
# valid id in every vocabulary, and attention_mask 0 keeps its value out of every output.
PAD_ID = 0
TOKEN_FIELDS = ("input_ids", "attention_mask", "mm_token_type_ids", "loss_mask")
PIXEL_FIELDS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw")
PER_TOKEN_FIELDS = ("advantages", "old_logprobs", "ref_logprobs", "sampler_logprobs")
PATCH_VALUES = 3 * 2 * 16 * 16  # columns of pixel rows: C * temporal patch * patch * patch
LOSS_MULTIPLE = 128


@dataclasses.dataclass
class Batch:
    """Host (numpy) arrays of one batch; see the module docstring for shapes."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    mm_token_type_ids: np.ndarray
    loss_mask: np.ndarray
    loss_index: np.ndarray
    loss_weight: np.ndarray
    pixel_values: np.ndarray | None = None
    image_grid_thw: np.ndarray | None = None
    pixel_values_videos: np.ndarray | None = None
    video_grid_thw: np.ndarray | None = None
    advantages: np.ndarray | None = None
    old_logprobs: np.ndarray | None = None
    ref_logprobs: np.ndarray | None = None
    sampler_logprobs: np.ndarray | None = None

    def __getitem__(self, name: str) -> Any:  # batch["input_ids"], as the dicts before it
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)

    @property
    def shape(self) -> tuple[int, int]:
        return self.input_ids.shape

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array the step reads (grids excluded: they are vision metadata), None dropped."""
        return {f.name: v for f in dataclasses.fields(self)
                if (v := getattr(self, f.name)) is not None
                and f.name not in ("image_grid_thw", "video_grid_thw")}

    def model_inputs(self) -> dict[str, np.ndarray | None]:
        """Keyword arguments of the model's forward (no position_ids: the model computes them)."""
        return {k: getattr(self, k) for k in ("input_ids", "attention_mask", "mm_token_type_ids",
                                              *PIXEL_FIELDS)}


def loss_positions(loss_mask: np.ndarray, attention_mask: np.ndarray,
                   multiple: int = LOSS_MULTIPLE) -> tuple[np.ndarray, np.ndarray]:
    """(B, K) positions predicting a learned token, and their weights (see module docstring)."""
    learned = (loss_mask[:, 1:] * attention_mask[:, 1:]) > 0
    counts = learned.sum(1)
    K = max(multiple, -(-int(counts.max(initial=0)) // multiple) * multiple)
    index = np.zeros((len(learned), K), np.int32)
    weight = np.zeros((len(learned), K), np.float32)
    for b, row in enumerate(learned):
        pos = np.flatnonzero(row)
        index[b, :len(pos)], weight[b, :len(pos)] = pos, 1.0
    return index, weight


def bucket_length(n: int, buckets: Sequence[int]) -> int | None:
    """The smallest bucket >= n, None if n is longer than every bucket."""
    return next((b for b in sorted(buckets) if b >= n), None)


def _length(longest: int, bucket: int | Sequence[int] | None) -> int:
    if bucket is None:
        return longest
    if isinstance(bucket, (int, np.integer)):
        length = int(bucket)
    else:
        length = bucket_length(longest, bucket)
        if length is None:
            raise ValueError(f"collate: a conversation of {longest} tokens is longer than every "
                             f"bucket {tuple(bucket)}; add a larger bucket (cutting could split "
                             "a vision span)")
    if longest > length:
        raise ValueError(f"collate: a conversation of {longest} tokens does not fit bucket "
                         f"{length}; raise the bucket (cutting could split a vision span)")
    return length


def _pixels(conversations: Sequence[Any], name: str) -> np.ndarray | None:
    parts = [v for c in conversations if (v := getattr(c, name, None)) is not None]
    if not parts:
        return None
    return np.concatenate(parts).astype(np.float32 if name.startswith("pixel") else np.int64)


def collate(conversations: Sequence[Any], bucket: int | Sequence[int] | None = None, *,
            multiple: int = LOSS_MULTIPLE,
            per_token: Mapping[str, Sequence[np.ndarray]] | None = None) -> Batch:
    """Conversations -> one right-padded Batch of length `bucket`.

    bucket: a length, a tuple of lengths (the smallest holding the longest conversation), or
    None (the longest conversation). per_token: {"advantages" | "old_logprobs" |
    "ref_logprobs" | "sampler_logprobs": one (L_i,) array per conversation, aligned with its tokens}; each is
    gathered at the learned tokens into (B, K).
    """
    if not conversations:
        raise ValueError("collate: no conversations")
    L = _length(max(len(c.input_ids) for c in conversations), bucket)
    B = len(conversations)
    tokens = {k: np.zeros((B, L), np.int32) for k in TOKEN_FIELDS}
    tokens["input_ids"][:] = PAD_ID
    for b, c in enumerate(conversations):
        n = len(c.input_ids)
        tokens["input_ids"][b, :n] = c.input_ids
        tokens["attention_mask"][b, :n] = 1
        tokens["mm_token_type_ids"][b, :n] = c.mm_token_type_ids
        tokens["loss_mask"][b, :n] = c.loss_mask
    index, weight = loss_positions(tokens["loss_mask"], tokens["attention_mask"], multiple)
    extra = {}
    for name, rows in (per_token or {}).items():
        if name not in PER_TOKEN_FIELDS:
            raise ValueError(f"collate: unknown per-token array {name!r}; known: "
                             f"{PER_TOKEN_FIELDS}")
        if len(rows) != B:
            raise ValueError(f"collate: {name} has {len(rows)} rows for {B} conversations")
        extra[name] = gather_per_token(rows, index, weight, name)
    return Batch(**tokens, loss_index=index, loss_weight=weight,
                 **{k: _pixels(conversations, k) for k in PIXEL_FIELDS}, **extra)


def gather_per_token(rows: Sequence[np.ndarray], index: np.ndarray, weight: np.ndarray,
                     name: str = "per-token array") -> np.ndarray:
    """Token-aligned rows (L_i,) -> (B, K) float32 values of the learned tokens (index + 1)."""
    out = np.zeros(index.shape, np.float32)
    for b, row in enumerate(rows):
        row = np.asarray(row, np.float32)
        n = int(weight[b].sum())
        if n and int(index[b, n - 1]) + 1 >= len(row):
            raise ValueError(f"collate: {name} row {b} has {len(row)} values; its conversation "
                             f"learns token {int(index[b, n - 1]) + 1}")
        out[b, :n] = row[index[b, :n] + 1]
    return out


def pad_to(batch: Batch, length: int, loss_len: int) -> Batch:
    """The same batch right-padded to `length` tokens and `loss_len` loss positions (padding as
    collate's: PAD_ID, masks and weights 0). Processes of a multi-host step must agree on both."""
    B, L = batch.shape
    K = batch.loss_index.shape[1]
    if length < L or loss_len < K:
        raise ValueError(f"pad_to: cannot shrink a ({L} tokens, {K} loss positions) batch to "
                         f"({length}, {loss_len})")
    out = dataclasses.replace(batch)
    for name in TOKEN_FIELDS:
        value = PAD_ID if name == "input_ids" else 0
        setattr(out, name, np.pad(getattr(batch, name), ((0, 0), (0, length - L)),
                                  constant_values=value))
    for name in ("loss_index", "loss_weight", *PER_TOKEN_FIELDS):
        if getattr(batch, name) is not None:
            setattr(out, name, np.pad(getattr(batch, name), ((0, 0), (0, loss_len - K))))
    return out


def from_arrays(arrays: Mapping[str, np.ndarray], multiple: int = LOSS_MULTIPLE) -> Batch:
    """A Batch from already padded token arrays (B, L) and pixels (tests, benches)."""
    missing = [k for k in TOKEN_FIELDS if k not in arrays]
    if missing:
        raise ValueError(f"from_arrays: missing token arrays {missing}")
    tokens = {k: np.asarray(arrays[k], np.int32) for k in TOKEN_FIELDS}
    index, weight = loss_positions(tokens["loss_mask"], tokens["attention_mask"], multiple)
    return Batch(**tokens, loss_index=index, loss_weight=weight,
                 **{k: arrays.get(k) for k in PIXEL_FIELDS})


def array_specs(batch: int, length: int, loss_len: int, image_patches: int = 0,
                video_patches: int = 0, per_token: Sequence[str] = ()
                ) -> dict[str, tuple[tuple[int, ...], Any, int]]:
    """{name: (shape, dtype, batch_dim)} of the arrays place_batch puts on the mesh.

    The one table of the placed batch: place_batch reads the batch dimension from it and
    seeker_jax.aot.fit builds its abstract batch from it. position_ids (3, B, L) are MRoPE
    positions computed on the host; pixel rows count patches over the whole batch.
    """
    B, L, K = batch, length, loss_len
    specs = {k: ((B, L), np.int32, 0) for k in TOKEN_FIELDS}
    specs["position_ids"] = ((3, B, L), np.int32, 1)
    specs["loss_index"] = ((B, K), np.int32, 0)
    specs["loss_weight"] = ((B, K), np.float32, 0)
    if image_patches:
        specs["pixel_values"] = ((image_patches, PATCH_VALUES), np.float32, 0)
    if video_patches:
        specs["pixel_values_videos"] = ((video_patches, PATCH_VALUES), np.float32, 0)
    for name in per_token:
        specs[name] = ((B, K), np.float32, 0)
    return specs


def batch_dim(name: str) -> int:
    """The batch dimension of a placed array (position_ids carry theirs second)."""
    return 1 if name == "position_ids" else 0


__all__ = ["Batch", "LOSS_MULTIPLE", "PAD_ID", "PER_TOKEN_FIELDS", "PIXEL_FIELDS", "array_specs",
           "batch_dim", "bucket_length", "collate", "from_arrays", "gather_per_token",
           "loss_positions", "pad_to"]
