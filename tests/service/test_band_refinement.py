"""The native-resolution band refinement: what it changes, its bounded path, and that it never raises."""

from __future__ import annotations

import asyncio

import anyio
import cv2
import numpy as np
import pytest

from bench.native_refinement import network_like
from models.eval.metrics import grad, sad
from service.config import Settings
from service.engines.band_refinement import BandRefinement, photo_matte, refine_band, uncertain_band
from service.engines.upsampling import upsample_alpha
from service.pipelines.factory import build_registry, close_registry


def test_band_solved_at_native_resolution_on_synthetic_people() -> None:
    """On a synthetic person at 1 MP, from a 256-px matte: the band solver lowers SAD and Grad
    against the true matte (it does not on the real photos of ../shared/evaldata; see README)."""
    from models.data.synthetic import SceneGenerator

    scene = SceneGenerator(seed=777).scene(1, size=(1024, 768))
    truth, photo = scene.alphas[0], scene.image
    small = network_like(truth)
    guided = upsample_alpha(small, photo)
    native = photo_matte(small, photo, BandRefinement())
    assert native.shape == truth.shape and native.dtype == np.float32
    assert native.min() >= 0.0 and native.max() <= 1.0
    assert sad(native, truth) < sad(guided, truth)
    assert grad(native, truth) < grad(guided, truth)
    outside = ~uncertain_band(guided, 6)
    known = np.where(guided[outside] >= 0.5, 1.0, 0.0)
    assert np.array_equal(native[outside], known), "known areas stay known"


def test_a_matte_already_at_the_photos_resolution_is_left_to_the_upsampling() -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    alpha = rng.random((240, 320)).astype(np.float32)  # 1.25x below the photo: under min_factor
    assert np.array_equal(photo_matte(alpha, photo, BandRefinement()), upsample_alpha(alpha, photo))


def test_a_large_band_is_solved_at_a_bounded_scale_and_keeps_the_photos_size() -> None:
    """The bounded path (band larger than ``max_unknown``): a full-size matte in [0, 1]."""
    from models.data.synthetic import SceneGenerator

    scene = SceneGenerator(seed=777).scene(0, size=(600, 800))
    photo = cv2.resize(scene.image, (2400, 1800), interpolation=cv2.INTER_CUBIC)
    truth = cv2.resize(scene.alphas.sum(0), (2400, 1800), interpolation=cv2.INTER_CUBIC)
    small = network_like(np.clip(truth, 0, 1))
    params = BandRefinement(max_unknown=20_000)
    factor = 2400 / small.shape[1]
    assert uncertain_band(upsample_alpha(small, photo), round(params.band_factor * factor)).sum() > 20_000
    native = photo_matte(small, photo, params)
    assert native.shape == (1800, 2400) and native.dtype == np.float32
    assert native.min() >= 0.0 and native.max() <= 1.0
    assert sad(native, truth) < 1.5 * sad(upsample_alpha(small, photo), truth)


@pytest.mark.parametrize(
    ("photo_shape", "alpha"),
    [
        ((1, 1, 3), np.full((1, 1), 0.5, np.float32)),
        ((1, 2000, 3), np.linspace(0, 1, 2000, dtype=np.float32)[None]),
        ((2000, 1, 3), np.linspace(0, 1, 2000, dtype=np.float32)[:, None]),
        ((300, 300, 3), np.zeros((300, 300), np.float32)),
        ((300, 300, 3), np.ones((300, 300), np.float32)),
        ((300, 300, 3), np.full((300, 300), 0.5, np.float32)),  # all band, no known pixel
    ],
)
def test_degenerate_mattes_and_photos_never_raise(photo_shape: tuple[int, ...], alpha: np.ndarray) -> None:
    photo = np.full(photo_shape, 128, np.uint8)  # uniform: the Laplacian is as singular as it gets
    out = refine_band(alpha, photo, 4.0)
    assert out.shape == alpha.shape and np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_the_setting_reaches_every_single_target_pipeline() -> None:
    async def pipelines(native: bool) -> dict[str, BandRefinement | None]:
        registry = await build_registry(Settings(native_refinement=native), anyio.CapacityLimiter(1))
        try:
            found = {}
            for name in ("classical", "dfimat", "semat", "smat"):
                pipeline = registry.get(name)
                found[name] = pipeline.params.refinement if name == "classical" else pipeline.refinement
            return found
        finally:
            await close_registry(registry)

    assert all(isinstance(r, BandRefinement) for r in asyncio.run(pipelines(True)).values())
    assert all(r is None for r in asyncio.run(pipelines(False)).values())
