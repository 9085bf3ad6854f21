"""Graceful shutdown of `seeker-jax serve`: SIGTERM to the real CLI process with four streams
open (the official openai client on 127.0.0.1) exits within 15 s, every client sees a complete
stream or a clean error event, and a request sent while it drains gets a 503 in OpenAI's
shape. In-process, a drain that cannot wait ends every open stream with the error event."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx2 as httpx  # what this openai client is built on
import openai
import pytest

from seeker_jax.checkpointing.tiny import save_tiny_checkpoint
from seeker_jax.serve.loading import ServeConfig
from seeker_jax.serve.testing import serve_in_thread

PROMPT = [{"role": "user", "content": "Tell me a very long story about a dog"}]


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    return save_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny")))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stream(threading.Thread):
    """One streaming client: `first` is set at its first content chunk; `outcome` is
    "complete" (ended at [DONE] after a finish_reason), "error: <message>" (an error event,
    raised by the client as an APIError), or what else happened (a dropped connection)."""

    def __init__(self, client: openai.OpenAI, max_tokens: int):
        super().__init__(daemon=True)
        self.client, self.max_tokens = client, max_tokens
        self.first = threading.Event()
        self.outcome: str | None = None
        self.chunks = 0

    def run(self):
        finish = None
        try:
            for chunk in self.client.chat.completions.create(
                    model="tiny", messages=PROMPT, temperature=0.8, max_tokens=self.max_tokens,
                    stream=True):
                self.chunks += 1
                if chunk.choices and chunk.choices[0].delta.content:
                    self.first.set()
                if chunk.choices and chunk.choices[0].finish_reason:
                    finish = chunk.choices[0].finish_reason
            self.outcome = "complete" if finish else "ended without a finish_reason"
        except openai.APIStatusError as exc:  # pragma: no cover - a refusal at the start
            self.outcome = f"status {exc.status_code}"
        except openai.APIConnectionError as exc:
            self.outcome = f"connection: {exc!r}"
        except openai.APIError as exc:  # the stream's error event
            self.outcome = f"error: {exc.message}"
        except Exception as exc:  # noqa: BLE001 - anything else is what the test reports
            self.outcome = f"unexpected: {exc!r}"
        finally:
            self.first.set()


# Slow (~30 s): the drain test below checks shutdown in the default suite.
@pytest.mark.slow
def test_sigterm_with_four_open_streams_exits_within_15_s(ckpt_dir, tmp_path):
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    script = os.path.join(os.path.dirname(sys.executable), "seeker-jax")  # the installed CLI
    cli = [script] if os.path.exists(script) else [
        sys.executable, "-c", "import sys; from seeker_jax.cli.main import main; sys.exit(main())"]
    proc = subprocess.Popen(
        [*cli, "serve", "--model", f"ckpt:{ckpt_dir}",
         "--port", str(port), "--served-model-name", "tiny", "--batch-size", "4",
         "--max-len", "4096"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(base + "/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        client = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0,
                               timeout=120)
        warm = Stream(client, 8)  # compiles the programs the streams use
        warm.run()
        assert warm.outcome == "complete", warm.outcome
        streams = [Stream(client, 4000) for _ in range(4)]
        for s in streams:
            s.start()
        for s in streams:
            assert s.first.wait(120), "a stream never started"
        assert all(s.outcome is None for s in streams), [s.outcome for s in streams]

        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        try:  # draining: new requests are refused in OpenAI's shape
            r = httpx.post(base + "/v1/chat/completions", timeout=10, json={
                "model": "tiny", "messages": PROMPT, "max_tokens": 2})
            assert r.status_code == 503 and "shutting down" in r.json()["error"]["message"]
            assert httpx.get(base + "/health", timeout=10).json()["status"] == "draining"
        except httpx.TransportError:
            pass  # already stopped listening: every stream finished within the half second
        rc = proc.wait(timeout=15)
        took = time.monotonic() - start
        for s in streams:
            s.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = (tmp_path / "serve.log").read_text()
    print(f"SIGTERM -> exit in {took:.1f} s; streams: {[s.outcome for s in streams]}")
    assert rc == 0 and took < 15, output[-3000:]
    for s in streams:
        assert s.outcome == "complete" or (
            s.outcome.startswith("error: ") and "shutting down" in s.outcome), s.outcome
    assert "shutting down" in output


def test_a_drain_that_cannot_wait_ends_open_streams_with_an_error_event(ckpt_dir):
    cfg = ServeConfig(model_name="tiny", batch_size=4, max_len=4096, decode_steps=4)
    with serve_in_thread(f"ckpt:{ckpt_dir}", config=cfg) as running:
        client = openai.OpenAI(base_url=running.url, api_key="none", max_retries=0,
                               timeout=120)
        warm = Stream(client, 4)
        warm.run()
        streams = [Stream(client, 4000) for _ in range(3)]
        for s in streams:
            s.start()
        plain: list = []

        def non_streaming():
            try:
                client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=4000,
                                               temperature=0.8)
                plain.append("complete")
            except openai.APIStatusError as exc:
                plain.append((exc.status_code, exc.message))

        waiting = threading.Thread(target=non_streaming, daemon=True)
        waiting.start()
        for s in streams:
            assert s.first.wait(120)
        running.server.drain(timeout=0)
        for s in streams:
            s.join(30)
        waiting.join(30)
        assert [s.outcome for s in streams] == [
            "error: the server is shutting down; retry on another replica or later"] * 3
        assert all(s.chunks > 1 for s in streams)
        assert len(plain) == 1 and plain[0][0] == 503 and "shutting down" in plain[0][1]
