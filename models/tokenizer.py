"""Qwen3 tokenizer: load one from an HF model folder, or build the real one offline.

Real users load the tokenizer that ships with their checkpoint (`load_tokenizer(hf_dir)`).
This machine has no model hub, so `build_offline_qwen_tokenizer(out_dir)` writes a Qwen3
tokenizer folder from the BPE ranks that the PyPI package `qwen-agent` ships
(`qwen_agent/utils/qwen.tiktoken`, 151643 ranks). A byte-level BPE is fully described by its
ranks: the merge that creates token `t` (rank r) is the pair that tiktoken's rank-greedy BPE
leaves when it runs on t's bytes with every rank below r allowed. So each token yields exactly
one merge, in rank order, which is what `Qwen2Tokenizer(vocab, merges)` needs. Qwen3's 26
added tokens sit at ids 151643-151668.
"""
from __future__ import annotations

import base64
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.convert_slow_tokenizer import bytes_to_unicode

# (token, special). The tool/think tags are added tokens that are NOT "special" in Qwen3's
# tokenizer_config: they survive `decode(skip_special_tokens=True)`.
QWEN3_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True),
    ("<|box_end|>", True), ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False),
    ("</tool_call>", False), ("<|fim_prefix|>", False), ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False), ("<|fim_pad|>", False), ("<|repo_name|>", False),
    ("<|file_sep|>", False), ("<tool_response>", False), ("</tool_response>", False),
    ("<think>", False), ("</think>", False),
)
FIRST_ADDED_ID = 151643

# Qwen3-VL-Instruct's chat template (tools, multimodal content, tool responses grouped into one
# user turn). Our formatter (models/chat.py) produces exactly what it renders; tests check it.
QWEN3_VL_CHAT_TEMPLATE = r"""{%- macro render_content(content) %}
    {%- if content is string %}
        {{- content }}
    {%- else %}
        {%- for item in content %}
            {%- if item.type == 'image' or 'image' in item or 'image_url' in item %}
                {{- '<|vision_start|><|image_pad|><|vision_end|>' }}
            {%- elif item.type == 'video' or 'video' in item %}
                {{- '<|vision_start|><|video_pad|><|vision_end|>' }}
            {%- elif 'text' in item %}
                {{- item.text }}
            {%- endif %}
        {%- endfor %}
    {%- endif %}
{%- endmacro %}
{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- render_content(messages[0].content) + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + render_content(messages[0].content) + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == "user" or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + render_content(message.content) + '<|im_end|>\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>assistant\n' + render_content(message.content) }}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and message.content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' + tool_call.name + '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' + render_content(message.content) + '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""


@dataclass(frozen=True)
class SpecialIds:
    """The token ids the formatter and the sampler need, read from the tokenizer itself."""

    im_start: int
    im_end: int
    endoftext: int
    vision_start: int
    vision_end: int
    image_pad: int
    video_pad: int
    tool_call: int
    tool_call_end: int
    tool_response: int
    tool_response_end: int
    think: int
    think_end: int


def special_ids(tokenizer: PreTrainedTokenizerBase) -> SpecialIds:
    """Looks every special token up; raises if the tokenizer is not a Qwen3(-VL) one."""
    names = {
        "im_start": "<|im_start|>", "im_end": "<|im_end|>", "endoftext": "<|endoftext|>",
        "vision_start": "<|vision_start|>", "vision_end": "<|vision_end|>",
        "image_pad": "<|image_pad|>", "video_pad": "<|video_pad|>",
        "tool_call": "<tool_call>", "tool_call_end": "</tool_call>",
        "tool_response": "<tool_response>", "tool_response_end": "</tool_response>",
        "think": "<think>", "think_end": "</think>",
    }
    vocab = tokenizer.get_vocab()
    missing = [tok for tok in names.values() if tok not in vocab]
    if missing:
        raise ValueError(f"tokenizer lacks Qwen3 tokens {missing}; load a Qwen3(-VL) tokenizer")
    return SpecialIds(**{field: vocab[tok] for field, tok in names.items()})


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerBase:
    """Loads the tokenizer (tokenizer.json + chat template) from an HF model folder."""
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    special_ids(tokenizer)  # fail early on a non-Qwen tokenizer
    return tokenizer


TOKENIZER_KINDS = ("model", "offline_qwen")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json")


def tokenizer_from_config(kind: str, model_dir: str | os.PathLike | None = None
                          ) -> PreTrainedTokenizerBase:
    """The tokenizer a config names (`c.tokenizer`).

    "model": the tokenizer files of the model folder (an HF folder, or a converted / trained
    checkpoint, which carry the HF folder's tokenizer files); "offline_qwen": the Qwen3
    tokenizer built from qwen-agent's ranks, a fallback for tests and the demo (whose random
    models have no folder). A missing tokenizer is an error saying which.
    """
    if kind == "offline_qwen":
        return offline_qwen_tokenizer()
    if kind != "model":
        raise ValueError(f"tokenizer {kind!r}: choose one of {TOKENIZER_KINDS} ('model' reads "
                         "the model folder's own tokenizer files)")
    if not model_dir:
        raise ValueError("tokenizer 'model' needs a model folder (config.model.init_from) to read "
                         "tokenizer.json from; a randomly initialized model has none: set "
                         "--config.tokenizer=offline_qwen (tests, demo)")
    if not any((Path(model_dir) / name).is_file() for name in TOKENIZER_FILES):
        raise FileNotFoundError(
            f"tokenizer 'model': {model_dir} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); "
            "`seeker-jax convert` copies them from the Hugging Face folder: copy them in, or set "
            "--config.tokenizer=offline_qwen")
    return load_tokenizer(model_dir)


def default_ranks_path() -> Path:
    """Where qwen-agent keeps `qwen.tiktoken` (found without importing qwen_agent)."""
    spec = importlib.util.find_spec("qwen_agent")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "qwen-agent is not installed; `pip install --no-deps qwen-agent` provides the Qwen BPE "
            "ranks (qwen_agent/utils/qwen.tiktoken)")
    return Path(list(spec.submodule_search_locations)[0]) / "utils" / "qwen.tiktoken"


def read_tiktoken_ranks(path: str | os.PathLike) -> dict[bytes, int]:
    """Reads a tiktoken ranks file: one `base64(token) rank` per line."""
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _last_merge(token: bytes, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """Runs rank-greedy BPE on `token` using only ranks below its own; returns the final pair.

    This is tiktoken's algorithm (merge the adjacent pair whose concatenation has the lowest
    rank), stopped before the merge that creates `token` itself.
    """
    limit = ranks[token]
    parts = [token[i:i + 1] for i in range(len(token))]
    while len(parts) > 2:
        best, best_rank = -1, limit
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best, best_rank = i, rank
        if best < 0:
            raise ValueError(f"token {token!r} (rank {limit}) is not reachable by BPE merges")
        parts[best:best + 2] = [parts[best] + parts[best + 1]]
    return parts[0], parts[1]


def vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level vocab (GPT-2 byte->unicode strings) and the one merge per multi-byte token."""
    byte_char = bytes_to_unicode()

    def to_str(b: bytes) -> str:
        return "".join(byte_char[x] for x in b)

    vocab = {to_str(tok): rank for tok, rank in ranks.items()}
    merges = [
        tuple(to_str(p) for p in _last_merge(tok, ranks))
        for tok, _ in sorted(ranks.items(), key=lambda kv: kv[1]) if len(tok) > 1
    ]
    return vocab, merges


def build_offline_qwen_tokenizer(out_dir: str | os.PathLike,
                                 ranks_path: str | os.PathLike | None = None) -> Path:
    """Writes a Qwen3(-VL) tokenizer folder (tokenizer.json, config, chat template) to out_dir.

    Derives vocab/merges from the tiktoken ranks, adds Qwen3's 26 added tokens at ids
    151643-151668 and the Qwen3-VL chat template; eos is `<|im_end|>` as in Qwen3-VL.
    Takes a few seconds; callers that need it often cache the folder.
    """
    from transformers import Qwen2Tokenizer
    from tokenizers import AddedToken

    ranks = read_tiktoken_ranks(ranks_path or default_ranks_path())
    if len(ranks) != FIRST_ADDED_ID:
        raise ValueError(f"expected {FIRST_ADDED_ID} BPE ranks, read {len(ranks)}")
    vocab, merges = vocab_and_merges(ranks)
    # Ids fixed in the vocab first, so that registering them as added tokens keeps these ids.
    vocab.update({tok: FIRST_ADDED_ID + i for i, (tok, _) in enumerate(QWEN3_ADDED_TOKENS)})
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, eos_token="<|im_end|>",
                               pad_token="<|endoftext|>", unk_token=None,
                               model_max_length=262144, errors="replace")
    tokenizer.add_tokens([AddedToken(tok, special=special, normalized=False)
                          for tok, special in QWEN3_ADDED_TOKENS])
    for i, (tok, _) in enumerate(QWEN3_ADDED_TOKENS):
        got = tokenizer.convert_tokens_to_ids(tok)
        if got != FIRST_ADDED_ID + i:
            raise AssertionError(f"{tok} landed at id {got}, expected {FIRST_ADDED_ID + i}")
    tokenizer.chat_template = QWEN3_VL_CHAT_TEMPLATE
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))
    return out


def offline_qwen_tokenizer(cache_dir: str | os.PathLike | None = None) -> PreTrainedTokenizerBase:
    """Loads the offline Qwen3 tokenizer, building it once into cache_dir (default in /tmp)."""
    cache = Path(cache_dir or os.environ.get("SEEKER_JAX_TOKENIZER_CACHE",
                                             "/tmp/seeker_jax_qwen3_tokenizer"))
    if not (cache / "tokenizer.json").exists():
        # Build beside it, then rename: concurrent test workers never see a half-written folder.
        tmp = build_offline_qwen_tokenizer(cache.with_name(f"{cache.name}.tmp{os.getpid()}"))
        try:
            tmp.rename(cache)
        except OSError:  # another process won the race; its folder is complete
            pass
    return load_tokenizer(cache)

