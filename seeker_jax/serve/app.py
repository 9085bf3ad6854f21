"""The HTTP layer (FastAPI): routes, JSON errors, server-sent events and admission, over a
ChatService.

Every refusal is a JSON body in OpenAI's error shape, `{"error": {message, type, param, code}}`,
whatever raised it: the request's own checks (400: malformed, too deeply nested or non-Unicode
JSON, invalid fields, bad media; 404: an unknown model; 413: a body over `max_body_bytes`),
FastAPI's routing (404 unknown path, 405 wrong method), the shutdown (503), and, should one
happen, a bug (500, logged with its traceback). Unknown request fields are ignored and logged
(ASCII-escaped, cut short), never echoed into a header.

A client that disconnects mid-stream cancels its request (its rows finish their turn and free
themselves). A stream that fails after its first byte ends with an error event,
`data: {"error": {...}}` (the openai client raises it as an APIError).

Admission counts the requests in flight, from the first byte read to the last byte sent;
`seeker_jax.serve.server` closes it on SIGTERM (new requests get 503) and waits for it to
drain.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from seeker_jax.serve import protocol as P
from seeker_jax.serve.engine import SHUTTING_DOWN, EngineError
from seeker_jax.serve.serving import ChatService, RequestError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 << 20  # a request body (base64 media included)


class Admission:
    """Requests in flight, and whether new ones are still let in (graceful shutdown)."""

    def __init__(self):
        self._cond = threading.Condition()
        self.in_flight = 0
        self.closed = False

    def enter(self) -> bool:
        with self._cond:
            if self.closed:
                return False
            self.in_flight += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is in flight; False if `timeout` seconds pass first."""
        with self._cond:
            return self._cond.wait_for(lambda: self.in_flight == 0, timeout)


def _error(message: str, status: int = 400, param: str | None = None,
           headers: dict | None = None) -> JSONResponse:
    kind = "not_found_error" if status == 404 else (
        "invalid_request_error" if status < 500 else "server_error")
    return JSONResponse(P.error_body(message, kind, param, status), status_code=status,
                        headers=headers)


def _error_event(message: str, status: int) -> str:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return f"data: {json.dumps(P.error_body(message, kind, code=status))}\n\n"


class _TrackedStream(StreamingResponse):
    """A streamed response that, however it ends (done, failed, client gone, or never
    started), cancels its request and leaves admission."""

    def __init__(self, content, on_close, **kwargs):
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(f"the request body is {declared} bytes, over the server's limit of "
                           f"{limit}; send smaller media or file:// paths", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the request body is over the server's limit of {limit} bytes;"
                               " send smaller media or file:// paths", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _log_ignored(req: P.ChatCompletionRequest) -> None:
    if req.ignored_fields:
        names = ", ".join(ascii(n[:60]) for n in req.ignored_fields[:10])
        log.info("ignored %d unknown request field(s): %s", len(req.ignored_fields), names)


def build_app(service: ChatService, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    app = FastAPI(title="seeker-jax serve")
    admission = app.state.admission = Admission()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = {404: f"no route {request.method} {request.url.path[:200]}; see /docs",
                   405: f"{request.method} is not allowed on {request.url.path[:200]}"}.get(
            exc.status_code, str(exc.detail))
        return _error(message, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return _error(f"invalid request: {str(exc.errors()[:3])[:500]}", 400)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(f"internal server error ({type(exc).__name__}); this is a bug in "
                      "seeker-jax serve: please report it", 500)

    @app.get("/health")
    def health():
        return {"status": "draining" if admission.closed else "ok",
                "model": service.model_name}

    @app.get("/v1/models")
    def models():
        return P.ModelList(data=[P.ModelCard(id=service.model_name)]).model_dump()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        if not admission.enter():
            return _error(SHUTTING_DOWN, 503)
        streaming = False
        try:
            try:
                req = P.parse_request(await _read_body(request, max_body_bytes))
                _log_ignored(req)
                gen = await asyncio.to_thread(service.generation_request, req)
                handle = service.engine.submit(gen)
            except ClientDisconnect:
                return _error("the client went away while sending the request")
            except P.RequestParseError as exc:
                return _error(str(exc))
            except RequestError as exc:
                return _error(str(exc), exc.status, exc.param)
            except EngineError as exc:
                return _error(str(exc), exc.status)
            if not req.stream:
                try:
                    out = await asyncio.to_thread(service.complete, req, handle)
                except RequestError as exc:
                    return _error(str(exc), exc.status)
                finally:
                    handle.cancel()
                body = out.model_dump(exclude_none=True)
                for choice in body["choices"]:  # null content is sent, as OpenAI does
                    choice["message"].setdefault("content", None)
                return JSONResponse(body)

            events = service.stream(req, handle)

            async def sse():
                while True:
                    try:
                        item = await asyncio.to_thread(next, events, None)
                    except RequestError as exc:
                        yield _error_event(str(exc), exc.status)
                        return
                    except Exception as exc:  # a bug: the client still gets a clean end
                        log.exception("stream failed")
                        yield _error_event(f"internal server error ({type(exc).__name__})", 500)
                        return
                    if item is None:
                        return
                    yield item

            def closed():
                handle.cancel()
                admission.leave()

            streaming = True
            return _TrackedStream(sse(), closed, media_type="text/event-stream")
        finally:
            if not streaming:
                admission.leave()

    return app
