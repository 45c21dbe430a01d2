"""Evaluating ``POST /v1/instances`` (every person, no prompt) on a multi-instance folder.

Each photo's instances come from the served instance-matting pipeline (ISCN with no prompt,
then InstMatt), are matched to the ground-truth people by InstMatt's protocol
(:func:`models.eval.metrics.imq`: Hungarian matching on the IoU of alpha > 0 masks, true
positives at IoU > 0.5) and summed over the photos: recognition quality RQ and IMQ (MAD, MSE,
Grad, Conn). A photo that fails counts its people as missed, with its error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.eval.metrics import IMQResult, imq
from service.pipelines.instances import InstanceMatting


@dataclass
class InstanceReport:
    """Totals over the photos; ``min_area`` the smallest ground-truth person counted (pixels)."""

    result: IMQResult = field(default_factory=IMQResult)
    photos: int = 0
    failures: list[str] = field(default_factory=list)
    min_area: int = 0
    min_score: float = 0.5

    def summary(self) -> dict[str, float]:
        r = self.result
        return {
            "photos": self.photos,
            "people": r.tp + r.fn,
            "tp": r.tp,
            "fp": r.fp,
            "fn": r.fn,
            "rq": round(r.recognition_quality, 4),
            **{f"imq_{k}": round(v, 4) for k, v in r.imq.items()},
            "failures": len(self.failures),
            "min_area_px": self.min_area,
            "min_score": self.min_score,
        }


async def evaluate_instances(pipeline: InstanceMatting, folder, min_area: int = 0) -> InstanceReport:
    """Run ``pipeline`` on every photo of ``folder`` (a loader of :mod:`models.data.layouts`);
    ground-truth people smaller than ``min_area`` pixels are neither required nor penalised
    (predictions matching them are dropped). The pipeline keeps people scoring at least its
    ``min_score`` (``MATTESERVE_INSTANCE_MIN_SCORE``)."""
    report = InstanceReport(min_area=min_area, min_score=pipeline.min_score)
    for index in range(len(folder)):
        try:
            scene = folder[index]
            found, _ = await pipeline.matte(scene.image)
        except Exception as exc:  # one bad photo must not end the run
            report.failures.append(f"{folder.items[index][2]}: {type(exc).__name__}: {exc}")
            continue
        report.photos += 1
        areas = (scene.alphas > 0.5).reshape(scene.num_instances, -1).sum(axis=1)
        big = scene.alphas[areas >= min_area]
        small = scene.alphas[areas < min_area]
        preds = [inst.alpha for inst in found]
        if len(small):
            # Predictions that are really one of the ignored small people count for nothing.
            ignored = imq(preds, small)
            drop = {i for i, _, _ in ignored.matches}
            preds = [p for k, p in enumerate(preds) if k not in drop]
        report.result = report.result.merge(imq(preds, big))
    return report
