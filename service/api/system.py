"""Health, readiness, metrics and the model list."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from schemas.system import Health, ModelsResponse
from service.api.deps import Service, User

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(service: Service) -> Response:
    """Readiness: Redis answers and the inference backend is reachable."""
    checks = await service.readiness()
    ready = all(value == "ok" for value in checks.values())
    body = Health(status="ready" if ready else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    return Response(await request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/v1/models", response_model=ModelsResponse, tags=["models"])
async def models(user: User, service: Service) -> ModelsResponse:
    """The pipelines, the backend serving them, readiness, training status, and ``auto``'s choices."""
    return await service.models()
