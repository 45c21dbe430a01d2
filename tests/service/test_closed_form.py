"""``service.engines.closed_form``: closed-form matting given known values, shared by the classical
engine's corrective rounds and the native-resolution band."""

from __future__ import annotations

import cv2
import numpy as np
from pymatting import estimate_alpha_cf

from service.engines.closed_form import closed_form
from tests.support.images import two_objects


def _photo_and_trimap() -> tuple[np.ndarray, np.ndarray]:
    """A soft red disc on a textured background, float64 in [0, 1], and its trimap (a 4 px band)."""
    image, target, _ = two_objects(96, 128)
    hard = (target >= 0.5).astype(np.uint8)
    kernel = np.ones((9, 9), np.uint8)
    trimap = np.where(cv2.erode(hard, kernel) > 0, 1.0, 0.0)
    trimap[(cv2.dilate(hard, kernel) > 0) & (trimap == 0.0)] = 0.5
    return image.astype(np.float64) / 255.0, trimap


def test_with_zero_one_known_values_it_is_pymattings_solve_bit_for_bit() -> None:
    photo, trimap = _photo_and_trimap()
    unknown = trimap == 0.5
    assert unknown.any() and (trimap == 1.0).any()
    np.testing.assert_array_equal(
        closed_form(photo, trimap, unknown), np.clip(estimate_alpha_cf(photo, trimap), 0.0, 1.0)
    )


def test_soft_known_values_stay_and_pull_their_neighbours() -> None:
    """Known soft values are kept as given, and the unknown pixels between a known 0.3 and 0.7 land
    between them (the solution of a Laplacian system lies within its boundary values)."""
    photo = np.full((20, 30, 3), 0.5)
    values = np.zeros((20, 30))
    values[:, :10], values[:, 20:] = 0.3, 0.7
    unknown = np.zeros((20, 30), bool)
    unknown[:, 10:20] = True
    alpha = closed_form(photo, values, unknown)
    np.testing.assert_array_equal(alpha[~unknown], values[~unknown])
    assert 0.3 - 1e-6 <= alpha[unknown].min() <= alpha[unknown].max() <= 0.7 + 1e-6


def test_an_unknown_region_among_zeros_is_zero_not_an_error() -> None:
    """pymatting's cg divides by zero when the right-hand side is 0 (every known neighbour is 0)."""
    photo = np.random.default_rng(1).random((16, 16, 3))
    values = np.zeros((16, 16))
    unknown = np.zeros((16, 16), bool)
    unknown[5:9, 5:9] = True
    alpha = closed_form(photo, values, unknown)
    np.testing.assert_array_equal(alpha, np.zeros((16, 16)))
