"""The sampler against references: full-sequence forwards, transformers' greedy `generate`, and
get_rope_index on whole sequences.

One greedy sampler is shared by the module (compilations are the expensive part on CPU); every
check runs on shapes it has already compiled where it can.
"""
import numpy as np
import pytest
import torch

from hf_reference import segment
from seeker_jax.models.qwen3_vl import forward, from_pretrained
from seeker_jax.models.qwen3_vl.rope import get_rope_index_np
from seeker_jax.models.qwen3_vl.vision_inputs import build_vision_inputs
from seeker_jax.generation.conversation import batch_conversations, recompute_logprobs
from seeker_jax.generation.rows import segment_positions
from seeker_jax.generation.sampler import Sampler
from seeker_jax.generation.sampling import SamplingParams

MAX_LEN = 160


def text_of(ids) -> str:
    """A stand-in detokenizer for stop strings: token 7 -> "<7>"."""
    return "".join(f"<{int(i)}>" for i in ids)


PROMPT = [("text", 5), ("image", (4, 6)), ("text", 3), ("video", (3, 4, 4)), ("text", 4)]


@pytest.fixture(scope="module")
def models(tiny_hf):
    return tiny_hf.torch_model, from_pretrained(tiny_hf.path)


@pytest.fixture(scope="module")
def sampler(models):
    # max_chunk 32 < prompt length: prompts are prefilled in pieces that cut vision spans.
    return Sampler(models[1], batch_size=4, max_len=MAX_LEN, params=SamplingParams(0.0),
                   stop_token_ids=(999,), stop_strings=("<12><13>",), decode=text_of,
                   decode_steps=8, max_chunk=32,
                   min_bucket=32)


def test_segment_positions_continue_the_rope_index():
    parts = [[("text", 4), ("image", (4, 6))], [("text", 3)], [("video", (3, 4, 4)), ("text", 2)],
             [("image", (2, 4)), ("video", (2, 6, 4)), ("text", 1)]]
    segs = [segment(p, seed=i) for i, p in enumerate(parts)]
    pieces, start = [], 0
    for s in segs:
        pos, start = segment_positions(s.input_ids, s.mm_token_type_ids, s.image_grid_thw,
                                       s.video_grid_thw, start)
        pieces.append(pos)
    ids = np.concatenate([s.input_ids for s in segs])[None]
    types = np.concatenate([s.mm_token_type_ids for s in segs])[None]
    grids = {k: np.concatenate([getattr(s, k) for s in segs if getattr(s, k) is not None])
             for k in ("image_grid_thw", "video_grid_thw")}
    full, delta = get_rope_index_np(ids, types, grids["image_grid_thw"], grids["video_grid_thw"])
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), full[:, 0])
    assert start == full.max() + 1 == ids.shape[1] + delta[0, 0]


def test_appends_match_full_forward_and_logprobs_reproduce(models, sampler):
    """Four rows: prompt (text, image, video; prefilled in 32-token pieces) -> a generated turn
    (row 0 forced through a stop string, cut mid-chunk and rolled back) -> an appended tool
    segment with text / an image / a video / all three -> a second turn. One full forward over
    the four conversations must give the logits after each append and every recorded log-prob.
    """
    check_multi_turn(models, sampler)


def test_attention_windows_match_full_forward(models):
    """The same conversations with attention reading windows of 16, 32, 64 ... slots of the
    192-slot cache (min_window 16) instead of all of them: the same logits and log-probs."""
    s = Sampler(models[1], batch_size=4, max_len=MAX_LEN, params=SamplingParams(0.0),
                stop_token_ids=(999,), stop_strings=("<12><13>",), decode=text_of,
                decode_steps=8, max_chunk=32, min_bucket=32, min_window=16)
    assert [s._window(n) for n in (3, 16, 17, 100, 129, 192)] == [16, 16, 32, 128, None, None]
    check_multi_turn(models, s)
    assert s.compilations["decode"] >= 2 and s.compilations["extend"] >= 2  # several windows


def check_multi_turn(models, s):
    s.reset()
    prompts = {0: segment(PROMPT, 1), 1: segment([("text", 9)], 2), 2: segment(PROMPT, 3),
               3: segment([("text", 6), ("image", (2, 4))], 4)}
    s.append(prompts, max_new_tokens=12, forced={0: [5, 12, 13, 9, 9, 9]})
    first = {}
    while s.active_rows:
        first.update(s.step())
    assert first[0].stop_reason == "stop_string" and first[0].ids.tolist() == [5, 12, 13]
    assert {first[i].stop_reason for i in (1, 2, 3)} == {"max_new_tokens"}
    appends = {0: segment([("text", 7)], 5), 1: segment([("text", 2), ("image", (4, 6))], 6),
               2: segment([("text", 3), ("video", (3, 4, 4)), ("text", 2)], 7),
               3: segment([("image", (4, 6)), ("video", (3, 4, 4)), ("text", 3)], 8)}
    s.append(appends, max_new_tokens=6)
    after_append = np.asarray(s.last_logits)
    ends = [len(s.conversation(i).input_ids) for i in range(4)]
    while s.active_rows:
        s.step()
    convs = [s.conversation(i) for i in range(4)]
    inputs = batch_conversations(convs, length=MAX_LEN)
    logits = np.asarray(forward(models[1], **inputs).logits)
    for i in range(4):
        np.testing.assert_allclose(after_append[i], logits[i, ends[i] - 1], atol=1e-4, rtol=0)
    recomputed = recompute_logprobs(models[1], convs, s.params, length=MAX_LEN, chunk=32)
    for c, lp, n in zip(convs, recomputed, (3 + 6, 12 + 6, 12 + 6, 12 + 6)):
        assert c.policy_mask.sum() == n and (c.logprobs[c.policy_mask == 0] == 0).all()
        np.testing.assert_allclose(c.logprobs[c.policy_mask == 1], lp[c.policy_mask == 1],
                                   atol=1e-4, rtol=0)


def test_greedy_matches_transformers_generate(models, sampler):
    """A batch of two prompts of different lengths, both with an image and a video."""
    hf, _ = models
    parts = [PROMPT, [("text", 11), ("video", (3, 4, 4)), ("image", (4, 6)), ("text", 2)]]
    segs = [segment(p, seed=20 + i) for i, p in enumerate(parts)]
    n_new = 10
    ours = sampler.generate(segs, max_new_tokens=n_new)
    for seg, turn in zip(segs, ours):
        with torch.no_grad():
            out = hf.generate(
                input_ids=torch.from_numpy(seg.input_ids[None].astype(np.int64)),
                pixel_values=torch.from_numpy(seg.pixel_values),
                image_grid_thw=torch.from_numpy(seg.image_grid_thw),
                pixel_values_videos=torch.from_numpy(seg.pixel_values_videos),
                video_grid_thw=torch.from_numpy(seg.video_grid_thw),
                mm_token_type_ids=torch.from_numpy(seg.mm_token_type_ids[None].astype(np.int64)),
                do_sample=False, max_new_tokens=n_new, eos_token_id=999, pad_token_id=0)
        expected = out[0, len(seg.input_ids):].numpy()
        assert 999 not in expected.tolist()
        np.testing.assert_array_equal(turn.ids, expected)
        assert turn.stop_reason == "max_new_tokens"


def test_compilations_are_bounded(sampler):
    """New prompt lengths inside the same buckets reuse every compiled program."""
    sampler.generate([segment([("text", 3)], 3)], max_new_tokens=9)
    before = dict(sampler.compilations)
    for n in (17, 29):
        sampler.generate([segment([("text", n)], n), segment([("text", n % 7), ("image", (4, 6))],
                                                            n)], max_new_tokens=n % 9 + 3)
    assert dict(sampler.compilations) == before
    # vision: grids as data; the module's grids (1,4,6), (1,2,4), (3,4,4) (and (2,6,4) later)
    # all pack into one (1 block, 64 slots) bucket: one program (it was one per grid)
    assert {build_vision_inputs(g, merge=2, side=8).block_shape
            for g in ([[1, 4, 6]], [[1, 2, 4]], [[3, 4, 4]])} == {(1, 64)}
    # the vision program's jit cache is process-wide: a test before this one may have compiled
    # this very bucket already, so it is compiled at most once here
    assert {k: v for k, v in before.items() if k != "vision"} == {"extend": 2, "decode": 1}
    assert before.get("vision", 0) <= 1


def test_stop_tokens_and_length_limit(sampler):
    """A stop id ends the turn on device (and is kept); a full row stops at max_len and
    refuses any further segment rather than cutting it."""
    s = sampler
    turns = s.generate([segment([("text", 8)], 30), segment([("text", MAX_LEN - 12)], 31)],
                       max_new_tokens=20, forced={0: [4, 999, 4]})
    assert turns[0].ids.tolist() == [4, 999] and turns[0].stop_reason == "stop_token"
    assert turns[1].stop_reason == "max_len" and len(turns[1].ids) == 12
    assert len(s.conversation(1).input_ids) == MAX_LEN
    with pytest.raises(ValueError, match="does not fit"):
        s.add(1, segment([("text", 1)], 32))
