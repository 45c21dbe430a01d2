"""The ``dfimat`` pipeline: DFIMat's ISCN localises the target, MRN turns it into alpha.

The refiner is configurable (``MATTESERVE_DFIMAT_REFINER``): ``mrn`` (ours, at the export size
S) or ``mgmatting`` — MGMatting's released generator imported with ``matteserve
import-checkpoint``, run as its official code runs it: at the photo's resolution (long side
capped at ``MATTESERVE_OFFICIAL_MAX_SIDE``), ISCN's mask binarised at 128/255, reflect padding,
PRM in the graph.

Per session, once: the ISCN encoder's features of the letterboxed photo (cached with the
session in Redis, float16, compressed). Per round: every mark so far rasterised into ISCN's
prompt slots at S/4 (``models.prompting``), the latest text embedded with MiniLM, the CRM
conflict map of this round's marks against the previous round's mask, the ISCN decoder on
the cached features, MRN on the photo + the coarse mask, and the alpha mapped back to the
photo's size. The mask probability at S/4 is kept as the round's state (the next round's
previous mask).
"""

from __future__ import annotations

import anyio
import cv2
import numpy as np
import torch

from models.iscn import compute_conflict_map
from models.official.contract import capped_size, unpad
from models.official.mgmatting import prepare_mgmatting
from models.prompting import Letterbox, iscn_prompt_tensors
from models.text import TEXT_DIM, MiniLMEncoder
from schemas.prompts import TextPrompt
from service.backends import InferenceBackend
from service.engines.band_refinement import BandRefinement, photo_matte
from service.errors import ModelNotReady
from service.pipelines.base import FeatureCache, RoundInput, RoundOutput, Timer
from service.pipelines.networks import (
    NetworkPipeline,
    frame_guide,
    pack_arrays,
    stability_score,
    unpack_arrays,
)

ENCODER, DECODER, REFINER = "iscn_encoder", "iscn_decoder", "mrn"
REFINERS = ("mrn", "mgmatting")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class DFIMatPipeline(NetworkPipeline):
    name = "dfimat"
    description = (
        "DFIMat: ISCN (visual + text prompts, CRM conflict reasoning over rounds) localises the "
        "instance, MRN refines it into an alpha matte."
    )
    prompt_kinds = frozenset({"click", "scribble", "box", "text"})
    automatic = False
    multi_round = True
    focus_on_boxes = True
    networks = (ENCODER, DECODER, REFINER)

    def __init__(
        self,
        backend: InferenceBackend,
        text: MiniLMEncoder,
        limiter: anyio.CapacityLimiter,
        refiner: str = REFINER,
        official_max_side: int = 1280,
        refinement: BandRefinement | None = None,
    ) -> None:
        super().__init__(backend, refinement)
        if refiner not in REFINERS:
            raise ValueError(f"unknown dfimat refiner {refiner!r}; known: {', '.join(REFINERS)}")
        self.text = text
        self.limiter = limiter
        self.refiner = refiner
        self.official_max_side = official_max_side
        self.networks = (ENCODER, DECODER, refiner)
        if refiner == "mgmatting":
            self.description = (
                "DFIMat's ISCN (visual + text prompts, CRM conflict reasoning over rounds) localises the "
                "instance, MGMatting (imported official weights, native resolution) refines it."
            )

    async def prepare(self, image: np.ndarray, features: FeatureCache) -> dict[str, float]:
        timer = Timer()
        with timer.stage("iscn_encoder"):
            box = Letterbox(*image.shape[:2], self.size)
            await self.cached(features, ENCODER, await self.letterboxed(features, image, box))
        return timer.ms

    async def _embed(self, request: RoundInput) -> tuple[np.ndarray, np.ndarray]:
        texts = [p.text.strip() for p in request.prompts if isinstance(p, TextPrompt)]
        if not texts:
            return np.zeros(TEXT_DIM, np.float32), np.zeros(1, np.float32)
        status = self.text.status
        if status != "ok":
            raise ModelNotReady(
                "The text encoder is still loading (a few seconds after start-up); retry shortly."
                if status == "loading"
                else "The text encoder could not be loaded; the server log says why."
            )
        vector = await anyio.to_thread.run_sync(
            lambda: self.text.encode([texts[-1]])[0], limiter=self.limiter
        )
        return vector, np.ones(1, np.float32)

    async def localise(
        self, request: RoundInput, box: Letterbox, image: np.ndarray, timer: Timer
    ) -> np.ndarray:
        """ISCN's mask probability [S/4, S/4] for ``request`` on the letterboxed ``image``
        [3, S, S]: cached encoder features, every mark so far, text, the CRM conflict map."""
        with timer.stage("iscn_encoder"):
            encoded = await self.cached(request.features, ENCODER, image)
        with timer.stage("prompts"):
            maps, kinds = iscn_prompt_tensors(request.prompts, box)
            text, has_text = await self._embed(request)
            prev_mask, has_prev = self._previous(request, box)
            new_maps, new_kinds = iscn_prompt_tensors(request.new_prompts, box)
            conflict = compute_conflict_map(
                torch.from_numpy(prev_mask[None]),
                torch.from_numpy(new_maps[None]),
                torch.from_numpy(new_kinds[None]),
                torch.from_numpy(has_prev[None]),
            )[0].numpy()
        with timer.stage("iscn_decoder"):
            decoded = await self.run(
                DECODER,
                outputs=("mask_logits",),  # not the object queries' 16 instance masks
                features=encoded["features"],
                mask_features=encoded["mask_features"],
                prompt_maps=maps,
                prompt_kinds=kinds,
                text_embedding=text,
                has_text=has_text,
                conflict_map=conflict,
                prev_mask=prev_mask,
                has_prev=has_prev,
            )
        return _sigmoid(decoded["mask_logits"][0])

    async def compute_round(self, request: RoundInput) -> RoundOutput:
        timer = Timer()
        box = Letterbox(*request.image.shape[:2], self.size)
        with timer.stage("prepare"):
            image = await self.letterboxed(request.features, request.image, box)
        probability = await self.localise(request, box, image, timer)
        if self.refiner == "mgmatting":
            alpha = await self._mgmatting(request.image, box, probability, timer)
        else:
            coarse = cv2.resize(probability, (self.size, self.size), interpolation=cv2.INTER_LINEAR)[None]
            with timer.stage("mrn"):
                refined = await self.run(REFINER, image=image, mask=coarse)
            with timer.stage("upsample"):
                alpha = await anyio.to_thread.run_sync(
                    lambda: photo_matte(
                        box.crop(refined["alpha"][0]), request.image, self.refinement, frame_guide(image, box)
                    ),
                    limiter=self.limiter,
                )
        state = pack_arrays({"prev_mask": probability})
        return RoundOutput(alpha=alpha, score=stability_score(alpha), state=state, timings_ms=timer.ms)

    async def _mgmatting(
        self, photo: np.ndarray, box: Letterbox, probability: np.ndarray, timer: Timer
    ) -> np.ndarray:
        """MGMatting on the photo (long side capped) guided by ISCN's mask ``probability`` [S/4, S/4]
        -> alpha (H, W) for ``photo``."""
        height, width = photo.shape[:2]
        h, w = capped_size(height, width, self.official_max_side)

        def prepare() -> tuple[np.ndarray, np.ndarray]:
            small = photo if (h, w) == (height, width) else cv2.resize(photo, (w, h))
            mask = cv2.resize(box.crop(probability), (w, h), interpolation=cv2.INTER_LINEAR)
            mask_u8 = np.rint(np.clip(mask, 0.0, 1.0) * 255.0).astype(np.uint8)
            image, guidance = prepare_mgmatting(small, mask_u8)
            return image.numpy(), guidance.numpy()

        with timer.stage("prepare_mgmatting"):
            image, guidance = await anyio.to_thread.run_sync(prepare, limiter=self.limiter)
        with timer.stage("mgmatting"):
            refined = await self.backend.infer("mgmatting", {"image": image, "guidance": guidance})
        with timer.stage("upsample"):
            return await anyio.to_thread.run_sync(
                lambda: photo_matte(unpad(refined["alpha"][0, 0], (h, w)), photo, self.refinement),
                limiter=self.limiter,
            )

    def _previous(self, request: RoundInput, box: Letterbox) -> tuple[np.ndarray, np.ndarray]:
        """The previous round's mask probability at S/4: this pipeline's own state, else the
        previous matte (a round made by another pipeline), else none."""
        s4 = self.size // 4
        if request.previous_state is not None:
            try:
                state = unpack_arrays(request.previous_state)
            except (ValueError, OSError, EOFError):  # another pipeline's or region's state
                state = {}
            if "prev_mask" in state and state["prev_mask"].shape == (s4, s4):
                return state["prev_mask"][None], np.ones(1, np.float32)
        if request.previous_alpha is not None:
            return box.plane(request.previous_alpha, stride=4)[None], np.ones(1, np.float32)
        return np.zeros((1, s4, s4), np.float32), np.zeros(1, np.float32)
