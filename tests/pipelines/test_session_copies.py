"""What a session computes once from its photo and every later round reuses: the networks'
letterboxed input, the classical engine's working copy, the marks' path costs — and the
guided upsampling takes its guide from them instead of resizing the photo again.

Each reuse must leave the mattes exactly as they are without it (the same values, computed
once instead of every round)."""

from __future__ import annotations

import anyio
import cv2
import numpy as np
import pytest

from models.prompting import Letterbox
from schemas.prompts import BoxPrompt, ClickPrompt
from service.backends.base import read_networks
from service.backends.local import LocalBackend
from service.config import REPO_ROOT
from service.engines.classical import ClassicalParams, matte
from service.engines.upsampling import guide_at, upsample_alpha
from service.imaging import resize_long_side
from service.pipelines.base import FeatureCache, RoundInput
from service.pipelines.classical import ClassicalPipeline
from service.pipelines.dfimat import DFIMatPipeline
from service.pipelines.networks import frame_guide
from tests.support.images import soft_disc, two_objects

HEIGHT, WIDTH = 720, 960  # above every working size, so each copy is a downscaled one


def test_a_letterboxed_frame_holds_the_upsampling_guide() -> None:
    image, _, _ = two_objects(HEIGHT, WIDTH)
    box = Letterbox(HEIGHT, WIDTH, 256)
    frame = box.image(image)
    h, w = box.inner
    assert np.array_equal(frame_guide(frame, box), guide_at(image, h, w))
    truth = soft_disc(HEIGHT, WIDTH, (400, 360), 200, blur=4.0)
    low = cv2.resize(truth, (w, h), interpolation=cv2.INTER_AREA)
    assert np.array_equal(upsample_alpha(low, image, frame_guide(frame, box)), upsample_alpha(low, image))


def test_the_classical_engine_with_a_kept_working_copy_gives_the_same_matte() -> None:
    image, _, _ = two_objects(HEIGHT, WIDTH)
    prompts = [BoxPrompt(x0=100, y0=120, x1=600, y1=620), ClickPrompt(x=700, y=360, label="bg")]
    params = ClassicalParams()
    work = resize_long_side(image, params.max_side)[0]
    fresh = matte(image, prompts, params=params)
    kept = matte(image, prompts, params=params, work=work)
    assert np.array_equal(fresh.alpha, kept.alpha)


def _counting(cache: FeatureCache, kept: list[str]) -> FeatureCache:
    def keep(name: str, arrays: dict[str, np.ndarray]) -> None:
        kept.append(name)
        cache.keep(name, arrays)

    return FeatureCache(cache.load, cache.save, cache.recall, keep)


async def _rounds(pipeline, image: np.ndarray, features: FeatureCache | None) -> list[np.ndarray]:
    """Three rounds (box, then a click each), on ``features`` or on a new cache every round."""
    prompts = [BoxPrompt(x0=100, y0=120, x1=600, y1=620)]
    clicks = [ClickPrompt(x=700, y=360, label="bg"), ClickPrompt(x=330, y=360, label="fg")]
    mattes, previous, state = [], None, None
    for index in range(3):
        if index:
            prompts = [*prompts, clicks[index - 1]]
        cache = features if features is not None else FeatureCache.in_memory()
        out = await pipeline.run_round(
            RoundInput(image, prompts, prompts[-1:], previous, state, cache, index + 1)
        )
        mattes.append(out.alpha)
        previous, state = out.alpha, out.state
    return mattes


@pytest.mark.anyio
async def test_dfimat_and_classical_keep_their_copies_once_with_unchanged_mattes() -> None:
    image, _, _ = two_objects(HEIGHT, WIDTH)
    repository = REPO_ROOT / "triton_repo"
    backend = LocalBackend(repository, read_networks(repository), anyio.CapacityLimiter(2), threads=2)
    await backend.start()
    pipelines = {
        "dfimat": DFIMatPipeline(backend, text=None, limiter=anyio.CapacityLimiter(2)),  # type: ignore[arg-type]
        "classical": ClassicalPipeline(ClassicalParams(), anyio.CapacityLimiter(2)),
    }
    copies = {"dfimat": "letterbox/", "classical": "classical_work/"}
    for name, pipeline in pipelines.items():
        kept: list[str] = []
        reused = await _rounds(pipeline, image, _counting(FeatureCache.in_memory(), kept))
        fresh = await _rounds(pipeline, image, None)
        assert kept.count("marks_costs") == 1, kept
        assert sum(k.startswith(copies[name]) for k in kept) == 1, kept
        assert all(np.array_equal(a, b) for a, b in zip(reused, fresh, strict=True)), name
