"""Health, readiness, metrics and the model list."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from schemas.system import Health, ModelsResponse
from service.api.deps import Service, User
from service.errors import Unavailable

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(service: Service, scope: Literal["all", "local"] = "all") -> Response:
    """Readiness: Redis answers and the inference backend is reachable (``scope=all``), or
    only what this process itself needs, Redis (``scope=local``: the orchestrator's probe, so
    a Triton outage is answered with 503 JSON per request instead of removing every API pod
    and the classical engine with it). The body always lists every check."""
    checks = await service.readiness()
    counted = checks if scope == "all" else {k: v for k, v in checks.items() if k == "redis"}
    ready = all(value == "ok" for value in counted.values())
    body = Health(status="ready" if ready else "not_ready", checks=checks)
    if ready:
        return JSONResponse(body.model_dump())
    headers = {"Retry-After": str(Unavailable.retry_after_s)}  # as every other 503
    return JSONResponse(body.model_dump(), status_code=503, headers=headers)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    return Response(await request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/v1/models", response_model=ModelsResponse, tags=["models"])
async def models(user: User, service: Service) -> ModelsResponse:
    """The pipelines, the backend serving them, readiness, training status, and ``auto``'s choices."""
    return await service.models()
