"""The ``smat`` pipeline: SMat, automatic or prompted matting with one model.

Per session, once: the ViT's patch tokens and class token (cached). Per round: the prompt
mask from the foreground marks so far (boxes, clicks as squares, scribbles as strokes;
``models.prompting``) — empty means automatic matting, which uses the class token — and
the light decoder. SMat has no multi-round support: marks of all rounds are aggregated.
"""

from __future__ import annotations

import anyio
import numpy as np

from models.prompting import Letterbox, smat_prompt_mask
from service.backends import InferenceBackend
from service.engines.upsampling import upsample_alpha
from service.pipelines.base import FeatureCache, RoundInput, RoundOutput, Timer
from service.pipelines.networks import NetworkPipeline, stability_score

ENCODER, DECODER = "smat_encoder", "smat_decoder"


class SMatPipeline(NetworkPipeline):
    name = "smat"
    description = "SMat: one ViT model for automatic (no prompt) and click/scribble/box-prompted matting."
    prompt_kinds = frozenset({"click", "scribble", "box"})
    automatic = True
    multi_round = False
    focus_on_boxes = True
    networks = (ENCODER, DECODER)

    def __init__(self, backend: InferenceBackend, limiter: anyio.CapacityLimiter) -> None:
        super().__init__(backend)
        self.limiter = limiter

    async def prepare(self, image: np.ndarray, features: FeatureCache) -> dict[str, float]:
        timer = Timer()
        with timer.stage("smat_encoder"):
            box = Letterbox(*image.shape[:2], self.size)
            await self.cached(features, ENCODER, box.image(image))
        return timer.ms

    async def compute_round(self, request: RoundInput) -> RoundOutput:
        timer = Timer()
        box = Letterbox(*request.image.shape[:2], self.size)
        with timer.stage("prepare"):
            image = box.image(request.image)
            prompt = smat_prompt_mask(request.prompts, box)
        with timer.stage("smat_encoder"):
            encoded = await self.cached(request.features, ENCODER, image)
        with timer.stage("smat_decoder"):
            outputs = await self.run(
                DECODER,
                image=image,
                patch_tokens=encoded["patch_tokens"],
                class_token=encoded["class_token"],
                prompt_mask=prompt,
            )
        with timer.stage("upsample"):
            alpha = await anyio.to_thread.run_sync(
                lambda: upsample_alpha(box.crop(outputs["alpha"][0]), request.image), limiter=self.limiter
            )
        return RoundOutput(alpha=alpha, score=stability_score(alpha), timings_ms=timer.ms)
