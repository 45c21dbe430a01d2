"""The ``semat`` pipeline: SEMat, box-prompted matting in one network call.

The box enters SEMat's patch embedding (prompt enhancement), so nothing about the image can
be computed before the box is known: each round runs the whole network. SEMat has no
multi-round support: the union of the boxes given so far is the prompt.

When the repository's ``semat`` holds the authors' weights (``matteserve import-checkpoint semat``
then ``export --weights``; its config says ``origin: official``), the pipeline uses the official
input contract (``models.semat.contract``: bilinear resize to the 1024 frame, box corners rounded
and clipped as ``demo.py`` does) on the whole photo instead of the boxes' region.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import numpy as np

from models.prompting import Letterbox, box_union, semat_box
from models.semat.contract import semat_frame
from service.backends import InferenceBackend
from service.engines.band_refinement import BandRefinement, photo_matte
from service.errors import UnsupportedPrompt
from service.pipelines.base import RoundInput, RoundOutput, Timer
from service.pipelines.networks import NetworkPipeline, frame_guide, stability_score


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

    def __init__(
        self,
        backend: InferenceBackend,
        limiter: anyio.CapacityLimiter,
        refinement: BandRefinement | None = None,
    ) -> None:
        super().__init__(backend, refinement)
        self.limiter = limiter
        network = backend.network("semat")
        self.official = network is not None and network.origin == "official"
        if self.official:
            self.focus_on_boxes = False
            self.description = "SEMat with the authors' released weights (imported): box-prompted matting."

    async def _round_inputs(
        self, request: RoundInput
    ) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray], np.ndarray | None]:
        """(framed image [3,S,S], box [4] in the frame, crop of an output plane to the photo's
        part, the upsampling's guide or None): demo.py's contract for the authors' weights, our
        letterbox (kept per session) for ours."""
        union = box_union(request.prompts)
        if union is None:
            raise UnsupportedPrompt("Model 'semat' needs a box.", code="prompt_required")
        if self.official:
            frame = await anyio.to_thread.run_sync(
                semat_frame, request.image, self.size, limiter=self.limiter
            )
            return frame.image, frame.box(*union), frame.crop, None
        box = Letterbox(*request.image.shape[:2], self.size)
        image = await self.letterboxed(request.features, request.image, box)
        return image, semat_box(request.prompts, box), box.crop, frame_guide(image, box)

    async def compute_round(self, request: RoundInput) -> RoundOutput:
        timer = Timer()
        with timer.stage("prepare"):
            image, prompt, crop, guide = await self._round_inputs(request)
        with timer.stage("semat"):
            outputs = await self.run("semat", outputs=("alpha",), image=image, box=prompt)
        with timer.stage("upsample"):
            alpha = await anyio.to_thread.run_sync(
                lambda: photo_matte(crop(outputs["alpha"][0]), request.image, self.refinement, guide),
                limiter=self.limiter,
            )
        return RoundOutput(alpha=alpha, score=stability_score(alpha), timings_ms=timer.ms)
