"""Building the pipelines this process serves from its settings."""

from __future__ import annotations

import logging

import anyio

from models.text import shared_encoder
from service.backends import create_backend
from service.config import Settings
from service.engines.band_refinement import BandRefinement
from service.engines.classical import ClassicalParams
from service.engines.geodesic import start_compiling
from service.pipelines import Pipeline, PipelineRegistry
from service.pipelines.classical import ClassicalPipeline
from service.pipelines.dfimat import DFIMatPipeline
from service.pipelines.instances import InstanceMatting
from service.pipelines.routing import load_routes
from service.pipelines.semat import SEMatPipeline
from service.pipelines.smat import SMatPipeline

log = logging.getLogger(__name__)


async def build_registry(
    settings: Settings, limiter: anyio.CapacityLimiter, *, text_now: bool = False
) -> PipelineRegistry:
    """All pipelines on the configured backend, instance matting, and the ``auto`` routing table.

    A server loads the text encoder in the background (its rounds with text get 503
    ``model_not_ready`` meanwhile); ``text_now`` loads it before returning, for one-off work
    (the command line's cut-outs and evaluations) that would otherwise race the load.
    The learned pipelines are registered whenever the model repository has networks, trained
    or not (``/v1/models`` reports which are untrained; ``auto`` never picks those)."""
    refinement = (
        BandRefinement(max_unknown=settings.native_refinement_max_pixels)
        if settings.native_refinement
        else None
    )
    pipelines: list[Pipeline] = [
        ClassicalPipeline(
            ClassicalParams(
                max_side=settings.classical_max_side,
                refinement=refinement,
                # The engine's corrective rounds skip the band the merge would throw away.
                incremental=settings.progressive_merge,
            ),
            limiter,
        )
    ]
    backend = create_backend(settings, limiter)
    await backend.start()
    instances = None
    text = None
    if backend.networks:
        text = shared_encoder()
        dfimat = DFIMatPipeline(
            backend,
            text,
            limiter,
            refiner=settings.dfimat_refiner,
            official_max_side=settings.official_max_side,
            refinement=refinement,
        )
        smat = SMatPipeline(
            backend,
            limiter,
            official=settings.smat_networks == "official",
            official_max_side=settings.official_max_side,
            refinement=refinement,
        )
        pipelines += [dfimat, SEMatPipeline(backend, limiter, refinement), smat]
        for pipeline in (dfimat, smat):  # the networks a setting chose (e.g. the authors' MGMatting)
            missing = [n for n in pipeline.networks if backend.network(n) is None]
            if missing:
                log.warning(
                    "%s: %s not in %s; its rounds answer 503 model_not_ready",
                    pipeline.name,
                    ", ".join(missing),
                    settings.model_repository,
                )
        instances = InstanceMatting(
            backend,
            limiter,
            min_score=settings.instance_min_score,
            official=settings.instance_matting == "instmatt_official",
            official_max_side=settings.official_max_side,
        )
        if dfimat.trained and text_now:
            try:
                await anyio.to_thread.run_sync(text.load)
            except Exception:  # the rounds that need it report it; the others run
                log.exception("the MiniLM text encoder could not be loaded")
        elif dfimat.trained:
            # MiniLM takes ~10 s to load: in the background, not in start-up nor in the first text round.
            text.start_loading()
    else:
        log.warning("no networks in %s: serving the classical engine only", settings.model_repository)
    for pipeline in pipelines:
        pipeline.progressive_merge = settings.progressive_merge
    start_compiling()  # every pipeline's corrective rounds honour the marks with it
    routes = load_routes(settings.auto_routes, settings.model_repository / "auto_routes.json")
    return PipelineRegistry(pipelines, routes, backend=backend, instances=instances, text=text)


async def close_registry(registry: PipelineRegistry) -> None:
    """Release backend connections."""
    if registry.backend is not None:
        await registry.backend.close()
