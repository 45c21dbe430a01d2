"""Errors the service raises on purpose, each with an HTTP status and a stable code.

Routes and pipelines raise these; the app turns them into the wire error body
(``schemas.errors.ErrorResponse``) and, on the WebSocket, into ``{"type": "error"}`` messages.
"""

from __future__ import annotations

from pydantic import ValidationError


class ApiError(Exception):
    """An error with a status, a snake_case ``code`` and a message meant for the user."""

    status: int = 400
    code: str = "bad_request"

    retry_after_s: int | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries (``Retry-After`` where waiting helps)."""
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else {}


class BadInput(ApiError):
    status = 400
    code = "bad_request"


class InvalidPrompt(ApiError):
    status = 400
    code = "invalid_prompt"


class UnsupportedPrompt(ApiError):
    status = 400
    code = "unsupported_prompt"


class SchemaError(ApiError):
    status = 422
    code = "invalid_request"

    @classmethod
    def from_validation(cls, what: str, exc: ValidationError) -> SchemaError:
        """Describe the first problem pydantic found in ``what`` (e.g. "'prompts'")."""
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return cls(f"{what} does not match the schema: {where}: {first['msg']}.")


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="matteserve"'}


class SessionNotFound(ApiError):
    status = 404
    code = "session_not_found"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"No session {session_id!r} exists for this user (it may have expired or been deleted)."
        )


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class TooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class NotAnImage(ApiError):
    status = 415
    code = "unsupported_media_type"


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"
    retry_after_s = 60


class Unavailable(ApiError):
    status = 503
    code = "service_unavailable"
    retry_after_s = 2


class BackendUnavailable(Unavailable):
    code = "backend_unavailable"


class StoreUnavailable(Unavailable):
    """Redis could not be reached. On a round this means the round was **not applied**;
    ``RoundOutcomeUnknown`` is raised instead once the commit had been sent."""

    code = "store_unavailable"


class RoundOutcomeUnknown(StoreUnavailable):
    """Redis failed while the round's commit was in flight: it may or may not have been
    applied. Retrying with the same ``request_id`` returns the round if it was applied and
    applies it once if it was not."""

    code = "round_outcome_unknown"


class ModelNotReady(Unavailable):
    code = "model_not_ready"


class BackendFailed(ApiError):
    """The inference backend refused or failed a call for a reason waiting will not fix (an
    invalid request built by this service, an internal error of the server). The user gets a
    generic message; the backend's own message is logged with the network's name."""

    status = 500
    code = "backend_error"
