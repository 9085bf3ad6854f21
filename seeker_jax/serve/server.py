"""uvicorn around the app, with a graceful shutdown: `run` (the CLI) and `GracefulServer`.

On SIGTERM or SIGINT the server
1. stops admitting: new requests get a 503 in OpenAI's error shape, /health says "draining";
2. lets the requests in flight finish, for up to `shutdown_timeout` seconds;
3. closes the engine: whatever is still queued or decoding ends with an error at once (a
   stream gets a final `data: {"error": ...}` event, a plain request a 503), and waits up to
   FLUSH_S for those last bytes to go out;
4. stops uvicorn (which cancels anything still open after FLUSH_S more) and returns, after
   waiting at most FLUSH_S for the engine's worker to end its step (it may be inside a
   compile; it is a daemon thread). So the process exits within shutdown_timeout + a few s.
A second signal skips the wait. Without step 3 before step 4, uvicorn would wait forever for
the open streams while the engine kept decoding them.
"""
from __future__ import annotations

import logging
import threading
import time

import uvicorn

from seeker_jax.serve.app import build_app
from seeker_jax.serve.serving import ChatService

log = logging.getLogger(__name__)

FLUSH_S = 2.0  # for the last events of streams the engine closed, and for its worker at exit


class GracefulServer(uvicorn.Server):
    """A uvicorn server over `build_app(service)` that drains before it exits."""

    def __init__(self, service: ChatService, host: str = "127.0.0.1", port: int = 8000,
                 shutdown_timeout: float = 10.0, log_level: str = "info"):
        self.service = service
        self.app = build_app(service)
        self.shutdown_timeout = shutdown_timeout
        self._draining: threading.Thread | None = None
        super().__init__(uvicorn.Config(self.app, host=host, port=port, log_level=log_level,
                                        lifespan="off", timeout_graceful_shutdown=FLUSH_S))

    def handle_exit(self, sig, frame) -> None:  # uvicorn's signal handler
        if self._draining is None:
            self._draining = threading.Thread(target=self.drain, name="seeker-serve-drain",
                                              daemon=True)
            self._draining.start()
        else:  # a second signal: no more waiting
            self.service.engine.close(timeout=0)
            self.should_exit = True

    def drain(self, timeout: float | None = None) -> None:
        """Steps 1-4 of the module doc; returns once uvicorn is told to exit."""
        timeout = self.shutdown_timeout if timeout is None else timeout
        admission = self.app.state.admission
        admission.close()
        start = time.monotonic()
        log.warning("shutting down: %d request(s) in flight, waiting up to %.0f s",
                    admission.in_flight, timeout)
        if not admission.wait_idle(timeout):
            log.warning("shutting down: ending %d request(s) still in flight",
                        admission.in_flight)
        self.service.engine.close(timeout=0)  # errors now; `run` waits for the worker
        admission.wait_idle(FLUSH_S)
        log.warning("shutting down after %.1f s", time.monotonic() - start)
        self.should_exit = True


def run(service: ChatService, host: str, port: int, shutdown_timeout: float = 10.0) -> None:
    """Serves until SIGTERM / SIGINT, then shuts down gracefully (module doc)."""
    server = GracefulServer(service, host, port, shutdown_timeout)
    try:
        server.run()
    finally:  # the worker may be inside a compile: it is a daemon, not waited for long
        start = time.monotonic()
        service.engine.close(timeout=FLUSH_S)
        log.warning("stopped (the engine's worker took %.1f s to stop)",
                    time.monotonic() - start)
