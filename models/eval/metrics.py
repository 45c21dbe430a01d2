"""Matting metrics: SAD, MSE, MAD, Grad, Conn (Rhemann et al. 2009), IoU, IMQ (InstMatt), NoC.

Conventions (those of the Deep Image Matting / Composition-1k evaluation code):

* Alphas are float in [0, 1]; uint8 inputs are divided by 255. Shapes are [H, W].
* ``mask`` restricts a metric to some pixels (bool [H, W]); :func:`unknown_region` gives the
  trimap's unknown region (value 128, or 0.5 for float trimaps), the usual choice for
  trimap-based benchmarks. Without a mask, all pixels count.
* SAD = sum |p - g| over the mask, reported in thousands (divided by 1000).
* MSE = mean (p - g)^2 over the mask; MAD = mean |p - g| over the mask. Unscaled: tables
  often print them x1000.
* Grad = sum over the mask of (|∇p| - |∇g|)^2, with ∇ by first-order Gaussian derivative
  filters of sigma 1.4 (normalised to unit L2 norm, replicated borders), divided by 1000.
* Conn = sum over the mask of |φ(p) - φ(g)|, divided by 1000, where φ(a) = 1 - d·[d >= θ],
  d = a - l, and l is the threshold (steps of 0.1) at which a pixel leaves the largest
  4-connected region of both mattes being >= the threshold; θ = 0.15.

IMQ follows InstMatt (eq. 16-18 and the authors' evaluation code): predicted and ground
truth instances are matched by the Hungarian algorithm on the IoU of their alpha > 0 masks;
pairs with IoU > 0.5 are true positives. For each TP pair an error E is measured on the union
of the two masks and normalised per pixel (sum / (union pixels + 1)): MAD, MSE, Grad (same
filter, per pixel, not /1000) and Conn (per pixel); its similarity is S = 1 - min(w·E, 1)
with w = 10 for all four (the authors' code). IMQ = sum of S over TPs / (|TP| + |FP|/2 + |FN|/2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

IMQ_WEIGHTS: dict[str, float] = {"mad": 10.0, "mse": 10.0, "grad": 10.0, "conn": 10.0}
# "alpha > 0" as in InstMatt, on 8-bit mattes: anything that would round to a non-zero byte.
PRESENCE = 0.5 / 255.0


def as_alpha(a: np.ndarray) -> np.ndarray:
    """Alpha as float64 in [0, 1] (uint8 / uint16 inputs are rescaled)."""
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float64) / 65535.0
    return a.astype(np.float64)


def unknown_region(trimap: np.ndarray) -> np.ndarray:
    """Bool [H, W] of a trimap's unknown pixels: 128 for uint8 trimaps, strictly between 0 and 1 for float."""
    t = np.asarray(trimap)
    if t.dtype == np.uint8:
        return t == 128
    return (t > 0.0) & (t < 1.0)


def _mask(shape: tuple[int, ...], mask: np.ndarray | None) -> np.ndarray:
    return np.ones(shape, bool) if mask is None else np.asarray(mask, bool)


def sad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Sum of absolute differences over ``mask``, in thousands."""
    p, g = as_alpha(pred), as_alpha(gt)
    return float(np.abs(p - g)[_mask(g.shape, mask)].sum() / 1000.0)


def mse(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error over ``mask`` (0 for an empty mask)."""
    p, g = as_alpha(pred), as_alpha(gt)
    m = _mask(g.shape, mask)
    return float(((p - g) ** 2)[m].mean()) if m.any() else 0.0


def mad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference over ``mask`` (0 for an empty mask)."""
    p, g = as_alpha(pred), as_alpha(gt)
    m = _mask(g.shape, mask)
    return float(np.abs(p - g)[m].mean()) if m.any() else 0.0


def _gauss_derivative_kernels(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(hx, hy): first-order Gaussian derivative filters along x and y, unit L2 norm."""
    eps = 1e-2
    half = math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2 * math.pi) * sigma * eps)))
    r = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(r**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    dg = -r * g / sigma**2
    hx = g[:, None] * dg[None, :]  # rows smooth, columns differentiate
    hx /= np.sqrt((hx**2).sum())
    return hx, hx.T.copy()


_KERNELS: dict[float, tuple[np.ndarray, np.ndarray]] = {}


def gradient_magnitude(alpha: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    """|∇alpha| [H, W] with Gaussian derivative filters of ``sigma``."""
    if sigma not in _KERNELS:
        _KERNELS[sigma] = _gauss_derivative_kernels(sigma)
    hx, hy = _KERNELS[sigma]
    a = as_alpha(alpha)
    gx = cv2.filter2D(a, cv2.CV_64F, hx, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(a, cv2.CV_64F, hy, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx * gx + gy * gy)


def grad_error_map(pred: np.ndarray, gt: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    """(|∇p| - |∇g|)^2 per pixel, [H, W]."""
    return (gradient_magnitude(pred, sigma) - gradient_magnitude(gt, sigma)) ** 2


def grad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, sigma: float = 1.4) -> float:
    """Gradient error over ``mask``, in thousands."""
    e = grad_error_map(pred, gt, sigma)
    return float(e[_mask(e.shape, mask)].sum() / 1000.0)


def _largest_component(binary: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=4)
    if n <= 1:
        return np.zeros(binary.shape, bool)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == best


def conn_error_map(pred: np.ndarray, gt: np.ndarray, step: float = 0.1, theta: float = 0.15) -> np.ndarray:
    """|φ(p) - φ(g)| per pixel, [H, W] (see the module doc)."""
    p, g = as_alpha(pred), as_alpha(gt)
    steps = np.linspace(0.0, 1.0, round(1.0 / step) + 1)
    level = np.full(g.shape, -1.0)
    for i in range(1, len(steps)):
        omega = _largest_component((p >= steps[i]) & (g >= steps[i]))
        level[(level == -1) & ~omega] = steps[i - 1]
    level[level == -1] = 1.0
    dp, dg = p - level, g - level
    phi_p = 1.0 - dp * (dp >= theta)
    phi_g = 1.0 - dg * (dg >= theta)
    return np.abs(phi_p - phi_g)


def conn(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray | None = None,
    step: float = 0.1,
    theta: float = 0.15,
) -> float:
    """Connectivity error over ``mask``, in thousands."""
    e = conn_error_map(pred, gt, step, theta)
    return float(e[_mask(e.shape, mask)].sum() / 1000.0)


def matting_errors(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None = None) -> dict[str, float]:
    """SAD, MSE, MAD, Grad and Conn of one matte; restricted to the trimap's unknown region if given."""
    mask = None if trimap is None else unknown_region(trimap)
    return {
        "sad": sad(pred, gt, mask),
        "mse": mse(pred, gt, mask),
        "mad": mad(pred, gt, mask),
        "grad": grad(pred, gt, mask),
        "conn": conn(pred, gt, mask),
    }


def iou(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of ``pred >= threshold`` and ``gt >= threshold``; 1 when both are empty."""
    p, g = as_alpha(pred) >= threshold, as_alpha(gt) >= threshold
    union = np.logical_or(p, g).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, g).sum() / union)


# --------------------------------------------------------------------------------------- IMQ


def presence_iou_matrix(preds: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """[N, M] IoU between the alpha > 0 masks of predictions [N, H, W] and ground truths [M, H, W]."""
    p = (as_alpha(preds) > PRESENCE).reshape(len(preds), -1).astype(np.float32)
    g = (as_alpha(gts) > PRESENCE).reshape(len(gts), -1).astype(np.float32)
    inter = p @ g.T
    union = p.sum(1)[:, None] + g.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def instance_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Per-pixel MAD, MSE, Grad, Conn of one matched pair over the union of their alpha > 0 masks."""
    p, g = as_alpha(pred), as_alpha(gt)
    union = (p > PRESENCE) | (g > PRESENCE)
    n = float(union.sum()) + 1.0
    return {
        "mad": float(np.abs(p - g)[union].sum() / n),
        "mse": float(((p - g) ** 2)[union].sum() / n),
        "grad": float(grad_error_map(p, g)[union].sum() / n),
        "conn": float(conn_error_map(p, g)[union].sum() / n),
    }


def similarity(errors: dict[str, float], weights: dict[str, float] = IMQ_WEIGHTS) -> dict[str, float]:
    """S = 1 - min(w·E, 1) for each error type."""
    return {k: 1.0 - min(weights[k] * e, 1.0) for k, e in errors.items()}


@dataclass
class IMQResult:
    """IMQ per error type (``imq``), with the counts and sums it was made of.

    ``matches`` are (pred index, gt index, IoU) of the true positives; ``similarity_sums`` the
    sums of S over them. Results of several images add up with :meth:`merge`.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    similarity_sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(IMQ_WEIGHTS, 0.0))
    matches: list[tuple[int, int, float]] = field(default_factory=list)

    @property
    def imq(self) -> dict[str, float]:
        denom = self.tp + 0.5 * self.fp + 0.5 * self.fn
        if denom == 0:
            return dict.fromkeys(self.similarity_sums, 1.0)  # nothing to find, nothing found
        return {k: v / denom for k, v in self.similarity_sums.items()}

    @property
    def recognition_quality(self) -> float:
        """RQ = |TP| / (|TP| + |FP|/2 + |FN|/2)."""
        denom = self.tp + 0.5 * self.fp + 0.5 * self.fn
        return 1.0 if denom == 0 else self.tp / denom

    def merge(self, other: IMQResult) -> IMQResult:
        """The result over both sets of images (matches are not carried over)."""
        sums = {k: self.similarity_sums[k] + other.similarity_sums[k] for k in self.similarity_sums}
        return IMQResult(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, sums)


def imq(
    preds: np.ndarray | Sequence[np.ndarray],
    gts: np.ndarray | Sequence[np.ndarray],
    iou_threshold: float = 0.5,
    weights: dict[str, float] = IMQ_WEIGHTS,
) -> IMQResult:
    """IMQ of one image: predicted instance alphas [N, H, W] against ground truth [M, H, W].

    All-zero predictions are dropped first (an empty matte is no prediction). A match counts
    as a true positive when its IoU exceeds ``iou_threshold``.
    """
    h_w = None
    for arr in (preds, gts):
        if len(arr):
            h_w = np.asarray(arr[0]).shape
    if h_w is None:
        return IMQResult()
    p = np.stack([as_alpha(a) for a in preds]) if len(preds) else np.zeros((0, *h_w))
    g = np.stack([as_alpha(a) for a in gts]) if len(gts) else np.zeros((0, *h_w))
    p = p[(p > PRESENCE).reshape(len(p), -1).any(axis=1)] if len(p) else p
    result = IMQResult()
    if len(p) == 0 or len(g) == 0:
        result.fp, result.fn = len(p), len(g)
        return result
    ious = presence_iou_matrix(p, g)
    rows, cols = linear_sum_assignment(-ious)
    for i, j in zip(rows, cols, strict=True):
        if ious[i, j] > iou_threshold:
            result.matches.append((int(i), int(j), float(ious[i, j])))
            for k, s in similarity(instance_errors(p[i], g[j]), weights).items():
                result.similarity_sums[k] += s
    result.tp = len(result.matches)
    result.fp = len(p) - result.tp
    result.fn = len(g) - result.tp
    return result


# --------------------------------------------------------------------------------------- NoC


def noc(
    ious: Sequence[float],
    threshold: float = 0.9,
    clicks: Sequence[int] | None = None,
    max_clicks: int | None = None,
) -> int:
    """Number of clicks to reach IoU >= ``threshold`` from a per-click IoU curve.

    ``ious[i]`` is the IoU after ``clicks[i]`` clicks (default ``i + 1``; give the cumulative
    click counts when a round adds several). When the threshold is never reached the answer
    is ``max_clicks`` (default: the last click count), as in interactive segmentation.
    """
    counts = list(range(1, len(ious) + 1)) if clicks is None else list(clicks)
    if len(counts) != len(ious):
        raise ValueError("ious and clicks differ in length")
    for c, v in zip(counts, ious, strict=True):
        if v >= threshold:
            return int(c)
    if max_clicks is not None:
        return int(max_clicks)
    return int(counts[-1]) if counts else 0


def noc_at(ious: Sequence[float], thresholds: Sequence[float] = (0.85, 0.9), **kwargs) -> dict[str, int]:
    """NoC at several thresholds: {"noc@85": ..., "noc@90": ...}."""
    return {f"noc@{round(t * 100)}": noc(ious, t, **kwargs) for t in thresholds}
