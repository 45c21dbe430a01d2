"""The ``semat`` pipeline: SEMat, box-prompted matting in one network call.

The box enters SEMat's patch embedding (prompt enhancement), so nothing about the image can
be computed before the box is known: each round runs the whole network. SEMat has no
multi-round support: the union of the boxes given so far is the prompt.
"""

from __future__ import annotations

import anyio

from models.prompting import Letterbox, semat_box
from service.backends import InferenceBackend
from service.engines.upsampling import upsample_alpha
from service.errors import UnsupportedPrompt
from service.pipelines.base import RoundInput, RoundOutput, Timer
from service.pipelines.networks import NetworkPipeline, stability_score


class SEMatPipeline(NetworkPipeline):
    name = "semat"
    description = (
        "SEMat: box-prompted matting on a SAM-style ViT with LoRA, matting tokens and a UNet decoder."
    )
    prompt_kinds = frozenset({"box"})
    automatic = False
    multi_round = False
    focus_on_boxes = True
    networks = ("semat",)

    def __init__(self, backend: InferenceBackend, limiter: anyio.CapacityLimiter) -> None:
        super().__init__(backend)
        self.limiter = limiter

    async def compute_round(self, request: RoundInput) -> RoundOutput:
        timer = Timer()
        box = Letterbox(*request.image.shape[:2], self.size)
        prompt = semat_box(request.prompts, box)
        if prompt is None:
            raise UnsupportedPrompt("Model 'semat' needs a box.", code="prompt_required")
        with timer.stage("prepare"):
            image = box.image(request.image)
        with timer.stage("semat"):
            outputs = await self.run("semat", image=image, box=prompt)
        with timer.stage("upsample"):
            alpha = await anyio.to_thread.run_sync(
                lambda: upsample_alpha(box.crop(outputs["alpha"][0]), request.image), limiter=self.limiter
            )
        return RoundOutput(alpha=alpha, score=stability_score(alpha), timings_ms=timer.ms)
