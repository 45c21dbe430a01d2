"""Messages on ``WS /v1/sessions/{id}/ws``.

Client -> server: ``round``, ``undo``, ``ping``. Server -> client: ``ready`` on connect,
``result`` followed by the alpha PNG as one binary frame, ``undone`` (followed by the
alpha PNG of the round now current, when there is one), ``pong``, and ``error`` (the
socket stays open unless the error is fatal: bad credentials or unknown session).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.errors import ErrorDetail
from schemas.prompts import Prompt
from schemas.sessions import MAX_REQUEST_ID_CHARS, ModelName, RoundResult


class RoundMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["round"]
    prompts: list[Prompt] = Field(default_factory=list)
    model: ModelName | None = None
    request_id: str | None = Field(default=None, min_length=1, max_length=MAX_REQUEST_ID_CHARS)


class UndoMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["undo"]


class PingMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["ping"]


ClientMessage = Annotated[RoundMessage | UndoMessage | PingMessage, Field(discriminator="type")]


class ReadyMessage(BaseModel):
    type: Literal["ready"] = "ready"
    session_id: str
    rounds: int
    width: int
    height: int


class ResultMessage(RoundResult):
    type: Literal["result"] = "result"
    request_id: str | None = None


class UndoneMessage(BaseModel):
    type: Literal["undone"] = "undone"
    session_id: str
    round: int
    dropped: int


class PongMessage(BaseModel):
    type: Literal["pong"] = "pong"


class ErrorMessage(BaseModel):
    type: Literal["error"] = "error"
    error: ErrorDetail
    request_id: str | None = None


ServerMessage = Annotated[
    ReadyMessage | ResultMessage | UndoneMessage | PongMessage | ErrorMessage,
    Field(discriminator="type"),
]
