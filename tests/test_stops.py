"""The one stop-string scanner (sampler and server): hand-worked on a toy decoder whose tokens
are strings, so a stop string can span tokens or end inside one."""
from seeker_jax.generation.stops import StopHit, find_stop

VOCAB = ["<think>", "ok", "</", "tool_call>", "</answer> more", "x"]


def decode(ids):
    return "".join(VOCAB[i] for i in ids)


def test_a_stop_string_across_tokens_ends_at_the_token_that_completes_it():
    ids = [0, 1, 2, 3, 5, 5]
    assert find_stop(ids, ["</tool_call>"], decode) == StopHit(4, "</tool_call>")
    # tokens already scanned are skipped; the answer is the same count
    assert find_stop(ids, ["</tool_call>"], decode, start=3) == StopHit(4, "</tool_call>")


def test_the_first_completed_string_wins_and_none_without_one():
    ids = [1, 4, 2, 3]
    assert find_stop(ids, ["</tool_call>", "</answer>"], decode) == StopHit(2, "</answer>")
    assert find_stop([0, 1, 5], ["</tool_call>"], decode) is None
    assert find_stop([0, 1], [], decode) is None
