"""The offline Qwen3 tokenizer against the BPE ranks themselves (tiktoken semantics)."""
import unicodedata

import pytest
import regex

from seeker_jax.models.tokenizer import (FIRST_ADDED_ID, default_ranks_path, read_tiktoken_ranks,
                                         special_ids, vocab_and_merges)

PAT_STR = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"""
           r"""[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


@pytest.fixture(scope="module")
def ranks():
    return read_tiktoken_ranks(default_ranks_path())


def tiktoken_encode(text: str, ranks: dict[bytes, int]) -> list[int]:
    """Reference: tiktoken's algorithm (regex split, then rank-greedy byte-pair merging)."""
    out = []
    for piece in regex.findall(PAT_STR, text):
        parts = [bytes([b]) for b in piece.encode()]
        while True:
            best = min(((ranks[parts[i] + parts[i + 1]], i) for i in range(len(parts) - 1)
                        if parts[i] + parts[i + 1] in ranks), default=None)
            if best is None:
                break
            i = best[1]
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        out.extend(ranks[p] for p in parts)
    return out


def test_known_ids(tok):
    sp = special_ids(tok)
    assert (sp.im_start, sp.im_end, sp.vision_start, sp.vision_end) == (151644, 151645, 151652,
                                                                         151653)
    assert (sp.image_pad, sp.video_pad, sp.tool_call, sp.tool_call_end) == (151655, 151656,
                                                                             151657, 151658)
    assert (sp.tool_response, sp.tool_response_end, sp.think, sp.think_end) == (151665, 151666,
                                                                                 151667, 151668)
    assert sp.endoftext == 151643 and tok.convert_tokens_to_ids("<|file_sep|>") == 151664
    assert len(tok) == 151669 and tok.eos_token == "<|im_end|>"
    # Plain words, as Qwen2/2.5/3 tokenize them.
    assert tok.encode("Hello world", add_special_tokens=False) == [9707, 1879]
    assert tok.encode("assistant\n", add_special_tokens=False) == [77091, 198]


def test_merges_one_per_token(ranks):
    vocab, merges = vocab_and_merges(ranks)
    assert len(vocab) == FIRST_ADDED_ID
    assert len(merges) == FIRST_ADDED_ID - 256  # every multi-byte token has exactly one merge
    # The merge that builds a token concatenates to it and its parts rank lower.
    for a, b in merges[:2000:37]:
        assert vocab[a] < vocab[a + b] and vocab[b] < vocab[a + b]


TEXTS = [
    "Hello world! It's a test: don't 'quote' me; I'LL see.",
    "def f(x):\n    return x**2  # square\n\n\n\tindent",
    "数字 12345 和中文，还有 emoji 🎉🎉 and Ünïcödé café",
    "   leading spaces and trailing   \n\n",
    "<0.5 seconds> crop_video(start_time=1.5, end_time=12.25) {\"name\": \"x\"}",
    "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ ﬁ ligature \r\n windows line",
]


@pytest.mark.parametrize("text", TEXTS)
def test_matches_tiktoken_reference(tok, ranks, text):
    text = unicodedata.normalize("NFC", text)  # Qwen's tokenizer.json normalizes NFC
    assert tok.encode(text, add_special_tokens=False) == tiktoken_encode(text, ranks)
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_added_tokens_are_atomic_and_tags_survive_skip(tok):
    ids = tok.encode("<think>a</think><tool_call>b</tool_call><|im_end|>", add_special_tokens=False)
    assert ids[0] == 151667 and ids[2] == 151668 and ids[3] == 151657 and ids[-1] == 151645
    assert tok.decode(ids, skip_special_tokens=True) == "<think>a</think><tool_call>b</tool_call>"
