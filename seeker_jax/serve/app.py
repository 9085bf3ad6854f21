"""The HTTP layer (FastAPI): routes, JSON errors and server-sent events over a ChatService.

Every refusal is a 4xx JSON body in OpenAI's error shape: malformed JSON and invalid fields
(400), an unknown model (404), bad media (400). Unknown request fields are ignored and named in
the `x-seeker-ignored-fields` response header. A client that disconnects mid-stream cancels its
request (its rows finish their turn and free themselves).
"""
from __future__ import annotations

import asyncio
import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from seeker_jax.serve import protocol as P
from seeker_jax.serve.engine import EngineError
from seeker_jax.serve.serving import ChatService, RequestError


def _error(message: str, status: int = 400, param: str | None = None) -> JSONResponse:
    kind = "not_found_error" if status == 404 else (
        "invalid_request_error" if status < 500 else "server_error")
    return JSONResponse(P.error_body(message, kind, param, status), status_code=status)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        where = ".".join(str(x) for x in e["loc"])
        parts.append(f"{where}: {e['msg']}" if where else e["msg"])
    return "invalid request: " + "; ".join(parts)


def build_app(service: ChatService) -> FastAPI:
    app = FastAPI(title="seeker-jax serve")

    @app.get("/health")
    def health():
        return {"status": "ok", "model": service.model_name}

    @app.get("/v1/models")
    def models():
        return P.ModelList(data=[P.ModelCard(id=service.model_name)]).model_dump()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _error("the request body is not valid JSON")
        if not isinstance(body, dict):
            return _error("the request body must be a JSON object")
        try:
            req = P.ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            return _error(_validation_message(exc))
        try:
            gen = await asyncio.to_thread(service.generation_request, req)
            handle = service.engine.submit(gen)
        except RequestError as exc:
            return _error(str(exc), exc.status, exc.param)
        except EngineError as exc:
            return _error(str(exc))
        headers = {"x-seeker-ignored-fields": ",".join(req.ignored_fields)} \
            if req.ignored_fields else {}
        if not req.stream:
            try:
                out = await asyncio.to_thread(service.complete, req, handle)
            except RequestError as exc:
                return _error(str(exc), exc.status)
            finally:
                handle.cancel()
            return JSONResponse(out.model_dump(exclude_none=True), headers=headers)

        events = service.stream(req, handle)

        async def sse():
            try:
                while True:
                    try:
                        item = await asyncio.to_thread(next, events, None)
                    except RequestError as exc:
                        yield f"data: {json.dumps(P.error_body(str(exc), code=exc.status))}\n\n"
                        return
                    if item is None:
                        return
                    yield item
            finally:  # also on a disconnect (the generator is closed)
                handle.cancel()

        return StreamingResponse(sse(), media_type="text/event-stream", headers=headers)

    return app
