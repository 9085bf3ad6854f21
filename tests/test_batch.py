"""seeker_jax.data.batch: collate on hand-worked conversations, per-token arrays gathered at the
learned tokens, a sampler Conversation collating like a trajectory, and the placed batch's
shapes equal to array_specs (the table AOT compiles against)."""
import numpy as np
import pytest

from seeker_jax.data.batch import PAD_ID, array_specs, collate
from seeker_jax.models.chat import Segment


def _seg(ids, loss, types=None, **pixels):
    ids = np.asarray(ids, np.int32)
    return Segment(ids, np.zeros_like(ids) if types is None else np.asarray(types, np.int32),
                   np.asarray(loss, np.int32), **pixels)


def test_collate_hand_worked():
    a = _seg([5, 6, 7, 8, 9], [0, 0, 1, 1, 0])
    b = _seg([3, 4, 2], [0, 1, 1])
    batch = collate([a, b], (4, 8, 16), multiple=4,
                    per_token={"advantages": [np.arange(5) * 10.0, np.arange(3) + 0.5]})
    assert batch.shape == (2, 8)  # the smallest bucket holding 5 tokens
    np.testing.assert_array_equal(batch.input_ids, [[5, 6, 7, 8, 9, PAD_ID, PAD_ID, PAD_ID],
                                                    [3, 4, 2] + [PAD_ID] * 5])
    np.testing.assert_array_equal(batch.attention_mask, [[1] * 5 + [0] * 3, [1] * 3 + [0] * 5])
    # position t predicts token t + 1: a learns tokens 2, 3 (positions 1, 2); b tokens 1, 2
    np.testing.assert_array_equal(batch.loss_index, [[1, 2, 0, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(batch.loss_weight, [[1, 1, 0, 0], [1, 1, 0, 0]])
    # advantages of the learned tokens, in loss-position order; 0 on padding
    np.testing.assert_array_equal(batch.advantages, [[20, 30, 0, 0], [1.5, 2.5, 0, 0]])
    assert batch.old_logprobs is None and batch.pixel_values is None


def test_collate_pixels_in_row_order_and_errors():
    img = dict(pixel_values=np.ones((4, 1536), np.float32), image_grid_thw=np.array([[1, 2, 2]]))
    vid = dict(pixel_values_videos=np.zeros((8, 1536), np.float32),
               video_grid_thw=np.array([[2, 2, 2]]))
    a = _seg([1, 2, 2, 3], [0, 0, 0, 1], [0, 1, 1, 0], **img)
    b = _seg([1, 2, 3], [0, 0, 1], [0, 2, 0], **vid)
    c = _seg([1, 2, 2, 3], [0, 0, 0, 1], [0, 1, 1, 0],
             pixel_values=2 * np.ones((4, 1536), np.float32), image_grid_thw=np.array([[1, 4, 1]]))
    batch = collate([a, b, c], 4)
    np.testing.assert_array_equal(batch.image_grid_thw, [[1, 2, 2], [1, 4, 1]])
    np.testing.assert_array_equal(batch.pixel_values[:, 0], [1] * 4 + [2] * 4)
    np.testing.assert_array_equal(batch.video_grid_thw, [[2, 2, 2]])
    np.testing.assert_array_equal(batch.mm_token_type_ids[1], [0, 2, 0, 0])
    with pytest.raises(ValueError, match="5 tokens is longer than every bucket"):
        collate([_seg([1] * 5, [1] * 5)], (2, 4))
    with pytest.raises(ValueError, match="5 tokens does not fit bucket 3"):
        collate([_seg([1] * 5, [1] * 5)], 3)
    with pytest.raises(ValueError, match="unknown per-token array 'adv'"):
        collate([a], 4, per_token={"adv": [np.zeros(4)]})


def test_conversation_collates_with_policy_mask_as_loss_mask():
    from seeker_jax.generation.conversation import Conversation, batch_conversations

    segs = [_seg([1, 2, 2], [0, 0, 0], [0, 1, 1], pixel_values=np.ones((4, 1536), np.float32),
                 image_grid_thw=np.array([[1, 2, 2]])), _seg([7, 8], [1, 1])]
    conv = Conversation(np.array([1, 2, 2, 7, 8], np.int32), np.array([0, 1, 1, 0, 0], np.int32),
                        np.array([0, 0, 0, 1, 1], np.int32), np.zeros(5, np.float32), segs)
    batch = collate([conv], 8, multiple=2, per_token={"old_logprobs": [np.arange(5.0)]})
    np.testing.assert_array_equal(batch.loss_index, [[2, 3]])
    np.testing.assert_array_equal(batch.old_logprobs, [[3.0, 4.0]])
    np.testing.assert_array_equal(batch.image_grid_thw, [[1, 2, 2]])
    inputs = batch_conversations([conv], 8)
    assert set(inputs) == {"input_ids", "attention_mask", "mm_token_type_ids", "pixel_values",
                           "image_grid_thw", "pixel_values_videos", "video_grid_thw"}
    np.testing.assert_array_equal(inputs["input_ids"][0], [1, 2, 2, 7, 8, 0, 0, 0])


def test_placed_batch_matches_array_specs():
    """place_batch's arrays have exactly the shapes, dtypes and names array_specs gives: the
    abstract batch seeker_jax.aot.fit compiles is the real one."""
    from flax import nnx

    from seeker_jax.config import load_config
    from seeker_jax.models.qwen3_vl.config import from_hf_dict
    from seeker_jax.models.qwen3_vl.modeling import Qwen3VLForConditionalGeneration
    import jax

    from seeker_jax.models.qwen3_vl.vision_inputs import build_vision_inputs, layout_pixels
    from seeker_jax.training.train_state import place_batch

    model = Qwen3VLForConditionalGeneration(
        from_hf_dict(load_config("configs/qwen3_vl.py:tiny").to_dict()), rngs=nnx.Rngs(0))
    vid = model.config.video_token_id
    segs = [_seg([1, vid, vid, 3, 4], [0, 0, 0, 1, 1], [0, 2, 2, 0, 0],
                 pixel_values_videos=np.random.default_rng(i).standard_normal(
                     (1 * 2 * 4, 1536)).astype(np.float32),
                 video_grid_thw=np.array([[1, 2, 4]])) for i in range(2)]  # 2 tokens
    batch = collate(segs, 8, per_token={"ref_logprobs": [np.zeros(5)] * 2})
    placed, vision = place_batch(batch, model, None)
    # pixels are placed in the slot layout of their vision bucket: both 8-patch groups share
    # one block of 64 (the smallest bucket)
    assert vision.image is None and vision.video.block_shape == (1, 64)
    specs = array_specs(2, 8, 128, video_patches=vision.video.num_slots,
                        per_token=("ref_logprobs",))
    assert set(placed) == set(specs)
    for k, (shape, dtype, _) in specs.items():
        assert placed[k].shape == shape and placed[k].dtype == dtype, k
    # the vision inputs are the grids as data: exactly what the host builder gives them
    expected = build_vision_inputs(np.array([[1, 2, 4], [1, 2, 4]]), merge=2,
                                   side=model.config.vision.num_grid_per_side)
    for got, want in zip(vision.video, expected):
        assert isinstance(got, jax.Array)
        np.testing.assert_array_equal(np.asarray(got), want)
    np.testing.assert_array_equal(np.asarray(placed["pixel_values_videos"]),
                                  layout_pixels(batch.pixel_values_videos, expected))
