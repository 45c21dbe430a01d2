"""``WS /v1/sessions/{id}/ws``: rounds and undo over one socket.

Browsers cannot set an ``Authorization`` header on a WebSocket, so the API key may also come
as the ``api_key`` query parameter. Errors are sent as ``{"type": "error"}`` messages and the
socket stays open, except for fatal ones (bad credentials: close code 4401; unknown session:
4404) which close it after the message.
"""

from __future__ import annotations

import json
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
from service.api.deps import get_service, get_settings, user_for_credentials
from service.errors import ApiError, RateLimited, SchemaError, SessionNotFound, StoreUnavailable, Unauthorized
from service.serving import MattingService

log = logging.getLogger(__name__)
router = APIRouter()
_MESSAGES = TypeAdapter(ClientMessage)
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404


async def _send_error(socket: WebSocket, error: ApiError, request_id: str | None = None) -> None:
    message = ErrorMessage(error=ErrorDetail(code=error.code, message=error.message), request_id=request_id)
    await socket.send_text(message.model_dump_json())


@router.websocket("/v1/sessions/{session_id}/ws")
async def session_socket(socket: WebSocket, session_id: str) -> None:
    await socket.accept()
    service: MattingService = get_service(socket)
    settings = get_settings(socket)
    metrics = socket.app.state.metrics
    try:
        user = user_for_credentials(
            settings, socket.headers.get("authorization"), socket.query_params.get("api_key")
        )
        meta = await service.store.get(session_id, user)
    except (Unauthorized, SessionNotFound, StoreUnavailable) as exc:
        metrics.errors.labels(code=exc.code).inc()
        await _send_error(socket, exc)
        close_code = CLOSE_UNAUTHORIZED if isinstance(exc, Unauthorized) else CLOSE_NOT_FOUND
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
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ApiError(f"Message is not valid JSON: {exc.msg}.", code="invalid_json") from exc
        if isinstance(data, dict) and isinstance(data.get("request_id"), str):
            request_id = data["request_id"]
        try:
            message = _MESSAGES.validate_python(data)
        except ValidationError as exc:
            raise SchemaError.from_validation("The message", exc) from exc
        if isinstance(message, PingMessage):
            await socket.send_text(PongMessage().model_dump_json())
            return True
        try:
            limited = await service.store.hit_rate_limit(user, settings.rate_limit_per_minute)
        except StoreUnavailable:
            limited = False
        if limited:
            raise RateLimited(f"More than {settings.rate_limit_per_minute} requests in a minute; slow down.")
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
