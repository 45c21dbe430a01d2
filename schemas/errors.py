"""The error body every failing route returns."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    """A machine-readable ``code`` (snake_case) and a human sentence."""

    code: str = Field(examples=["session_not_found"])
    message: str = Field(examples=["No session with this id exists for this user (it may have expired)."])
    retry_after_s: int | None = Field(
        None,
        description="Seconds to wait before retrying (WebSocket errors; HTTP sends Retry-After).",
        examples=[2],
    )


class ErrorResponse(BaseModel):
    """``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorDetail
