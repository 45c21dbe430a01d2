"""One-shot matting without a session."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Response, UploadFile
from pydantic import TypeAdapter, ValidationError

from schemas.prompts import Prompt
from schemas.sessions import ModelName
from schemas.system import InstancesResponse
from service.api.deps import Service, User
from service.api.json_input import parse_json
from service.api.sessions import ERRORS, PNG
from service.errors import SchemaError

router = APIRouter(prefix="/v1", tags=["one-shot"])
_PROMPTS = TypeAdapter(list[Prompt])


def parse_prompts_field(raw: str) -> list[Prompt]:
    """Parse the multipart ``prompts`` field (a JSON array of prompt objects)."""
    data = parse_json(raw, "'prompts'")
    try:
        return _PROMPTS.validate_python(data)
    except ValidationError as exc:
        raise SchemaError.from_validation("'prompts'", exc) from exc


@router.post("/instances", response_model=InstancesResponse, responses=ERRORS)
async def instances(
    user: User,
    service: Service,
    image: Annotated[UploadFile, File(description="PNG, JPEG or WebP photo.")],
    min_score: Annotated[
        float | None,
        Form(
            ge=0.0,
            le=1.0,
            description="Keep people whose 'is human' score is at least this (server default: "
            "MATTESERVE_INSTANCE_MIN_SCORE). Higher: fewer false detections, more people missed.",
        ),
    ] = None,
) -> InstancesResponse:
    """Automatic human instance matting: every person in the photo, each with its own alpha PNG."""
    return await service.instances(await image.read(), min_score)


@router.post("/matte", responses={**ERRORS, **PNG}, response_class=Response)
async def matte(
    user: User,
    service: Service,
    image: Annotated[UploadFile, File(description="PNG, JPEG or WebP photo.")],
    prompts: Annotated[str, Form(description='JSON array of prompts, e.g. [{"type":"box",...}].')] = "[]",
    output: Annotated[Literal["alpha", "cutout"], Form()] = "cutout",
    model: Annotated[ModelName, Form()] = "auto",
) -> Response:
    """Matte one photo in one request; returns the alpha (grayscale) or cut-out (RGBA) PNG."""
    parsed = parse_prompts_field(prompts)
    png, timings, used = await service.matte_once(await image.read(), parsed, model, output)
    headers = {
        "X-Matteserve-Model": used,
        "Server-Timing": ", ".join(f"{name};dur={ms:.1f}" for name, ms in timings.items()),
    }
    return Response(png, media_type="image/png", headers=headers)
