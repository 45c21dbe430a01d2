"""The ``classical`` pipeline: the weight-free engine of ``service.engines.classical``."""

from __future__ import annotations

import anyio

from schemas.system import ModelInfo
from service.engines.classical import ClassicalParams, ColourModels, matte
from service.imaging import long_side_scale, resize_long_side
from service.pipelines.base import Pipeline, RoundInput, RoundOutput, Timer, kept_array


class ClassicalPipeline(Pipeline):
    name = "classical"
    description = (
        "Weight-free baseline: GrabCut from boxes, clicks and scribbles (previous round as "
        "initialisation), trimap band, closed-form matting (pymatting)."
    )
    prompt_kinds = frozenset({"click", "scribble", "box"})
    automatic = False
    multi_round = True
    focus_on_boxes = True
    # GrabCut takes the marks as hard labels and spreads them by colour: its matte already follows
    # them, and the unbounded correction measured better on it than the local one (README, marks).
    marks_reach = None

    def __init__(self, params: ClassicalParams, limiter: anyio.CapacityLimiter) -> None:
        self.params = params
        self.limiter = limiter

    async def compute_round(self, request: RoundInput) -> RoundOutput:
        timer = Timer()
        max_side = self.params.max_side
        work = None
        with timer.stage("prepare"):
            if long_side_scale(*request.image.shape[:2], max_side) < 1.0:
                work = await kept_array(
                    request.features,
                    f"classical_work/{max_side}",
                    lambda: resize_long_side(request.image, max_side)[0],
                )
        with timer.stage("matting"):
            result = await anyio.to_thread.run_sync(
                lambda: matte(
                    request.image,
                    request.prompts,
                    new_prompts=request.new_prompts,
                    previous_alpha=request.previous_alpha,
                    previous_models=ColourModels.from_bytes(request.previous_state),
                    params=self.params,
                    work=work,
                ),
                limiter=self.limiter,
            )
        state = result.models.to_bytes() if result.models is not None else None
        return RoundOutput(alpha=result.alpha, score=None, state=state, timings_ms=timer.ms)

    async def info(self) -> ModelInfo:
        return ModelInfo(
            name="classical",
            description=self.description,
            backend="none",
            ready=True,
            trained=True,
            prompt_kinds=sorted(self.prompt_kinds),
            automatic=self.automatic,
            multi_round=self.multi_round,
            networks=[],
        )
