"""Run the server in a background thread (tests, notebooks): `serve_in_thread`.

    with serve_in_thread("ckpt:/path/to/workdir") as server:
        client = openai.OpenAI(base_url=server.url, api_key="none")
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from typing import Iterator

from seeker_jax.serve.loading import ServeConfig, build_service
from seeker_jax.serve.server import GracefulServer
from seeker_jax.serve.serving import ChatService


@dataclass
class RunningServer:
    url: str            # the /v1 base URL
    service: ChatService
    server: GracefulServer


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(model_spec: str | ChatService, host: str = "127.0.0.1", port: int = 0,
                    config: ServeConfig | None = None) -> Iterator[RunningServer]:
    """Starts uvicorn on host:port (0: a free port) in a daemon thread; stops it on exit.

    model_spec: "ckpt:PATH", "hf:PATH", or an already built ChatService.
    """
    service = (model_spec if isinstance(model_spec, ChatService)
               else build_service(model_spec, config or ServeConfig()))
    port = port or _free_port(host)
    server = GracefulServer(service, host, port, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server on {host}:{port} did not start")
        time.sleep(0.02)
    try:
        yield RunningServer(f"http://{host}:{port}/v1", service, server)
    finally:
        if isinstance(model_spec, ChatService):  # the caller's engine: leave it running
            server.should_exit = True
        else:  # ours: requests still in flight end now (an error event), then uvicorn stops
            server.drain(timeout=0)
        thread.join(timeout=30)
