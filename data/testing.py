"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests of anything that talks HTTP.

It is a real HTTP server (http.server on a free port, one thread per connection); what it answers
is a Python function of the request body, so a test can make it reply well, fail with 500s or
429s, hang past the client's timeout, send garbage or truncated JSON. It counts requests and the
most that were in flight at once. A stand-in for a real model server (vLLM, a judge model),
which cannot run here; `seeker-jax serve` is the real one.

    with ChatServer(lambda body: reply_text("Judgement: 1")) as server:
        client = ChatClient(server.url, "judge")
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class Reply:
    """What the server sends: a status, raw bytes, and a delay before sending."""

    def __init__(self, status: int = 200, body: bytes | dict | str = b"", delay_s: float = 0.0):
        self.status, self.delay_s = status, delay_s
        if isinstance(body, dict):
            body = json.dumps(body)
        self.body = body.encode() if isinstance(body, str) else body


def completion(text: str, model: str = "test", tool_calls: list | None = None,
               finish_reason: str = "stop", prompt_tokens: int = 10) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                      "total_tokens": prompt_tokens + len(text.split())}}


def reply_text(text: str, **kwargs) -> Reply:
    return Reply(200, completion(text, **kwargs))


class ChatServer:
    """Context manager: `url` is the /v1 base URL; `requests` the bodies received, in order."""

    def __init__(self, handler: Callable[[dict], Reply]):
        self.handler = handler
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                with server.lock:
                    server.requests.append(body)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = server.handler(body)
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                finally:
                    # answered from here on: a client may already send its next request while
                    # this thread writes, so in-flight ends before the write, not after it
                    with server.lock:
                        server.in_flight -= 1
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): fine

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "ChatServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
