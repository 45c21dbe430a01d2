"""Pydantic models of matteserve's wire protocol (v1). No I/O lives here."""

from schemas.errors import ErrorDetail, ErrorResponse
from schemas.prompts import BoxPrompt, ClickPrompt, Prompt, PromptKind, ScribblePrompt, TextPrompt
from schemas.sessions import (
    ModelName,
    PipelineName,
    RoundInfo,
    RoundRequest,
    RoundResult,
    SessionCreated,
    SessionInfo,
    UndoResult,
)
from schemas.system import (
    Health,
    InstanceMatte,
    InstancesResponse,
    ModelInfo,
    ModelsResponse,
    NetworkStatus,
)
from schemas.websocket import (
    ClientMessage,
    ErrorMessage,
    PingMessage,
    PongMessage,
    ReadyMessage,
    ResultMessage,
    RoundMessage,
    ServerMessage,
    UndoMessage,
    UndoneMessage,
)

__all__ = [
    "BoxPrompt",
    "ClickPrompt",
    "ClientMessage",
    "ErrorDetail",
    "ErrorMessage",
    "ErrorResponse",
    "Health",
    "InstanceMatte",
    "InstancesResponse",
    "ModelInfo",
    "ModelName",
    "ModelsResponse",
    "NetworkStatus",
    "PingMessage",
    "PipelineName",
    "PongMessage",
    "Prompt",
    "PromptKind",
    "ReadyMessage",
    "ResultMessage",
    "RoundInfo",
    "RoundMessage",
    "RoundRequest",
    "RoundResult",
    "ScribblePrompt",
    "ServerMessage",
    "SessionCreated",
    "SessionInfo",
    "TextPrompt",
    "UndoMessage",
    "UndoResult",
    "UndoneMessage",
]
