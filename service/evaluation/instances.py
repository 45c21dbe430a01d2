"""Evaluating ``POST /v1/instances`` (every person, no prompt) on a multi-instance folder.

Each photo's instances come from the served instance-matting pipeline (ISCN with no prompt,
then InstMatt), are matched to the ground-truth people by InstMatt's protocol
(:func:`models.eval.metrics.imq`: Hungarian matching on the IoU of alpha > 0 masks, true
positives at IoU > 0.5) and summed over the photos: recognition quality RQ and IMQ (MAD, MSE,
Grad, Conn). A ground-truth person is an alpha of at least ``MIN_TARGET_AREA`` (16) pixels
above 0.5, as ``matteserve eval`` requires of a target (an empty alpha is no one), or of at
least ``--min-area`` where that is larger. A photo that fails counts its people as missed, with
its error; a photo without any alpha is skipped (its people are unknown) and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.data.dev_sets import DEV_SETS
from models.data.layouts import HIM2KFolder, SingleInstanceFolder, read_alpha
from models.data.synthetic import Scene
from models.eval.metrics import IMQResult, imq
from service.evaluation.samples import MIN_TARGET_AREA, DataError, open_selected, parse_source
from service.pipelines.instances import InstanceMatting

Folder = HIM2KFolder | SingleInstanceFolder


@dataclass
class InstanceReport:
    """Totals over the photos; ``photos`` those evaluated (``failures`` the others, whose people
    count as missed); ``skipped`` the photos without an alpha; ``min_area`` the smallest
    ground-truth person counted (pixels)."""

    result: IMQResult = field(default_factory=IMQResult)
    photos: int = 0
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
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
            "skipped": len(self.skipped),
            "min_area_px": self.min_area,
            "min_score": self.min_score,
        }


def instance_folder(spec: str) -> Folder:
    """The folder ``eval-instances`` reads for ``spec`` (a folder, optionally ``?column=value``);
    :class:`DataError` for a generated set (every person's alpha must be on disk) and for a
    folder without a photo to evaluate (the figures of no photos would read as perfect)."""
    if parse_source(spec)[0] in ("synthetic", *DEV_SETS):
        raise DataError(
            f"{spec!r}: eval-instances reads a folder of photos with every person's alpha "
            "(image/ + alpha/<id>/<k>.png, HIM2K's images/ + alphas/, or image/ + alpha/)"
        )
    folder = open_selected(spec)
    if not len(folder):
        without = f" ({len(folder.skipped)} photos without an alpha skipped)" if folder.skipped else ""
        raise DataError(f"no samples in {spec!r}{without}")
    return folder


async def evaluate_instances(pipeline: InstanceMatting, folder: Folder, min_area: int = 0) -> InstanceReport:
    """Run ``pipeline`` on every photo of ``folder`` (a loader of :mod:`models.data.layouts`);
    ground-truth people smaller than ``min_area`` pixels (never fewer than ``MIN_TARGET_AREA``)
    are neither required nor penalised (predictions matching them are dropped). The pipeline
    keeps people scoring at least its ``min_score`` (``MATTESERVE_INSTANCE_MIN_SCORE``)."""
    least = max(min_area, MIN_TARGET_AREA)
    report = InstanceReport(min_area=least, min_score=pipeline.min_score, skipped=list(folder.skipped))
    for index in range(len(folder)):
        scene: Scene | None = None
        try:
            scene = folder[index]
            found, _ = await pipeline.matte(scene.image)
        except Exception as exc:  # one bad photo must not end the run
            report.failures.append(f"{folder.items[index][2]}: {type(exc).__name__}: {exc}")
            report.result = report.result.merge(IMQResult(fn=_people(folder, index, scene, least)))
            continue
        report.photos += 1
        areas = (scene.alphas > 0.5).sum(axis=(1, 2))
        big = scene.alphas[areas >= least]
        small = scene.alphas[areas < least]
        preds = [inst.alpha for inst in found]
        if len(small):
            # Predictions that are really one of the ignored small people count for nothing.
            ignored = imq(preds, small)
            drop = {i for i, _, _ in ignored.matches}
            preds = [p for k, p in enumerate(preds) if k not in drop]
        report.result = report.result.merge(imq(preds, big))
    return report


def _people(folder: Folder, index: int, scene: Scene | None, least: int) -> int:
    """How many people of at least ``least`` pixels photo ``index`` has, for a photo that failed:
    from its scene when that was read, else from its alpha files one by one (an alpha that
    cannot be read still says that someone is there)."""
    if scene is not None:
        return int(((scene.alphas > 0.5).sum(axis=(1, 2)) >= least).sum())
    people = 0
    for path in folder.alpha_paths(index):
        try:
            people += int((read_alpha(path) > 0.5).sum() >= least)
        except (OSError, ValueError):
            people += 1
    return people
