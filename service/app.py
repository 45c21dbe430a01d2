"""The FastAPI application: wiring, middleware and the mapping of errors to the wire format."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api import oneshot, sessions, system, websocket
from service.config import Settings
from service.errors import ApiError
from service.metrics import Metrics
from service.pipelines.factory import build_registry, close_registry
from service.serving import MattingService
from service.store import SessionStore

log = logging.getLogger("matteserve")
STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
MULTIPART_OVERHEAD = 256 * 1024
STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


class RedactSecrets(logging.Filter):
    """Hide ``api_key=...`` query values in uvicorn's access and WebSocket log lines (the UI
    passes the key that way, since browsers cannot set headers on a WebSocket)."""

    PATTERN = re.compile(r"(api_key=)[^&\s\"]*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.PATTERN.sub(r"\1***", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = self.PATTERN.sub(r"\1***", record.msg)
        return True


def install_log_redaction() -> None:
    """Attach ``RedactSecrets`` to uvicorn's loggers once per process."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


class UploadLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413, from the
    ``Content-Length`` header when there is one, else while the body streams in (so a
    chunked upload is never buffered past the limit)."""

    def __init__(self, app: ASGIApp, max_bytes: int, metrics: Metrics) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's own error answer is replaced by our 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if exceeded and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        self.metrics.errors.labels(code="payload_too_large").inc()
        response = JSONResponse(
            error_body("payload_too_large", f"The request body exceeds {self.max_bytes} bytes."),
            status_code=413,
        )
        await response({"type": "http"}, _empty_receive, send)


class _BodyTooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


class RequestOutcomes:
    """ASGI middleware observing latency by route template, method and status, and answering
    an unexpected exception with a 500 ``internal_error`` body.

    An ``exception_handler(Exception)`` is not enough for the latter: Starlette's
    ``ServerErrorMiddleware`` calls it and then re-raises, and uvicorn closes the keep-alive
    connection on the re-raised error, so the client's next request on that connection fails
    with a reset. Here the exception ends with the answer and the connection stays usable."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: int | None = None

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            self.metrics.errors.labels(code="internal_error").inc()
            if status is not None:
                raise  # part of an answer went out: only closing the connection can end it
            response = JSONResponse(
                error_body("internal_error", "The server failed to handle this request."), status_code=500
            )
            await response(scope, _empty_receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.http_latency.labels(template, scope["method"], str(status or 500)).observe(
                time.perf_counter() - start
            )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; Redis and the pipelines are connected in the lifespan."""
    settings = settings or Settings()
    metrics = Metrics()
    install_log_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = aioredis.from_url(
            settings.redis_url or DEFAULT_REDIS_URL,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            health_check_interval=15,
            # One quick retry (a pooled connection dead after a Redis restart), not redis-py's
            # default of ten with backoff, which holds a round for ~30 s while Redis is paused.
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
        )
        store = SessionStore(client, ttl_s=settings.session_ttl_s, lock_lease_s=settings.round_lock_timeout_s)
        limiter = anyio.CapacityLimiter(settings.inference_threads)
        registry = await build_registry(settings, limiter)
        app.state.service = MattingService(settings, store, registry, metrics, limiter)
        metrics.count_sessions_with(store.active_sessions)
        budget = app.state.service.budget
        metrics.read_pixels_with(held=lambda: budget.used, lent=lambda: budget.lent)
        try:
            yield
        finally:
            await close_registry(registry)
            await client.aclose()

    app = FastAPI(
        title="matteserve",
        version="1.0",
        summary="Interactive and instance image matting: multi-round sessions, soft alpha mattes, cut-outs.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        metrics.errors.labels(code=exc.code).inc()
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(error.get("type") == "json_invalid" for error in errors):
            code, status = "invalid_json", 400
            message = "The request body is not valid JSON."
        else:
            code, status = "invalid_request", 422
            parts = []
            for error in errors[:5]:
                where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
                parts.append(f"{where or 'body'}: {error.get('msg')}")
            message = "The request does not match the schema: " + "; ".join(parts) + "."
        metrics.errors.labels(code=code).inc()
        return JSONResponse(error_body(code, message), status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            code, message = (
                "malformed_body",
                "The request body could not be parsed (malformed multipart or JSON).",
            )
        elif exc.status_code == 404:
            message = f"No route {request.method} {request.url.path}; see /docs for the API."
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}."
        metrics.errors.labels(code=code).inc()
        return JSONResponse(
            error_body(code, message), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    app.include_router(system.router)
    app.include_router(sessions.router)
    app.include_router(oneshot.router)
    app.include_router(websocket.router)
    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="ui")
    app.add_middleware(UploadLimit, max_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD, metrics=metrics)
    app.add_middleware(RequestOutcomes, metrics=metrics)
    return app
