"""Mattes with the errors a user corrects, made from a person's ground-truth mask.

The mark honouring's benchmark (``python -m bench.corrections``) and its tests on real photos
start from these: a halo of background included, a rim of the person missed, the person's lower
half missed, a block of background beside the person included, and the whole matte shifted; the
clicks that correct them come from :class:`models.eval.simulator.UserSimulator`.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.eval.simulator import UserSimulator
from schemas.prompts import Prompt


def erroneous_mattes(truth: np.ndarray, ring: int) -> dict[str, np.ndarray]:
    """Name -> float32 [H, W] matte of ``truth`` (bool [H, W], one person) with one kind of error:
    "halo" (grown by ``ring`` px), "rim" (shrunk by ``ring`` px), "missed half" (the lower half
    dropped), "neighbour" (a block half the person's width included beside them) and "shifted"
    (moved down and right by a twelfth of the person's height)."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring + 1, 2 * ring + 1))
    mask = truth.astype(np.uint8)
    ys, xs = np.nonzero(truth)
    half = truth.copy()
    half[(ys.min() + ys.max()) // 2 :] = False
    neighbour = truth.copy()
    neighbour[ys.min() : ys.max() + 1, xs.max() : xs.max() + (xs.max() - xs.min()) // 2] = True
    shift = max(4, (ys.max() - ys.min()) // 12)
    shifted = np.zeros_like(truth)
    shifted[shift:, shift:] = truth[:-shift, :-shift]
    mattes = {
        "halo": cv2.dilate(mask, disc),
        "rim": cv2.erode(mask, disc),
        "missed half": half,
        "neighbour": neighbour,
        "shifted": shifted,
    }
    return {name: matte.astype(np.float32) for name, matte in mattes.items()}


def corrective_clicks(matte: np.ndarray, truth: np.ndarray, count: int) -> list[Prompt]:
    """The ``count`` clicks DFIMat's simulated user places on ``matte``'s largest errors against
    ``truth`` (float [H, W] each), as in a corrective round."""
    user = UserSimulator("click", clicks_per_round=count)
    return list(user.corrections(1, truth.astype(np.float32), matte, "click"))
