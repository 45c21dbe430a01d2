"""``WS /v1/sessions/{id}/ws``: rounds and undo over one socket.

Browsers cannot set an ``Authorization`` header on a WebSocket, so the API key may also come
as the ``api_key`` query parameter (the access log shows it as ``***``). Errors are sent as
``{"type": "error"}`` messages and the socket stays open, except for fatal ones (bad
credentials: close code 4401; unknown session: 4404; too many failed credentials: 1008)
which close it after the message.

A browser page may only open a socket from the API's own origin or from one listed in
``MATTESERVE_WS_ALLOWED_ORIGINS``; others are refused with HTTP 403 before the handshake
(clients that send no ``Origin``, i.e. not browsers, are not affected).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import TypeAdapter, ValidationError

from schemas.errors import ErrorDetail
from schemas.sessions import RoundRequest
from schemas.websocket import (
    ClientMessage,
    ErrorMessage,
    PingMessage,
    PongMessage,
    ReadyMessage,
    ResultMessage,
    RoundMessage,
    UndoMessage,
    UndoneMessage,
)
from service.api.deps import authenticate, enforce_rate_limit, get_service, get_settings
from service.api.json_input import parse_json
from service.errors import ApiError, RateLimited, SchemaError, SessionNotFound, StoreUnavailable, Unauthorized
from service.serving import MattingService

log = logging.getLogger(__name__)
router = APIRouter()
_MESSAGES = TypeAdapter(ClientMessage)
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_POLICY = 1008


def origin_allowed(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """Whether a socket opened from page ``origin`` may connect to the API at ``host``."""
    if origin is None or "*" in allowed:
        return True
    origin = origin.rstrip("/")
    if origin in allowed:
        return True
    _, _, authority = origin.partition("://")
    return host is not None and authority.lower() == host.lower()


async def _send_error(socket: WebSocket, error: ApiError, request_id: str | None = None) -> None:
    detail = ErrorDetail(code=error.code, message=error.message, retry_after_s=error.retry_after_s)
    message = ErrorMessage(error=detail, request_id=request_id)
    await socket.send_text(message.model_dump_json())


@router.websocket("/v1/sessions/{session_id}/ws")
async def session_socket(socket: WebSocket, session_id: str) -> None:
    service: MattingService = get_service(socket)
    settings = get_settings(socket)
    metrics = socket.app.state.metrics
    if not origin_allowed(socket.headers.get("origin"), socket.headers.get("host"), settings.allowed_origins):
        metrics.errors.labels(code="origin_not_allowed").inc()
        await socket.close(code=CLOSE_POLICY)  # before accept: the handshake gets HTTP 403
        return
    await socket.accept()
    try:
        user = await authenticate(
            socket, socket.headers.get("authorization"), socket.query_params.get("api_key")
        )
        meta = await service.store.get(session_id, user)
    except (Unauthorized, RateLimited, SessionNotFound, StoreUnavailable) as exc:
        metrics.errors.labels(code=exc.code).inc()
        await _send_error(socket, exc)
        close_code = {Unauthorized: CLOSE_UNAUTHORIZED, RateLimited: CLOSE_POLICY}.get(
            type(exc), CLOSE_NOT_FOUND
        )
        if isinstance(exc, StoreUnavailable):
            close_code = 1013  # try again later
        await socket.close(code=close_code)
        return
    await socket.send_text(
        ReadyMessage(
            session_id=session_id, rounds=meta.rounds, width=meta.width, height=meta.height
        ).model_dump_json()
    )
    try:
        while True:
            frame = await socket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            if frame.get("text") is None:
                await _send_error(socket, ApiError("Send JSON text messages.", code="invalid_message"))
                continue
            if not await _handle(socket, service, settings, metrics, user, session_id, frame["text"]):
                await socket.close(code=CLOSE_NOT_FOUND)
                return
    except WebSocketDisconnect:
        return


async def _handle(socket, service, settings, metrics, user: str, session_id: str, text: str) -> bool:
    """Handle one client message; False when the socket must close (the session is gone)."""
    request_id = None
    try:
        data = parse_json(text, "The message")
        if isinstance(data, dict) and isinstance(data.get("request_id"), str):
            request_id = data["request_id"]
        try:
            message = _MESSAGES.validate_python(data)
        except ValidationError as exc:
            raise SchemaError.from_validation("The message", exc) from exc
        if isinstance(message, PingMessage):
            await socket.send_text(PongMessage().model_dump_json())
            return True
        await enforce_rate_limit(socket, user)
        if isinstance(message, RoundMessage):
            result = await service.run_round(
                user,
                session_id,
                RoundRequest(prompts=message.prompts, model=message.model, request_id=message.request_id),
            )
            await socket.send_text(
                ResultMessage(**result.model_dump(), request_id=message.request_id).model_dump_json()
            )
            await socket.send_bytes(await service.alpha_png(user, session_id, result.round))
        elif isinstance(message, UndoMessage):
            undone = await service.undo(user, session_id)
            await socket.send_text(UndoneMessage(**undone.model_dump()).model_dump_json())
            if undone.round > 0:
                await socket.send_bytes(await service.alpha_png(user, session_id, undone.round))
        return True
    except SessionNotFound as exc:
        metrics.errors.labels(code=exc.code).inc()
        await _send_error(socket, exc, request_id)
        return False
    except ApiError as exc:
        metrics.errors.labels(code=exc.code).inc()
        await _send_error(socket, exc, request_id)
        return True
    except WebSocketDisconnect:
        raise
    except Exception:
        log.exception("websocket message failed")
        metrics.errors.labels(code="internal_error").inc()
        await _send_error(
            socket,
            ApiError("The server failed to handle this message.", code="internal_error", status=500),
            request_id,
        )
        return True
