"""Mapping a low-resolution matte back to the photo follows the photo's edges."""

from __future__ import annotations

import cv2
import numpy as np

from service.engines.upsampling import upsample_alpha
from tests.support.images import soft_disc, textured_background


def test_guided_upsampling_beats_plain_bilinear_on_a_sharp_edge() -> None:
    size, small = 512, 64
    truth = soft_disc(size, size, (256, 256), 150, blur=0.6)
    photo = np.clip(textured_background(size, size) * (1 - truth[..., None]) + truth[..., None] * 230, 0, 255)
    photo = photo.astype(np.uint8)
    low = cv2.resize(truth, (small, small), interpolation=cv2.INTER_AREA)
    guided = upsample_alpha(low, photo)
    bilinear = cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR)
    assert guided.shape == (size, size) and guided.dtype == np.float32
    assert guided.min() >= 0.0 and guided.max() <= 1.0
    assert np.abs(guided - truth).sum() < 0.5 * np.abs(bilinear - truth).sum()
    deep_inside = cv2.erode((truth > 0.999).astype(np.uint8), np.ones((41, 41), np.uint8)) > 0
    assert np.array_equal(guided[deep_inside], bilinear[deep_inside]), "opaque areas are left alone"


def test_guided_upsampling_on_synthetic_people_beats_bilinear() -> None:
    from models.data.synthetic import SceneGenerator

    scene = SceneGenerator(seed=3).scene(2, size=(384, 512))
    truth, photo = scene.alphas[0], scene.image
    low = cv2.resize(truth, (128, 96), interpolation=cv2.INTER_AREA)
    guided = upsample_alpha(low, photo)
    bilinear = cv2.resize(low, (512, 384), interpolation=cv2.INTER_LINEAR)
    assert np.abs(guided - truth).sum() < np.abs(bilinear - truth).sum()


def test_same_or_larger_mattes_are_only_resized() -> None:
    photo = np.zeros((40, 60, 3), np.uint8)
    alpha = np.random.default_rng(0).random((40, 60)).astype(np.float32)
    assert np.array_equal(upsample_alpha(alpha, photo), alpha)
    assert upsample_alpha(np.ones((80, 120), np.float32), photo).shape == (40, 60)
