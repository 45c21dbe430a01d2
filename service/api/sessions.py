"""Session routes: create, run rounds, inspect, fetch mattes and cut-outs, undo, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Response, UploadFile

from schemas.errors import ErrorResponse
from schemas.sessions import ModelName, RoundRequest, RoundResult, SessionCreated, SessionInfo, UndoResult
from service.api.deps import Service, User

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

ERRORS = {
    400: {"model": ErrorResponse, "description": "Bad input (image, prompts)."},
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."},
    404: {"model": ErrorResponse, "description": "Unknown, expired or another user's session."},
    413: {"model": ErrorResponse, "description": "Upload or image too large."},
    415: {"model": ErrorResponse, "description": "Not a PNG, JPEG or WebP image."},
    422: {"model": ErrorResponse, "description": "Request does not match the schema."},
    429: {"model": ErrorResponse, "description": "Rate limited."},
    503: {"model": ErrorResponse, "description": "Redis or the inference backend is unavailable."},
}
PNG = {200: {"content": {"image/png": {}}, "description": "PNG image."}}
SessionId = Annotated[str, Path(description="Session id from POST /v1/sessions.")]


@router.post("", response_model=SessionCreated, status_code=201, responses=ERRORS)
async def create_session(
    user: User,
    service: Service,
    image: Annotated[UploadFile, File(description="PNG, JPEG or WebP photo.")],
    model: Annotated[ModelName, Form()] = "auto",
) -> SessionCreated:
    """Upload a photo and start a session; the chosen model's image features are computed now."""
    return await service.create_session(user, await image.read(), model)


@router.post("/{session_id}/rounds", response_model=RoundResult, responses=ERRORS)
async def run_round(session_id: SessionId, body: RoundRequest, user: User, service: Service) -> RoundResult:
    """Add marks and compute the next round's matte (earlier rounds' marks stay in force)."""
    return await service.run_round(user, session_id, body)


@router.get("/{session_id}", response_model=SessionInfo, responses=ERRORS)
async def get_session(session_id: SessionId, user: User, service: Service) -> SessionInfo:
    """The session and every round so far, with its prompts."""
    return await service.session_info(user, session_id)


@router.get("/{session_id}/rounds/{n}/alpha.png", responses={**ERRORS, **PNG}, response_class=Response)
async def get_alpha(session_id: SessionId, n: int, user: User, service: Service) -> Response:
    """Round ``n``'s alpha matte: 8-bit grayscale PNG at the original size."""
    return Response(await service.alpha_png(user, session_id, n), media_type="image/png")


@router.get("/{session_id}/rounds/{n}/cutout.png", responses={**ERRORS, **PNG}, response_class=Response)
async def get_cutout(session_id: SessionId, n: int, user: User, service: Service) -> Response:
    """Round ``n``'s RGBA cut-out with estimated foreground colours."""
    return Response(await service.cutout_png(user, session_id, n), media_type="image/png")


@router.post("/{session_id}/undo", response_model=UndoResult, responses=ERRORS)
async def undo(session_id: SessionId, user: User, service: Service) -> UndoResult:
    """Drop the last round."""
    return await service.undo(user, session_id)


@router.delete("/{session_id}", status_code=204, responses=ERRORS, response_class=Response)
async def delete_session(session_id: SessionId, user: User, service: Service) -> Response:
    """Delete the session and all its data."""
    await service.delete_session(user, session_id)
    return Response(status_code=204)
