"""A small client for OpenAI-compatible chat servers (vLLM, SGLang, gateways, `seeker-jax serve`).

Why our own and not the `openai` package: every caller here (the RL judge, the data pipeline's
LLM / VLM stages, teacher trajectories, evaluation of remote models) needs the same four things
around each call, and needs them to hold across threads:
  - bounded concurrency (a semaphore per client) and a per-endpoint rate limit (a token bucket
    shared by every client of that endpoint in the process);
  - a timeout, and retries with exponential backoff and jitter on connection errors, timeouts,
    429 and 5xx, and on bodies that are not the JSON of a chat completion;
  - an on-disk cache keyed by the request, so that a rerun never pays twice;
  - counters (calls, retries, failures, cache hits, tokens, seconds) for metrics and funnels.
It uses only the standard library (urllib), so it adds no dependency.

A failed call raises `ApiError` (after the retries); `chat_many` returns the error in place of
the result instead, so one bad request never stops a batch.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class ApiError(RuntimeError):
    """A chat call that failed for good: `status` is the last HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = True):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass
class ChatResult:
    """One completion: the first choice's text (and tool calls, if any), usage, the raw body."""

    text: str
    finish_reason: str | None
    usage: dict[str, int]
    raw: dict[str, Any]
    cached: bool = False

    @property
    def tool_calls(self) -> list[dict]:
        return self.raw["choices"][0]["message"].get("tool_calls") or []


@dataclass
class ApiStats:
    calls: int = 0            # HTTP requests sent (retries included)
    completions: int = 0      # chat() calls that returned a result
    retries: int = 0
    failures: int = 0         # chat() calls that raised ApiError
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0      # summed over calls
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in self.__dict__.items() if k != "lock"}


class TokenBucket:
    """At most `rate` acquisitions per second on average, bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int = 1):
        self.rate, self.burst = float(rate), max(int(burst), 1)
        self.tokens, self.stamp = float(self.burst), time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return
                wait = (1.0 - self.tokens) / self.rate
            time.sleep(wait)


_BUCKETS: dict[str, TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def endpoint_bucket(base_url: str, rate: float | None) -> TokenBucket | None:
    """The process-wide token bucket of one endpoint (None: no rate limit)."""
    if not rate:
        return None
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(base_url)
        if bucket is None or bucket.rate != rate:
            bucket = _BUCKETS[base_url] = TokenBucket(rate, burst=max(1, int(rate)))
        return bucket


def parse_model_url(spec: str) -> tuple[str, str]:
    """`URL#MODEL` (e.g. `http://127.0.0.1:8000/v1#qwen3-vl`) -> (base_url, model)."""
    if "#" not in spec:
        raise ValueError(f"{spec!r}: expected URL#MODEL, e.g. http://127.0.0.1:8000/v1#my-model")
    url, model = spec.rsplit("#", 1)
    if not url.startswith(("http://", "https://")) or not model:
        raise ValueError(f"{spec!r}: expected URL#MODEL with an http(s) URL and a model name")
    return url.rstrip("/"), model


def image_data_url(image, fmt: str = "PNG") -> str:
    """An (H, W, 3) uint8 array or a PIL image as a `data:image/...;base64,` URL."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, np.uint8))
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    mime = "jpeg" if fmt.upper() in ("JPG", "JPEG") else fmt.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def request_key(body: dict[str, Any]) -> str:
    """Cache key of a request body: sha256 of its canonical JSON."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _parse_completion(status: int, payload: bytes) -> dict[str, Any]:
    try:
        body = json.loads(payload)
        message = body["choices"][0]["message"]
        if not isinstance(message, dict):
            raise TypeError("message is not an object")
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise ApiError(f"HTTP {status} but the body is not a chat completion ({e}): "
                       f"{payload[:120]!r}", status) from None
    return body


class ChatClient:
    """Chat completions against one endpoint and model (see the module doc).

    base_url ends in /v1 (the client posts to base_url + "/chat/completions"). The API key is
    `api_key`, else $OPENAI_API_KEY, else none (local servers need none).
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 timeout_s: float = 60.0, max_retries: int = 3, backoff_s: float = 0.5,
                 max_backoff_s: float = 8.0, max_concurrency: int = 8,
                 rate_limit_per_s: float | None = None, cache_dir: str | os.PathLike | None = None,
                 defaults: dict[str, Any] | None = None):
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout_s, self.max_retries = float(timeout_s), int(max_retries)
        self.backoff_s, self.max_backoff_s = float(backoff_s), float(max_backoff_s)
        self.max_concurrency = int(max_concurrency)
        self.slots = threading.BoundedSemaphore(self.max_concurrency)
        self.bucket = endpoint_bucket(self.base_url, rate_limit_per_s)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.defaults = dict(defaults or {})
        self.stats = ApiStats()
        self._in_flight = 0

    @classmethod
    def from_spec(cls, spec: str, **kwargs) -> "ChatClient":
        """From `URL#MODEL`."""
        return cls(*parse_model_url(spec), **kwargs)

    # -- cache

    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    def _cache_get(self, key: str) -> dict | None:
        path = self._cache_path(key)
        if path is None or not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError:  # a torn write from a killed run: ask again
            return None

    def _cache_put(self, key: str, body: dict) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(body))
        os.replace(tmp, path)  # atomic: a reader sees the whole answer or none

    # -- calls

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """One HTTP request; ApiError on anything but a well-formed completion."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.base_url + "/chat/completions", data=data,
                                     headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return _parse_completion(resp.status, resp.read())
        except urllib.error.HTTPError as e:
            detail = e.read()[:200]
            raise ApiError(f"HTTP {e.code} from {self.base_url}: {detail!r}", e.code,
                           retryable=e.code in RETRY_STATUS) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ApiError(f"no answer from {self.base_url} ({type(reason).__name__}: {reason})"
                           ) from None

    def chat(self, messages: Sequence[dict[str, Any]], **params: Any) -> ChatResult:
        """One chat completion, cached, rate-limited, retried; raises ApiError at the end."""
        body = {"model": self.model, "messages": list(messages), **self.defaults, **params}
        key = request_key(body)
        hit = self._cache_get(key)
        if hit is not None:
            with self.stats.lock:
                self.stats.cache_hits += 1
            return self._result(hit, cached=True)
        last: ApiError | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
                time.sleep(delay * (0.5 + random.random() / 2))
            if self.bucket is not None:
                self.bucket.acquire()
            with self.slots:
                with self.stats.lock:
                    self.stats.calls += 1
                    self.stats.retries += bool(attempt)
                    self._in_flight += 1
                    self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)
                start = time.perf_counter()
                try:
                    raw = self._post(body)
                except ApiError as e:
                    last = e
                    if not e.retryable:
                        break
                    continue
                finally:
                    with self.stats.lock:
                        self._in_flight -= 1
                        self.stats.seconds += time.perf_counter() - start
            self._cache_put(key, raw)
            return self._result(raw, cached=False)
        with self.stats.lock:
            self.stats.failures += 1
        assert last is not None
        raise ApiError(f"{self.model}: {last} (after {self.max_retries + 1} attempts)"
                       if last.retryable else f"{self.model}: {last}", last.status, last.retryable)

    def _result(self, raw: dict, cached: bool) -> ChatResult:
        choice = raw["choices"][0]
        usage = {k: int(v) for k, v in (raw.get("usage") or {}).items()
                 if isinstance(v, (int, float))}
        if not cached:
            with self.stats.lock:
                self.stats.completions += 1
                self.stats.prompt_tokens += usage.get("prompt_tokens", 0)
                self.stats.completion_tokens += usage.get("completion_tokens", 0)
        return ChatResult(choice["message"].get("content") or "", choice.get("finish_reason"),
                          usage, raw, cached)

    def chat_many(self, requests: Sequence[tuple[Sequence[dict], dict[str, Any]]]
                  ) -> list[ChatResult | ApiError]:
        """Many (messages, params) requests at up to max_concurrency at once, in order; a
        failed request gives its ApiError in its place."""
        def one(req):
            messages, params = req
            try:
                return self.chat(messages, **params)
            except ApiError as e:
                return e

        if not requests:
            return []
        with ThreadPoolExecutor(min(self.max_concurrency, len(requests))) as pool:
            return list(pool.map(one, requests))


__all__ = ["ApiError", "ApiStats", "ChatClient", "ChatResult", "TokenBucket", "endpoint_bucket",
           "image_data_url", "parse_model_url", "request_key"]
