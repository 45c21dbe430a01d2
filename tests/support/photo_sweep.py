"""The classical pipeline over every photo of a shared data set with a set of prompts each
(the person's box, a click at the person's deepest point, a whole-image box, tiny boxes),
split over worker processes.

GrabCut is single-threaded and a whole-image box on a 640 x 480 photo takes seconds, so on
CI's two cores one process left a core idle for the suite's longest test; the photos are
dealt round-robin to ``workers`` spawned processes (spawned, not forked: the parent has
torch's thread pools) and the failures gathered. Each worker reads the whole set and skips the
others' photos (about a second a set, against minutes of GrabCut).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import anyio
import numpy as np
from pydantic import TypeAdapter

from models.eval.simulator import deepest_point, gt_box
from schemas.prompts import Prompt

PROMPTS = TypeAdapter(list[Prompt])


def box_of(mask: np.ndarray) -> dict:
    """The box prompt (wire JSON) of ``mask``'s pixels above 0.5."""
    return gt_box(mask, threshold=0.5).model_dump(mode="json")


def deepest_click(mask: np.ndarray) -> dict:
    """A foreground click where the simulator would put it: the person's deepest pixel."""
    x, y, _ = deepest_point(mask > 0.5)
    return {"type": "click", "x": float(x), "y": float(y), "label": "fg"}


def prompt_sets(image: np.ndarray, instances: np.ndarray) -> dict[str, list[dict]]:
    """The prompt sets of the sweep for ``image`` (H, W, 3) with person alphas ``instances``
    (K, H, W): kind -> wire JSON prompts."""
    height, width = image.shape[:2]
    areas = [(k, float((a > 0.5).sum())) for k, a in enumerate(instances)]
    areas = [(k, area) for k, area in areas if area > 0]
    largest = instances[max(areas, key=lambda item: item[1])[0]]
    smallest = instances[min(areas, key=lambda item: item[1])[0]]
    cx, cy = width // 2, height // 2
    return {
        "box": [box_of(largest)],
        "click": [deepest_click(largest)],
        "whole-image box": [{"type": "box", "x0": 0, "y0": 0, "x1": width, "y1": height}],
        "smallest person's box": [box_of(smallest)],
        "8x8 box": [
            {
                "type": "box",
                "x0": max(0, cx - 4),
                "y0": max(0, cy - 4),
                "x1": min(width, cx + 4),
                "y1": min(height, cy + 4),
            }
        ],
    }


def sweep_shard(root: str, kinds: tuple[str, ...] | None, shard: int, shards: int) -> tuple[int, list[str]]:
    """Round 1 of the classical pipeline on photos ``shard``, ``shard + shards``, ... of ``root``
    with each prompt set (only ``kinds`` when given); returns (photos, failures), a failure
    being an exception, a matte of the wrong shape, or values outside [0, 1] or not finite."""
    from service.engines.classical import ClassicalParams
    from service.evaluation.samples import samples
    from service.pipelines import FeatureCache, RoundInput
    from service.pipelines.classical import ClassicalPipeline

    pipeline = ClassicalPipeline(ClassicalParams(), anyio.CapacityLimiter(1))
    photos, failures = 0, []
    for index, sample in enumerate(samples(root, max_instances=1)):  # one entry per photo
        if index % shards != shard:
            continue
        photos += 1
        if sample.error is not None:
            failures.append(f"{sample.name}: unreadable: {sample.error}")
            continue
        instances = sample.instances if sample.instances is not None else sample.alpha[None]
        for kind, prompts in prompt_sets(sample.image, instances).items():
            if kinds is not None and kind not in kinds:
                continue
            parsed = PROMPTS.validate_python(prompts)
            request = RoundInput(
                image=sample.image,
                prompts=parsed,
                new_prompts=parsed,
                previous_alpha=None,
                previous_state=None,
                features=FeatureCache.in_memory(),
                round_index=1,
            )
            try:
                alpha = anyio.run(pipeline.run_round, request).alpha
            except Exception as exc:
                failures.append(f"{sample.name} {kind}: {type(exc).__name__}: {exc}")
                continue
            if alpha.shape != sample.image.shape[:2] or not np.isfinite(alpha).all():
                failures.append(
                    f"{sample.name} {kind}: alpha {alpha.shape}, finite={np.isfinite(alpha).all()}"
                )
            elif not 0.0 <= float(alpha.min()) <= float(alpha.max()) <= 1.0:
                failures.append(f"{sample.name} {kind}: alpha outside [0, 1]")
    return photos, failures


def sweep(root: str, kinds: tuple[str, ...] | None, workers: int) -> tuple[int, list[str]]:
    """:func:`sweep_shard` over all of ``root``'s photos in ``workers`` processes."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        shards = [pool.submit(sweep_shard, root, kinds, k, workers) for k in range(workers)]
        results = [shard.result() for shard in shards]
    return sum(photos for photos, _ in results), [failure for _, found in results for failure in found]
