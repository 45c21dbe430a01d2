"""Building the pipelines this process serves from its settings."""

from __future__ import annotations

import anyio

from service.config import Settings
from service.engines.classical import ClassicalParams
from service.pipelines import PipelineRegistry
from service.pipelines.classical import ClassicalPipeline
from service.pipelines.routing import load_routes


async def build_registry(settings: Settings, limiter: anyio.CapacityLimiter) -> PipelineRegistry:
    """All pipelines with the configured backend, and the ``auto`` routing table."""
    pipelines = [ClassicalPipeline(ClassicalParams(max_side=settings.classical_max_side), limiter)]
    routes = load_routes(settings.auto_routes, settings.model_repository / "auto_routes.json")
    return PipelineRegistry(pipelines, routes)


async def close_registry(registry: PipelineRegistry) -> None:
    """Release backend connections."""
