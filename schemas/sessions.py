"""Requests and responses of the session and round routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.prompts import Prompt

ModelName = Literal["auto", "dfimat", "semat", "smat", "classical"]
"""What a client may ask for; ``auto`` picks the pipeline that measures best for the prompts."""

PipelineName = Literal["dfimat", "semat", "smat", "classical"]
"""The pipeline that actually ran a round (``auto`` resolved)."""

MAX_REQUEST_ID_CHARS = 128


class SessionCreated(BaseModel):
    """Answer to ``POST /v1/sessions``."""

    session_id: str
    width: int
    height: int
    model: ModelName
    expires_at: datetime
    timings_ms: dict[str, float] = Field(default_factory=dict)


class RoundRequest(BaseModel):
    """Body of ``POST /v1/sessions/{id}/rounds``: the marks this round adds.

    Earlier rounds' marks stay in force. ``request_id`` makes a retry safe: a round whose
    ``request_id`` was already applied is answered from the stored result, not run again.
    """

    model_config = ConfigDict(extra="forbid")

    prompts: list[Prompt] = Field(default_factory=list)
    model: ModelName | None = None
    request_id: str | None = Field(default=None, min_length=1, max_length=MAX_REQUEST_ID_CHARS)


class RoundResult(BaseModel):
    """Answer to a round: where its alpha matte and cut-out can be fetched."""

    session_id: str
    round: int
    model: PipelineName
    score: float | None = Field(
        description="The engine's confidence that the matte covers the intended target, in [0, 1]; "
        "null for engines that have none (classical)."
    )
    timings_ms: dict[str, float]
    alpha_url: str
    cutout_url: str
    width: int
    height: int


class RoundInfo(BaseModel):
    """One applied round, as ``GET /v1/sessions/{id}`` lists it."""

    round: int
    model: PipelineName
    prompts: list[Prompt]
    score: float | None
    timings_ms: dict[str, float]
    created_at: datetime
    request_id: str | None = None
    alpha_url: str
    cutout_url: str


class SessionInfo(BaseModel):
    """Answer to ``GET /v1/sessions/{id}``."""

    session_id: str
    width: int
    height: int
    model: ModelName
    created_at: datetime
    expires_at: datetime
    rounds: list[RoundInfo]


class UndoResult(BaseModel):
    """Answer to ``POST /v1/sessions/{id}/undo``: the number of rounds left."""

    session_id: str
    round: int
    dropped: int
