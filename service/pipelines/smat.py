"""The ``smat`` pipeline: SMat, automatic or prompted matting with one model.

Per session, once: the ViT's patch tokens and class token (cached). Per round: the prompt
mask from the foreground marks so far (boxes, clicks as squares, scribbles as strokes;
``models.prompting``) — empty means automatic matting, which uses the class token — and
the light decoder. SMat has no multi-round support: marks of all rounds are aggregated.

With ``MATTESERVE_SMAT_NETWORKS=official`` it runs the authors' released SMat (imported with
``matteserve import-checkpoint smat``, exported at native resolution) under the official
input contract (``models.smat.prepare_smat``): the photo at its own resolution (long side capped
at ``MATTESERVE_OFFICIAL_MAX_SIDE``), normalised, zero-padded by the official multiple-of-14
rule, the prompt rasterised at that resolution (41-px click squares), and the whole photo
rather than the boxes' region.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import cv2
import numpy as np

from models.official.contract import capped_size
from models.prompting import Letterbox, smat_prompt_mask
from models.registry import config_for
from models.smat import prepare_smat
from service.backends import InferenceBackend
from service.engines.band_refinement import BandRefinement, photo_matte
from service.pipelines.base import FeatureCache, RoundInput, RoundOutput, Timer
from service.pipelines.networks import NetworkPipeline, frame_guide, stability_score

ENCODER, DECODER = "smat_encoder", "smat_decoder"
OFFICIAL_ENCODER, OFFICIAL_DECODER = "smat_official_encoder", "smat_official_decoder"


class SMatPipeline(NetworkPipeline):
    name = "smat"
    description = "SMat: one ViT model for automatic (no prompt) and click/scribble/box-prompted matting."
    prompt_kinds = frozenset({"click", "scribble", "box"})
    automatic = True
    multi_round = False
    focus_on_boxes = True
    networks = (ENCODER, DECODER)

    def __init__(
        self,
        backend: InferenceBackend,
        limiter: anyio.CapacityLimiter,
        official: bool = False,
        official_max_side: int = 1280,
        refinement: BandRefinement | None = None,
    ) -> None:
        super().__init__(backend, refinement)
        self.limiter = limiter
        self.official = official
        self.official_max_side = official_max_side
        if official:
            self.networks = (OFFICIAL_ENCODER, OFFICIAL_DECODER)
            self.focus_on_boxes = False
            self.description = (
                "SMat with the authors' released weights (imported), automatic or click/scribble/box-"
                "prompted, at the photo's resolution."
            )

    async def prepare(self, image: np.ndarray, features: FeatureCache) -> dict[str, float]:
        timer = Timer()
        with timer.stage("smat_encoder"):
            if self.official:
                framed, _, _ = await self._official_inputs(image, [])
                await self.cached(features, OFFICIAL_ENCODER, framed)
            else:
                box = Letterbox(*image.shape[:2], self.size)
                await self.cached(features, ENCODER, await self.letterboxed(features, image, box))
        return timer.ms

    async def _official_inputs(
        self, photo: np.ndarray, prompts: list
    ) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """The official contract at the capped working size: normalised padded image [3, Hp, Wp],
        the padded prompt mask [1, Hp, Wp] of ``prompts``, and the crop back to the photo's part."""
        height, width = photo.shape[:2]
        h, w = capped_size(height, width, self.official_max_side)
        patch = config_for("smat", self.backend.network(OFFICIAL_ENCODER).preset).patch_size

        def prepare() -> tuple[np.ndarray, np.ndarray]:
            small = photo if (h, w) == (height, width) else cv2.resize(photo, (w, h))
            frame = Letterbox(height, width, max(h, w))  # the photo at the working scale, top-left
            mask = smat_prompt_mask(prompts, frame, grid_stride=patch)[0, :h, :w]
            image, prompt = prepare_smat(small, mask, patch)
            return image[0].numpy(), prompt[0].numpy()

        image, prompt = await anyio.to_thread.run_sync(prepare, limiter=self.limiter)
        return image, prompt, lambda plane: plane[:h, :w]

    async def _round_inputs(
        self, request: RoundInput
    ) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray], np.ndarray | None]:
        """(image, prompt mask, crop of an output plane to the photo's part, the upsampling's guide
        or None) for this round."""
        if self.official:
            return (*await self._official_inputs(request.image, request.prompts), None)
        box = Letterbox(*request.image.shape[:2], self.size)
        stride = config_for("smat", self.backend.network(ENCODER).preset).patch_size
        image = await self.letterboxed(request.features, request.image, box)
        prompt = smat_prompt_mask(request.prompts, box, grid_stride=stride)
        return image, prompt, box.crop, frame_guide(image, box)

    async def compute_round(self, request: RoundInput) -> RoundOutput:
        timer = Timer()
        encoder, decoder = self.networks
        with timer.stage("prepare"):
            image, prompt, crop, guide = await self._round_inputs(request)
        with timer.stage("smat_encoder"):
            encoded = await self.cached(request.features, encoder, image)
        with timer.stage("smat_decoder"):
            outputs = await self.run(
                decoder,
                outputs=("alpha",),
                image=image,
                patch_tokens=encoded["patch_tokens"],
                class_token=encoded["class_token"],
                prompt_mask=prompt,
            )
        with timer.stage("upsample"):
            alpha = await anyio.to_thread.run_sync(
                lambda: photo_matte(crop(outputs["alpha"][0]), request.image, self.refinement, guide),
                limiter=self.limiter,
            )
        return RoundOutput(alpha=alpha, score=stability_score(alpha), timings_ms=timer.ms)
