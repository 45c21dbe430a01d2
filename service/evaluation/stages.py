"""What limits the dfimat pipeline's mattes, stage by stage, with oracle experiments.

``matteserve eval-stages --data DIR`` runs, on each target, the networks of the served
``dfimat`` pipeline (whatever ``MATTESERVE_MODEL_REPOSITORY`` holds) with the target's box as
the only prompt, and replaces one stage at a time by the ground truth:

* ``iscn``: ISCN's coarse mask (S/4) against the ground truth (IoU at 0.5);
* ``iscn+mrn``: the served pipeline without corrections: MRN on ISCN's mask, guided upsampling;
* ``iscn-mask+closed-form``: closed-form matting on the trimap of ISCN's own mask instead (the
  weight-free refiner given the localiser as it is);
* ``gt-mask+mrn``: MRN fed the ground-truth mask at ISCN's resolution (a perfect localiser);
* ``gt-mask+closed-form``: closed-form matting (pymatting) on the trimap of that same mask
  (COCO-Matting's adaptive band), at the photo's resolution: the weight-free refiner;
* ``gt-mask+mrn bilinear``: MRN's alpha upsampled bilinearly instead of by the guided filter;
* ``gt@S`` (guided / bilinear): the ground truth itself taken to the network's size and back,
  the floor that the network's resolution puts under any refiner;
* ``... + native band``: the same mattes with their uncertain band solved again at the photo's
  resolution (``service.engines.band_refinement``, ``MATTESERVE_NATIVE_REFINEMENT``), which
  acts only where the network's resolution is at least 1.5x below the region's.

Like the served pipeline (``Pipeline.focus_on_boxes``), every stage works on the box's region
with context (``service.pipelines.base.FOCUS_CONTEXT``). Errors are SAD and Grad (thousands)
and IoU over that region, at the photo's resolution (outside it, every stage answers 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from models.data.mask_to_matte import mask_to_trimap
from models.eval.metrics import grad, iou, sad
from models.eval.simulator import gt_box
from models.prompting import Letterbox
from service.engines.band_refinement import BandRefinement, photo_matte
from service.engines.upsampling import upsample_alpha
from service.evaluation.samples import Sample
from service.pipelines import FeatureCache, RoundInput, Timer
from service.pipelines.base import FOCUS_CONTEXT
from service.prompts import focus_region

STAGES = (
    "iscn",
    "iscn+mrn",
    "iscn-mask+closed-form",
    "gt-mask+mrn",
    "gt-mask+closed-form",
    "gt-mask+mrn bilinear",
    "gt@S guided",
    "gt@S bilinear",
    "gt-mask+mrn + native band",
    "gt@S guided + native band",
)


@dataclass
class StageTable:
    """Per stage, the per-target figures (``sad``, ``grad``, ``iou``)."""

    rows: dict[str, dict[str, list[float]]] = field(default_factory=lambda: {s: {} for s in STAGES})
    failures: list[str] = field(default_factory=list)

    def add(self, stage: str, pred: np.ndarray, gt: np.ndarray) -> None:
        for name, fn in (("sad", sad), ("grad", grad), ("iou", iou)):
            self.rows[stage].setdefault(name, []).append(float(fn(pred, gt)))

    def means(self) -> dict[str, dict[str, float]]:
        return {s: {k: float(np.mean(v)) for k, v in m.items()} for s, m in self.rows.items() if m}

    def markdown(self) -> str:
        lines = ["| stage | SAD | Grad | IoU | n |", "|---|---:|---:|---:|---:|"]
        for stage, m in self.means().items():
            n = len(self.rows[stage]["sad"])
            lines.append(f"| {stage} | {m['sad']:.2f} | {m['grad']:.2f} | {m['iou']:.3f} | {n} |")
        return "\n".join(lines) + "\n"


def _closed_form(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from pymatting import estimate_alpha_cf

    trimap = mask_to_trimap(mask).astype(np.float64) / 255.0
    if not (trimap == 1).any() or not (trimap == 0).any() or not (trimap == 0.5).any():
        return mask.astype(np.float32)
    return np.clip(estimate_alpha_cf(image.astype(np.float64) / 255.0, trimap), 0, 1).astype(np.float32)


async def stage_table(dfimat, items: list[Sample], progress: Callable[[], None] | None = None) -> StageTable:
    """The table of the module doc for the ``dfimat`` pipeline object on ``items``."""
    table = StageTable()
    size = dfimat.size
    for item in items:
        if item.error is not None:
            table.failures.append(f"{item.name}: {item.error}")
            continue
        gt, image = item.alpha, item.image
        region = focus_region(gt.shape, [gt_box(gt)], FOCUS_CONTEXT)
        if region is not None:
            y0, y1, x0, x1 = region
            gt, image = gt[y0:y1, x0:x1], np.ascontiguousarray(image[y0:y1, x0:x1])
        box = Letterbox(*image.shape[:2], size)
        lb = box.image(image)
        prompt = gt_box(gt)
        request = RoundInput(image, [prompt], [prompt], None, None, FeatureCache.in_memory(), 1)
        probability = await dfimat.localise(request, box, lb, Timer())
        coarse = cv2.resize(probability, (size, size), interpolation=cv2.INTER_LINEAR)
        iscn_mask = np.clip(box.to_original(coarse), 0, 1)
        table.add("iscn", iscn_mask, gt)
        refined = await dfimat.run("mrn", image=lb, mask=coarse[None])
        table.add("iscn+mrn", upsample_alpha(box.crop(refined["alpha"][0]), image), gt)
        table.add("iscn-mask+closed-form", _closed_form(image, iscn_mask >= 0.5), gt)

        gt_coarse = cv2.resize(box.plane(gt, stride=4), (size, size), interpolation=cv2.INTER_LINEAR)
        oracle = await dfimat.run("mrn", image=lb, mask=(gt_coarse >= 0.5).astype(np.float32)[None])
        table.add("gt-mask+mrn", upsample_alpha(box.crop(oracle["alpha"][0]), image), gt)
        table.add("gt-mask+mrn bilinear", np.clip(box.to_original(oracle["alpha"][0]), 0, 1), gt)
        mask = np.clip(box.to_original(gt_coarse), 0, 1) >= 0.5
        table.add("gt-mask+closed-form", _closed_form(image, mask), gt)
        gt_small = box.plane(gt)
        table.add("gt@S guided", upsample_alpha(box.crop(gt_small), image), gt)
        table.add("gt@S bilinear", np.clip(box.to_original(gt_small), 0, 1), gt)
        native = BandRefinement()
        table.add("gt-mask+mrn + native band", photo_matte(box.crop(oracle["alpha"][0]), image, native), gt)
        table.add("gt@S guided + native band", photo_matte(box.crop(gt_small), image, native), gt)
        if progress is not None:
            progress()
    return table
