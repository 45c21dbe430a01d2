"""Automatic human instance matting (``POST /v1/instances``): ISCN with no prompt, then InstMatt.

1. The ISCN encoder + decoder with no prompt: the object queries give up to 16 instance
   masks at S/4 with an "is human" probability each.
2. Instances scoring at least ``min_score`` are kept, best first; a mask overlapping an
   already kept one (IoU above ``max_overlap``) is a duplicate and dropped; tiny masks are
   dropped; at most InstMatt's K slots remain.
3. InstMatt on the photo + the kept masks (tri-mask guidance and multi-instance refinement
   happen in the network), one alpha per instance, mapped back to the photo's size.

With ``MATTESERVE_INSTANCE_MATTING=instmatt_official`` step 3 is InstMatt's released network
(imported with ``matteserve import-checkpoint``) run as its ``infer.py`` runs it: the photo at
its own resolution (long side capped at ``MATTESERVE_OFFICIAL_MAX_SIDE``, 1280 as ``infer.py``),
the generator once per instance, PRM in the graph, then the windowed multi-instance refiner
(window choice in Python, ``models.official.instmatt.refine_instances``; each window one call
of the exported ``instmatt_refiner``).
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import cv2
import numpy as np
import torch
from scipy.special import expit

from models.io_spec import model_io
from models.official.contract import capped_size
from models.official.instmatt import instmatt_alphas, prepare_instmatt, refine_instances
from models.prompting import Letterbox
from models.text import TEXT_DIM
from schemas.system import InstanceMattingInfo
from service.backends import InferenceBackend
from service.engines.upsampling import upsample_alpha
from service.pipelines.base import FeatureCache, Timer
from service.pipelines.networks import NetworkRunner

ENCODER, DECODER, MATTING = "iscn_encoder", "iscn_decoder", "instmatt"
OFFICIAL_GENERATOR, OFFICIAL_REFINER = "instmatt_official", "instmatt_refiner"
OFFICIAL_SLOTS = 8  # instances matted by the official network (its refiner's 320-px window regime)
MIN_AREA_FRACTION = 0.001


@dataclass
class Instance:
    """One human: ``alpha`` (H, W) float32, ISCN's ``score``, and the box of alpha > 0.02."""

    alpha: np.ndarray
    score: float
    box: tuple[int, int, int, int]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return expit(x)  # no overflow warning for the -20 logits outside the photo


def select_instances(
    logits: np.ndarray, scores: np.ndarray, *, min_score: float, max_overlap: float, limit: int
) -> list[int]:
    """Indices of the object queries to keep: score >= ``min_score``, best first, no mask
    overlapping a kept one by IoU > ``max_overlap``, not tiny, at most ``limit``."""
    masks = _sigmoid(logits) > 0.5
    min_area = max(4, int(MIN_AREA_FRACTION * masks[0].size))
    kept: list[int] = []
    for index in np.argsort(-scores):
        if scores[index] < min_score or len(kept) == limit:
            break
        mask = masks[index]
        area = int(mask.sum())
        if area < min_area:
            continue
        duplicate = any((mask & masks[k]).sum() / max(1, (mask | masks[k]).sum()) > max_overlap for k in kept)
        if not duplicate:
            kept.append(int(index))
    return kept


class InstanceMatting(NetworkRunner):
    """Every human in a photo, each with its own alpha matte."""

    name = "instmatt"
    description = (
        "Human instance matting: ISCN's object queries find the people, InstMatt mattes them together."
    )
    networks = (ENCODER, DECODER, MATTING)

    def __init__(
        self,
        backend: InferenceBackend,
        limiter: anyio.CapacityLimiter,
        min_score: float = 0.5,
        max_overlap: float = 0.5,
        official: bool = False,
        official_max_side: int = 1280,
    ) -> None:
        super().__init__(backend)
        self.limiter = limiter
        self.min_score = min_score
        self.max_overlap = max_overlap
        self.official = official
        self.official_max_side = official_max_side
        if official:
            self.networks = (ENCODER, DECODER, OFFICIAL_GENERATOR, OFFICIAL_REFINER)
            self.description = (
                "Human instance matting: ISCN's object queries find the people, InstMatt's released "
                "network (imported official weights) mattes them together."
            )

    async def matte(
        self, image: np.ndarray, min_score: float | None = None
    ) -> tuple[list[Instance], dict[str, float]]:
        """Find and matte every human in ``image`` (H, W, 3 uint8) whose "is human" score is at
        least ``min_score`` (the pipeline's own ``min_score`` when None)."""
        timer = Timer()
        box = Letterbox(*image.shape[:2], self.size)
        if self.official:
            slots = OFFICIAL_SLOTS
        else:
            slots = model_io(MATTING, self.size, self.backend.network(MATTING).preset).input("valid").dims[0]
        with timer.stage("prepare"):
            framed = box.image(image)
        with timer.stage("iscn_encoder"):
            encoded = await self.cached(FeatureCache.in_memory(), ENCODER, framed)
        decoder_io = model_io(DECODER, self.size, self.backend.network(DECODER).preset)
        s4 = self.size // 4
        with timer.stage("iscn_decoder"):
            decoded = await self.run(
                DECODER,
                outputs=("instance_logits", "instance_scores"),
                features=encoded["features"],
                mask_features=encoded["mask_features"],
                prompt_maps=np.zeros(decoder_io.input("prompt_maps").dims, np.float32),
                prompt_kinds=np.zeros(decoder_io.input("prompt_kinds").dims, np.int64),
                text_embedding=np.zeros(TEXT_DIM, np.float32),
                has_text=np.zeros(1, np.float32),
                conflict_map=np.zeros((1, s4, s4), np.float32),
                prev_mask=np.zeros((1, s4, s4), np.float32),
                has_prev=np.zeros(1, np.float32),
            )
        logits, scores = decoded["instance_logits"], decoded["instance_scores"]
        # Only the part of the frame that shows the photo may hold people.
        valid_area = np.zeros((s4, s4), bool)
        inner = box.crop(valid_area)
        inner[...] = True
        logits = np.where(valid_area[None], logits, -20.0)
        kept = select_instances(
            logits,
            scores,
            min_score=self.min_score if min_score is None else min_score,
            max_overlap=self.max_overlap,
            limit=slots,
        )
        if not kept:
            return [], timer.ms
        if self.official:
            photo_alphas = await self._official(image, box, [logits[i] for i in kept], timer)
        else:
            photo_alphas = await self._ours(framed, box, [logits[i] for i in kept], slots, timer)
        with timer.stage("upsample"):
            instances = await anyio.to_thread.run_sync(
                lambda: [
                    self._instance(alpha, float(scores[index]), image)
                    for alpha, index in zip(photo_alphas, kept, strict=True)
                ],
                limiter=self.limiter,
            )
        return [i for i in instances if i is not None], timer.ms

    async def _ours(
        self, framed: np.ndarray, box: Letterbox, logits: list[np.ndarray], slots: int, timer: Timer
    ) -> list[np.ndarray]:
        """Our InstMatt on the letterboxed photo and the instance masks (ISCN logits at S/4,
        binarised at 0.5) in its fixed slots -> one alpha per instance over the photo's part of
        the frame."""
        masks = np.zeros((slots, self.size, self.size), np.float32)
        valid = np.zeros(slots, np.float32)
        for slot, logit in enumerate(logits):
            up = cv2.resize(_sigmoid(logit), (self.size, self.size), interpolation=cv2.INTER_LINEAR)
            masks[slot] = (up > 0.5).astype(np.float32)
            valid[slot] = 1.0
        with timer.stage("instmatt"):
            alphas = (await self.run(MATTING, image=framed, masks=masks, valid=valid))["alpha"]
        return [box.crop(alphas[slot]) for slot in range(len(logits))]

    async def _official(
        self, image: np.ndarray, box: Letterbox, logits: list[np.ndarray], timer: Timer
    ) -> np.ndarray:
        """InstMatt's released network on the photo (long side capped) and the instance masks
        (ISCN logits at S/4, binarised at 0.5) -> alphas ``[K, h, w]`` float32 in [0, 1] at the
        capped size."""
        height, width = image.shape[:2]
        h, w = capped_size(height, width, self.official_max_side)

        def prepare():
            small = image if (h, w) == (height, width) else cv2.resize(image, (w, h))
            masks = np.stack(
                [
                    cv2.resize(_sigmoid(box.crop(m)), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
                    for m in logits
                ]
            )
            return prepare_instmatt(small, masks.astype(np.float32), max_side=self.official_max_side)

        with timer.stage("prepare_instmatt"):
            inputs = await anyio.to_thread.run_sync(prepare, limiter=self.limiter)
        batch = self.backend.network(OFFICIAL_GENERATOR).io.batching.max_batch_size
        parts: list[dict[str, np.ndarray]] = []
        with timer.stage("instmatt_official"):
            for start in range(0, len(logits), batch):
                parts.append(
                    await self.backend.infer(
                        OFFICIAL_GENERATOR,
                        {
                            "image": inputs.image[start : start + batch].numpy(),
                            "guidance": inputs.guidance[start : start + batch].numpy(),
                        },
                    )
                )
        out = {k: torch.from_numpy(np.concatenate([p[k] for p in parts])) for k in parts[0]}

        def kernel(pred: torch.Tensor, feature: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
            result = anyio.from_thread.run(
                self.backend.infer,
                OFFICIAL_REFINER,
                {"pred": pred.numpy()[None], "feature": feature.numpy()[None], "image": window.numpy()[None]},
            )
            return torch.from_numpy(result["logits"][0])

        def refine() -> np.ndarray:
            refined = refine_instances(kernel, inputs.image, out["trimatte"], out["feature"])
            trimattes = torch.where(out["region"] > 0.5, refined, out["trimatte"])
            return instmatt_alphas(trimattes, inputs, quantise=False)

        with timer.stage("instmatt_refiner"):
            # Not under the inference limiter: this thread only chooses windows and waits for the
            # backend, whose calls take a limiter slot each (holding one here could deadlock).
            return await anyio.to_thread.run_sync(refine)

    @staticmethod
    def _instance(alpha_small: np.ndarray, score: float, image: np.ndarray) -> Instance | None:
        """An alpha covering the photo at a lower resolution -> the instance at the photo's size."""
        alpha = upsample_alpha(alpha_small, image)
        ys, xs = np.nonzero(alpha > 0.02)
        if len(ys) == 0:
            return None
        return Instance(alpha, score, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))

    async def info(self) -> InstanceMattingInfo:
        statuses = await self.statuses()
        return InstanceMattingInfo(
            description=self.description,
            backend=self.backend.name,
            ready=all(s.ready for s in statuses),
            trained=all(s.weights == "trained" for s in statuses),
            networks=statuses,
        )
