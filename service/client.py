"""Python client of the matteserve API v1, synchronous and asynchronous.

``MatteClient`` (over ``httpx.Client`` and ``websockets.sync``) and ``AsyncMatteClient``
(over ``httpx.AsyncClient`` and ``websockets.asyncio``) offer the same methods; answers are
the ``schemas`` models of the wire protocol, and every error the server answers is raised
as ``MatteServerError`` carrying the server's ``code``, ``message``, HTTP ``status`` and
``retry_after_s`` (from ``Retry-After``; the client does not wait and retry by itself)::

    from service.client import MatteClient
    from schemas import BoxPrompt, ClickPrompt

    with MatteClient("http://127.0.0.1:8000", api_key="...") as client:
        session = client.create_session("photo.jpg")
        client.run_round(session.session_id, [BoxPrompt(x0=40, y0=30, x1=300, y1=420)])
        with client.stream(session.session_id) as stream:          # rounds over the WebSocket
            result, alpha = stream.round([ClickPrompt(x=120, y=80, label="bg")])
        cutout = client.cutout(session.session_id, result.round)   # (H, W, 4) uint8

Images may be given as encoded bytes (PNG, JPEG, WebP), a path, or a numpy array (encoded to
PNG on the way). Prompts may be ``schemas`` prompt models or plain dicts in the wire format.

Failures of the connection itself are errors too: ``unreachable`` when the request never reached
the server, ``outcome_unknown`` when it was sent and its answer never came (it may have been
applied). Every round carries a ``request_id`` (one is made when none is given), so a round is
safe to retry: ``run_round`` retries a lost answer once by itself, and the error of a round that
stays unknown carries its ``request_id`` to retry with. A stream whose round timed out or whose
socket closed is done: open a new one.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import numpy as np
from PIL import Image
from pydantic import BaseModel, TypeAdapter, ValidationError
from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection as SyncConnection
from websockets.sync.client import connect as sync_connect

from schemas.prompts import Prompt
from schemas.sessions import ModelName, RoundResult, SessionCreated, SessionInfo, UndoResult
from schemas.system import InstanceMatte, InstancesResponse, ModelsResponse
from schemas.websocket import (
    ErrorMessage,
    PongMessage,
    ReadyMessage,
    ResultMessage,
    ServerMessage,
    UndoneMessage,
)

__all__ = [
    "AsyncMatteClient",
    "AsyncRoundStream",
    "ImageInput",
    "MatteClient",
    "MatteServerError",
    "PromptInput",
    "RoundStream",
    "instance_alpha",
]

ImageInput = bytes | str | os.PathLike[str] | np.ndarray
"""Encoded image bytes, a path to an image file, or an (H, W[, C]) uint8 array."""
PromptInput = Prompt | Mapping[str, Any]
"""A ``schemas`` prompt model or a wire-format dict such as ``{"type": "click", "x": 3, "y": 4}``."""

DEFAULT_TIMEOUT_S = 120.0
WS_CLOSE_STATUS = {4401: 401, 4404: 404, 1013: 503}
# errors after which the server closes the socket (close codes 4401, 4404, 1013)
FATAL_WS_CODES = frozenset(
    {"unauthorized", "invalid_api_key", "invalid_authorization", "session_not_found", "store_unavailable"}
)
_PROMPTS = TypeAdapter(list[Prompt])
_SERVER_MESSAGE = TypeAdapter(ServerMessage)
M = TypeVar("M", bound=BaseModel)


class MatteServerError(Exception):
    """An error answered by the server (or a failure to reach it).

    ``code`` is the server's snake_case error code (``session_not_found``,
    ``unsupported_prompt``, ...), ``message`` its human sentence, ``status`` the HTTP status
    (for WebSocket errors: the status the same error has over HTTP where it is known from the
    close code, else ``None``), ``retry_after_s`` the seconds the server asks to wait before a
    retry (429 and 503), ``request_id`` the id of the round the error is about, where one was
    sent. The client's own codes: ``unreachable`` (nothing reached the server),
    ``outcome_unknown`` (sent, but the answer never came: retry a round with its
    ``request_id``), ``timeout`` and ``connection_closed`` (a stream's), ``stream_closed`` (a
    stream used after one of those), ``protocol_error``, ``http_error`` (an answer without the
    server's error body).
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        *,
        retry_after_s: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" (HTTP {status})" if status else ""))
        self.code = code
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s
        self.request_id = request_id


# --------------------------------------------------------------------------- shared helpers
def _image_bytes(image: ImageInput) -> bytes:
    """Encoded bytes of ``image``: bytes as they are, a file's contents, an array as PNG."""
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image)
    if isinstance(image, np.ndarray):
        array = image
        if array.dtype != np.uint8:
            raise TypeError(f"image arrays must be uint8, got {array.dtype}")
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return buffer.getvalue()
    if isinstance(image, str | os.PathLike):
        return Path(image).read_bytes()
    raise TypeError(f"unsupported image input: {type(image).__name__}")


def _image_file(image: ImageInput) -> tuple[str, bytes]:
    name = Path(image).name if isinstance(image, str | os.PathLike) else "image.png"
    return name, _image_bytes(image)


def _score_field(min_score: float | None) -> dict[str, str]:
    """The multipart form field for ``/v1/instances``' ``min_score`` (none: the server's default)."""
    return {} if min_score is None else {"min_score": repr(float(min_score))}


def _prompts_json(prompts: Sequence[PromptInput]) -> list[dict[str, Any]]:
    """Validate ``prompts`` against the wire schema and return them as JSON-ready dicts."""
    items = [p.model_dump(mode="json") if isinstance(p, BaseModel) else dict(p) for p in prompts]
    try:
        parsed = _PROMPTS.validate_python(items)
    except ValidationError as exc:
        raise ValueError(f"prompts do not match the wire schema: {exc}") from exc
    return [p.model_dump(mode="json") for p in parsed]


def _decode_png(data: bytes) -> np.ndarray:
    """A PNG as a numpy array: (H, W) for grayscale, (H, W, 4) for RGBA."""
    return np.asarray(Image.open(io.BytesIO(data)))


def _error_from_response(response: httpx.Response, request_id: str | None = None) -> MatteServerError:
    """The ``MatteServerError`` of a failed response, from its ``{"error": {...}}`` body."""
    retry_after = _seconds(response.headers.get("Retry-After"))
    return _error_from_body(
        response.content, response.status_code, response.reason_phrase, retry_after, request_id
    )


def _error_from_body(
    body: bytes, status: int, reason: str, retry_after_s: float | None, request_id: str | None = None
) -> MatteServerError:
    """The error of an HTTP answer ``body`` (the server's ``{"error": {...}}``, else its text)."""
    try:
        detail = json.loads(body)["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", body.decode(errors="replace").strip()[:300] or reason
    return MatteServerError(code, message, status, retry_after_s=retry_after_s, request_id=request_id)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: not sent by matteserve
        return None


def _checked(response: httpx.Response, request_id: str | None = None) -> httpx.Response:
    if response.is_error:
        raise _error_from_response(response, request_id)
    return response


def _unreachable(exc: Exception, url: str) -> MatteServerError:
    return MatteServerError("unreachable", f"Could not reach the server at {url}: {exc}", None)


# Transport failures before any byte of the request left: the server cannot have acted on it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _transport_error(exc: httpx.TransportError, url: str, request_id: str | None = None) -> MatteServerError:
    """``unreachable`` when the request never left, else ``outcome_unknown`` (it may have been
    applied: a round is retried with its ``request_id``)."""
    if isinstance(exc, _NOT_SENT):
        return _unreachable(exc, url)
    return MatteServerError(
        "outcome_unknown",
        f"The request reached {url} but its answer did not come back ({type(exc).__name__}: {exc}); "
        "it may have been applied."
        + (f" Retry the round with request_id={request_id!r} to have it applied once." if request_id else ""),
        None,
        request_id=request_id,
    )


def _ws_refused(exc: InvalidStatus) -> MatteServerError:
    """The server's own error (code, message) of a refused WebSocket handshake."""
    response = exc.response
    refused = _error_from_body(
        response.body or b"",
        response.status_code,
        response.reason_phrase,
        _seconds(response.headers.get("Retry-After")),
    )
    if refused.code == "http_error":
        refused.message = f"WebSocket refused: HTTP {response.status_code} {refused.message}".strip()
    return refused


def _ws_url(base_url: str, path: str) -> str:
    """The ``ws://``/``wss://`` URL of ``path`` under ``base_url`` (which may carry a prefix)."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    prefix = parts.path.rstrip("/")
    return urlunsplit((scheme, parts.netloc, f"{prefix}{path}", "", ""))


def _round_message(prompts: Sequence[PromptInput], model: ModelName | None, request_id: str) -> str:
    """The WebSocket ``round`` message: the HTTP round's body with its type."""
    return json.dumps({"type": "round", **_round_body(prompts, model, request_id)})


def _round_body(
    prompts: Sequence[PromptInput], model: ModelName | None, request_id: str | None
) -> dict[str, Any]:
    """The JSON body of an HTTP round; always with a ``request_id`` (made when None)."""
    body: dict[str, Any] = {"prompts": _prompts_json(prompts), "request_id": request_id or uuid.uuid4().hex}
    if model is not None:
        body["model"] = model
    return body


def _ws_error(message: ErrorMessage, close_code: int | None = None) -> MatteServerError:
    return MatteServerError(
        message.error.code,
        message.error.message,
        WS_CLOSE_STATUS.get(close_code or 0),
        retry_after_s=message.error.retry_after_s,
        request_id=message.request_id,
    )


def _closed_error(exc: ConnectionClosed, request_id: str | None) -> MatteServerError:
    unknown = (
        f" The round may have been applied: retry it with request_id={request_id!r}." if request_id else ""
    )
    return MatteServerError(
        "connection_closed",
        f"The server closed the socket ({exc.rcvd or exc}).{unknown}",
        request_id=request_id,
    )


def _timeout_error(timeout: float, request_id: str | None) -> MatteServerError:
    unknown = (
        f" The round may still be applied: retry it with request_id={request_id!r} on a new stream."
        if request_id
        else ""
    )
    return MatteServerError(
        "timeout", f"No answer within {timeout:g} s; this stream is closed.{unknown}", request_id=request_id
    )


def _stream_closed() -> MatteServerError:
    return MatteServerError(
        "stream_closed", "This stream ended after an earlier timeout or closed socket; open a new one."
    )


def _session_path(sid: str, *rest: str) -> str:
    return "/".join(["v1/sessions", quote(sid, safe=""), *rest])


class _Base:
    """Settings shared by the sync and async clients."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        if api_key is not None:
            api_key = api_key.strip()  # e.g. read from a file with its trailing newline
            if not api_key.isascii() or not api_key.isprintable() or " " in api_key:
                # (the key itself is never repeated in an error: it is a secret)
                raise ValueError("api_key must be printable ASCII without spaces")
        self.api_key = api_key
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def _ws_target(self, sid: str) -> str:
        return _ws_url(self.base_url, "/" + _session_path(sid, "ws"))


# --------------------------------------------------------------------------- synchronous
class RoundStream:
    """Rounds and undo over one session WebSocket (synchronous). Use ``MatteClient.stream``.

    Answers come in the order of the requests; after a timeout or a closed socket an answer may
    still be on its way, so the stream ends there (``stream_closed`` afterwards)."""

    def __init__(self, connection: SyncConnection, timeout: float) -> None:
        self._ws = connection
        self._timeout = timeout
        self._ended = False
        self.ready: ReadyMessage = self._expect(ReadyMessage, handshake=True)

    def _end(self) -> None:
        self._ended = True
        self._ws.close()

    def _send(self, payload: str) -> None:
        if self._ended:
            raise _stream_closed()
        try:
            self._ws.send(payload)
        except ConnectionClosed as exc:
            self._end()
            raise _closed_error(exc, None) from exc  # not sent: nothing to be unsure about

    def _recv(self, request_id: str | None = None) -> str | bytes:
        try:
            return self._ws.recv(timeout=self._timeout)
        except ConnectionClosed as exc:
            self._end()
            raise _closed_error(exc, request_id) from exc
        except TimeoutError as exc:
            self._end()
            raise _timeout_error(self._timeout, request_id) from exc

    def _receive_png(self, request_id: str | None = None) -> bytes:
        frame = self._recv(request_id)
        if not isinstance(frame, bytes):
            self._end()
            raise MatteServerError("protocol_error", "Expected the alpha PNG as a binary frame.")
        return frame

    def _expect(self, kind: type[M], request_id: str | None = None, *, handshake: bool = False) -> M:
        while True:
            frame = self._recv(request_id)
            if isinstance(frame, bytes):
                self._end()
                raise MatteServerError("protocol_error", "Got a binary frame where a JSON message was due.")
            message = _SERVER_MESSAGE.validate_json(frame)
            if isinstance(message, kind):
                return message
            if isinstance(message, ErrorMessage):
                close_code = None
                if handshake and message.error.code in FATAL_WS_CODES:  # the server closes next: learn how
                    try:
                        self._ws.recv(timeout=5)
                    except ConnectionClosed as exc:
                        close_code = exc.rcvd.code if exc.rcvd else None
                    except TimeoutError:
                        pass
                raise _ws_error(message, close_code)
            # pongs and other unsolicited messages are skipped

    def round(
        self,
        prompts: Sequence[PromptInput],
        model: ModelName | None = None,
        request_id: str | None = None,
    ) -> tuple[ResultMessage, np.ndarray]:
        """Run one round with the new ``prompts``; returns the result and its alpha (H, W) uint8.
        ``request_id`` (made when None) lets a retry after ``timeout`` or ``connection_closed``
        be applied once; the error carries it."""
        request_id = request_id or uuid.uuid4().hex
        self._send(_round_message(prompts, model, request_id))
        result = self._expect(ResultMessage, request_id)
        return result, _decode_png(self._receive_png(request_id))

    def undo(self) -> tuple[UndoneMessage, np.ndarray | None]:
        """Drop the last round; returns the answer and the alpha of the round now current (None at 0)."""
        self._send(json.dumps({"type": "undo"}))
        undone = self._expect(UndoneMessage)
        alpha = _decode_png(self._receive_png()) if undone.round > 0 else None
        return undone, alpha

    def ping(self) -> None:
        """Check the socket answers (a ``pong``)."""
        self._send(json.dumps({"type": "ping"}))
        self._expect(PongMessage)


class MatteClient(_Base):
    """Synchronous client: ``with MatteClient(url, api_key=...) as client: ...``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout)
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> MatteClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def _request(
        self, method: str, path: str, request_id: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        try:
            return _checked(self._http.request(method, path, **kwargs), request_id)
        except httpx.TransportError as exc:
            raise _transport_error(exc, self.base_url, request_id) from exc

    def models(self) -> ModelsResponse:
        """The pipelines the server offers, their readiness and training status."""
        return ModelsResponse.model_validate_json(self._request("GET", "v1/models").content)

    def create_session(self, image: ImageInput, model: ModelName = "auto") -> SessionCreated:
        """Upload ``image`` and start a session (the model's image features are computed now)."""
        response = self._request(
            "POST", "v1/sessions", files={"image": _image_file(image)}, data={"model": model}
        )
        return SessionCreated.model_validate_json(response.content)

    def run_round(
        self,
        sid: str,
        prompts: Sequence[PromptInput],
        model: ModelName | None = None,
        request_id: str | None = None,
    ) -> RoundResult:
        """Add ``prompts`` (this round's new marks) and compute the next round over HTTP. A
        ``request_id`` is made when None; a round whose answer is lost on the way back is sent
        once more with it (the server answers the stored round: applied once), and if that too
        is lost the ``outcome_unknown`` error carries it."""
        body = _round_body(prompts, model, request_id)
        path = _session_path(sid, "rounds")
        try:
            response = self._request("POST", path, body["request_id"], json=body)
        except MatteServerError as exc:
            if exc.code != "outcome_unknown":
                raise
            response = self._request("POST", path, body["request_id"], json=body)
        return RoundResult.model_validate_json(response.content)

    def session(self, sid: str) -> SessionInfo:
        """The session and its rounds with their prompts."""
        return SessionInfo.model_validate_json(self._request("GET", _session_path(sid)).content)

    def alpha(self, sid: str, n: int, as_array: bool = True) -> np.ndarray | bytes:
        """Round ``n``'s alpha matte: (H, W) uint8 array, or the PNG bytes with ``as_array=False``."""
        data = self._request("GET", _session_path(sid, "rounds", str(n), "alpha.png")).content
        return _decode_png(data) if as_array else data

    def cutout(self, sid: str, n: int, as_array: bool = True) -> np.ndarray | bytes:
        """Round ``n``'s RGBA cut-out: (H, W, 4) uint8 array, or the PNG bytes."""
        data = self._request("GET", _session_path(sid, "rounds", str(n), "cutout.png")).content
        return _decode_png(data) if as_array else data

    def undo(self, sid: str) -> UndoResult:
        """Drop the last round of the session."""
        return UndoResult.model_validate_json(self._request("POST", _session_path(sid, "undo")).content)

    def delete(self, sid: str) -> None:
        """Delete the session and all its data."""
        self._request("DELETE", _session_path(sid))

    def matte(
        self,
        image: ImageInput,
        prompts: Sequence[PromptInput],
        output: Literal["alpha", "cutout"] = "cutout",
        model: ModelName = "auto",
    ) -> bytes:
        """One-shot matting without a session: the alpha (grayscale) or cut-out (RGBA) PNG bytes."""
        response = self._request(
            "POST",
            "v1/matte",
            files={"image": _image_file(image)},
            data={"prompts": json.dumps(_prompts_json(prompts)), "output": output, "model": model},
        )
        return response.content

    def instances(self, image: ImageInput, min_score: float | None = None) -> InstancesResponse:
        """Every human instance in ``image``, each with its own alpha matte (automatic, no prompts);
        ``min_score`` the least "is human" score kept (the server's default when None)."""
        response = self._request(
            "POST", "v1/instances", files={"image": _image_file(image)}, data=_score_field(min_score)
        )
        return InstancesResponse.model_validate_json(response.content)

    @contextmanager
    def stream(self, sid: str) -> Iterator[RoundStream]:
        """Open the session's WebSocket; yields a ``RoundStream`` once the server is ready."""
        if self._http.is_closed:
            raise RuntimeError("Cannot open a stream, as the client has been closed.")
        url = self._ws_target(sid)
        try:
            connection = sync_connect(
                url,
                additional_headers=self._headers,
                max_size=None,
                open_timeout=self.timeout,
                close_timeout=5,
            )
        except InvalidStatus as exc:
            raise _ws_refused(exc) from exc
        except (OSError, TimeoutError, WebSocketException) as exc:  # refused, no server, not a WebSocket
            raise _unreachable(exc, url) from exc
        with connection:
            yield RoundStream(connection, self.timeout)


# --------------------------------------------------------------------------- asynchronous
class AsyncRoundStream:
    """Rounds and undo over one session WebSocket (asyncio). Use ``AsyncMatteClient.stream``;
    it ends after a timeout or a closed socket, as ``RoundStream`` does."""

    def __init__(self, connection: AsyncConnection, timeout: float) -> None:
        self._ws = connection
        self._timeout = timeout
        self._ended = False
        self.ready: ReadyMessage  # set by ``_start``

    async def _start(self) -> AsyncRoundStream:
        self.ready = await self._expect(ReadyMessage, handshake=True)
        return self

    async def _end(self) -> None:
        self._ended = True
        await self._ws.close()

    async def _send(self, payload: str) -> None:
        if self._ended:
            raise _stream_closed()
        try:
            await self._ws.send(payload)
        except ConnectionClosed as exc:
            await self._end()
            raise _closed_error(exc, None) from exc

    async def _recv(self, request_id: str | None = None) -> str | bytes:
        try:
            return await asyncio.wait_for(self._ws.recv(), self._timeout)
        except ConnectionClosed as exc:
            await self._end()
            raise _closed_error(exc, request_id) from exc
        except TimeoutError as exc:
            await self._end()
            raise _timeout_error(self._timeout, request_id) from exc

    async def _receive_png(self, request_id: str | None = None) -> bytes:
        frame = await self._recv(request_id)
        if not isinstance(frame, bytes):
            await self._end()
            raise MatteServerError("protocol_error", "Expected the alpha PNG as a binary frame.")
        return frame

    async def _expect(self, kind: type[M], request_id: str | None = None, *, handshake: bool = False) -> M:
        while True:
            frame = await self._recv(request_id)
            if isinstance(frame, bytes):
                await self._end()
                raise MatteServerError("protocol_error", "Got a binary frame where a JSON message was due.")
            message = _SERVER_MESSAGE.validate_json(frame)
            if isinstance(message, kind):
                return message
            if isinstance(message, ErrorMessage):
                close_code = None
                if handshake and message.error.code in FATAL_WS_CODES:  # the server closes next: learn how
                    try:
                        await asyncio.wait_for(self._ws.recv(), 5)
                    except ConnectionClosed as exc:
                        close_code = exc.rcvd.code if exc.rcvd else None
                    except TimeoutError:
                        pass
                raise _ws_error(message, close_code)

    async def round(
        self,
        prompts: Sequence[PromptInput],
        model: ModelName | None = None,
        request_id: str | None = None,
    ) -> tuple[ResultMessage, np.ndarray]:
        """Run one round with the new ``prompts``; returns the result and its alpha (H, W) uint8
        (``request_id`` as in ``RoundStream.round``)."""
        request_id = request_id or uuid.uuid4().hex
        await self._send(_round_message(prompts, model, request_id))
        result = await self._expect(ResultMessage, request_id)
        return result, _decode_png(await self._receive_png(request_id))

    async def undo(self) -> tuple[UndoneMessage, np.ndarray | None]:
        """Drop the last round; returns the answer and the alpha of the round now current (None at 0)."""
        await self._send(json.dumps({"type": "undo"}))
        undone = await self._expect(UndoneMessage)
        alpha = _decode_png(await self._receive_png()) if undone.round > 0 else None
        return undone, alpha

    async def ping(self) -> None:
        """Check the socket answers (a ``pong``)."""
        await self._send(json.dumps({"type": "ping"}))
        await self._expect(PongMessage)


class AsyncMatteClient(_Base):
    """Asynchronous client: ``async with AsyncMatteClient(url, api_key=...) as client: ...``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncMatteClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    async def _request(
        self, method: str, path: str, request_id: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        try:
            return _checked(await self._http.request(method, path, **kwargs), request_id)
        except httpx.TransportError as exc:
            raise _transport_error(exc, self.base_url, request_id) from exc

    async def models(self) -> ModelsResponse:
        """The pipelines the server offers, their readiness and training status."""
        return ModelsResponse.model_validate_json((await self._request("GET", "v1/models")).content)

    async def create_session(self, image: ImageInput, model: ModelName = "auto") -> SessionCreated:
        """Upload ``image`` and start a session (the model's image features are computed now)."""
        response = await self._request(
            "POST", "v1/sessions", files={"image": _image_file(image)}, data={"model": model}
        )
        return SessionCreated.model_validate_json(response.content)

    async def run_round(
        self,
        sid: str,
        prompts: Sequence[PromptInput],
        model: ModelName | None = None,
        request_id: str | None = None,
    ) -> RoundResult:
        """Add ``prompts`` (this round's new marks) and compute the next round over HTTP
        (``request_id`` and the one retry of a lost answer as in ``MatteClient.run_round``)."""
        body = _round_body(prompts, model, request_id)
        path = _session_path(sid, "rounds")
        try:
            response = await self._request("POST", path, body["request_id"], json=body)
        except MatteServerError as exc:
            if exc.code != "outcome_unknown":
                raise
            response = await self._request("POST", path, body["request_id"], json=body)
        return RoundResult.model_validate_json(response.content)

    async def session(self, sid: str) -> SessionInfo:
        """The session and its rounds with their prompts."""
        return SessionInfo.model_validate_json((await self._request("GET", _session_path(sid))).content)

    async def alpha(self, sid: str, n: int, as_array: bool = True) -> np.ndarray | bytes:
        """Round ``n``'s alpha matte: (H, W) uint8 array, or the PNG bytes with ``as_array=False``."""
        response = await self._request("GET", _session_path(sid, "rounds", str(n), "alpha.png"))
        return _decode_png(response.content) if as_array else response.content

    async def cutout(self, sid: str, n: int, as_array: bool = True) -> np.ndarray | bytes:
        """Round ``n``'s RGBA cut-out: (H, W, 4) uint8 array, or the PNG bytes."""
        response = await self._request("GET", _session_path(sid, "rounds", str(n), "cutout.png"))
        return _decode_png(response.content) if as_array else response.content

    async def undo(self, sid: str) -> UndoResult:
        """Drop the last round of the session."""
        response = await self._request("POST", _session_path(sid, "undo"))
        return UndoResult.model_validate_json(response.content)

    async def delete(self, sid: str) -> None:
        """Delete the session and all its data."""
        await self._request("DELETE", _session_path(sid))

    async def matte(
        self,
        image: ImageInput,
        prompts: Sequence[PromptInput],
        output: Literal["alpha", "cutout"] = "cutout",
        model: ModelName = "auto",
    ) -> bytes:
        """One-shot matting without a session: the alpha (grayscale) or cut-out (RGBA) PNG bytes."""
        response = await self._request(
            "POST",
            "v1/matte",
            files={"image": _image_file(image)},
            data={"prompts": json.dumps(_prompts_json(prompts)), "output": output, "model": model},
        )
        return response.content

    async def instances(self, image: ImageInput, min_score: float | None = None) -> InstancesResponse:
        """Every human instance in ``image``, each with its own alpha matte (automatic, no prompts);
        ``min_score`` the least "is human" score kept (the server's default when None)."""
        response = await self._request(
            "POST", "v1/instances", files={"image": _image_file(image)}, data=_score_field(min_score)
        )
        return InstancesResponse.model_validate_json(response.content)

    @asynccontextmanager
    async def stream(self, sid: str) -> AsyncIterator[AsyncRoundStream]:
        """Open the session's WebSocket; yields an ``AsyncRoundStream`` once the server is ready."""
        if self._http.is_closed:
            raise RuntimeError("Cannot open a stream, as the client has been closed.")
        url = self._ws_target(sid)
        try:
            connection = await async_connect(
                url,
                additional_headers=self._headers,
                max_size=None,
                open_timeout=self.timeout,
                close_timeout=5,
            )
        except InvalidStatus as exc:
            raise _ws_refused(exc) from exc
        except (OSError, TimeoutError, WebSocketException) as exc:  # refused, no server, not a WebSocket
            raise _unreachable(exc, url) from exc
        async with connection:
            yield await AsyncRoundStream(connection, self.timeout)._start()


def instance_alpha(instance: InstanceMatte) -> np.ndarray:
    """Decode one instance's ``alpha_png_base64`` (from ``instances()``) to an (H, W) uint8 array."""
    return _decode_png(base64.b64decode(instance.alpha_png_base64))
