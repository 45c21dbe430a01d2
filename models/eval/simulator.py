"""DFIMat's user simulator: multi-round prompts from ground truth and the previous prediction.

Each round (5 by default) the simulated user looks at the previous prediction against the
ground truth (both thresholded at 0.5), finds the most significant error region (the
largest connected component of false negatives or false positives) and corrects it:

* a click at the point of the region farthest from its boundary (distance transform, image
  borders counting as boundary), labelled ``fg`` for a missed part and ``bg`` for a
  spurious one; the disc around it is then taken as corrected, and the next click of the
  round goes to the largest remaining error;
* a scribble along the region's skeleton (the longest path of the thinned region, drawn
  with a brush that stays inside it), labelled the same way; the band around it is then
  taken as corrected.

Round 1 may also carry a box and/or a text from the ground truth, per the protocol (see
:mod:`models.eval.protocols`). Prompts are the wire objects of :mod:`schemas.prompts`.
Coordinates: clicks and scribble points at integer pixel indices (x = column, y = row);
box edges in pixel-edge coordinates, x1/y1 one past the last column/row of the target.

Randomness (which near-deepest pixel is clicked, click or scribble in ``mix``) comes from
``numpy.random.default_rng([seed, round])``, so a simulation is reproducible.
When a round finds no error left, it adds no corrections.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from models.eval.metrics import as_alpha, iou
from models.eval.protocols import ProtocolSpec, get_protocol
from schemas.prompts import BoxPrompt, ClickPrompt, ScribblePrompt, TextPrompt

Prompt = ClickPrompt | ScribblePrompt | BoxPrompt | TextPrompt


@dataclass
class ErrorRegion:
    """One connected error component: ``mask`` bool [H, W], ``label`` the correcting label."""

    mask: np.ndarray
    label: str
    area: int


def error_regions(
    pred: np.ndarray | None, gt: np.ndarray, threshold: float = 0.5, limit: int | None = 16
) -> list[ErrorRegion]:
    """Connected (8-neighbour) false-negative and false-positive regions, largest first, at
    most ``limit`` of them (None: all).

    ``pred`` and ``gt`` are alphas [H, W]; a missing ``pred`` counts as all background. Each
    region carries a full-size mask, so the limit is what keeps a fragmented error on a 12 MP
    photo (thousands of specks) from needing gigabytes."""
    fn, fp = _errors(pred, gt, threshold)
    out = _components(fn, "fg", limit) + _components(fp, "bg", limit)
    out.sort(key=lambda r: -r.area)
    return out if limit is None else out[:limit]


def _errors(pred: np.ndarray | None, gt: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(missed, wrongly included) pixels of ``pred`` against ``gt``, bool [H, W] each."""
    g = as_alpha(gt) >= threshold
    p = np.zeros_like(g) if pred is None else as_alpha(pred) >= threshold
    return g & ~p, ~g & p


def _components(err: np.ndarray, label: str, limit: int | None = None) -> list[ErrorRegion]:
    """The connected components of ``err``, largest first (ties in label order), at most
    ``limit``; masks are built only for those returned."""
    if not err.any():
        return []
    _, labels, stats, _ = cv2.connectedComponentsWithStats(err.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(-areas, kind="stable")[: limit if limit is not None else len(areas)]
    return [ErrorRegion(labels == i + 1, label, int(areas[i])) for i in order]


def _distance(mask: np.ndarray) -> np.ndarray:
    """Distance of each mask pixel to the nearest non-mask pixel or the image border."""
    padded = np.pad(mask.astype(np.uint8), 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def deepest_point(mask: np.ndarray, rng: np.random.Generator | None = None) -> tuple[int, int, float]:
    """(x, y, depth) of the mask pixel farthest from its boundary.

    With ``rng`` one of the pixels within 5 % of the maximum depth is drawn; without it the
    first in row-major order is taken.
    """
    dist = _distance(mask)
    top = float(dist.max())
    if rng is None:
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    else:
        ys, xs = np.nonzero(dist >= top * 0.95)
        i = int(rng.integers(len(ys)))
        y, x = ys[i], xs[i]
    return int(x), int(y), float(dist[y, x])


def _longest_skeleton_path(core: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """Points [n, 2] (x, y) along the longest path of the skeleton of ``core`` near ``start``."""
    skel = cv2.ximgproc.thinning(core.astype(np.uint8) * 255) > 0
    ys, xs = np.nonzero(skel)
    if len(ys) < 2:
        return np.array([start], np.float64)
    index = -np.ones(skel.shape, np.int64)
    index[ys, xs] = np.arange(len(ys))
    rows, cols, wts = [], [], []
    h, w = skel.shape
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        ny, nx = ys + dy, xs + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        j = np.full(len(ys), -1)
        j[ok] = index[ny[ok], nx[ok]]
        ok = j >= 0
        rows.append(np.nonzero(ok)[0])
        cols.append(j[ok])
        wts.append(np.full(ok.sum(), np.hypot(dy, dx)))
    r, c, wt = np.concatenate(rows), np.concatenate(cols), np.concatenate(wts)
    graph = csr_matrix(
        (np.concatenate([wt, wt]), (np.concatenate([r, c]), np.concatenate([c, r]))), (len(ys),) * 2
    )
    s = int(np.argmin((xs - start[0]) ** 2 + (ys - start[1]) ** 2))
    d0 = dijkstra(graph, indices=s)
    a = int(np.argmax(np.where(np.isfinite(d0), d0, -1)))
    d1, pred = dijkstra(graph, indices=a, return_predecessors=True)
    b = int(np.argmax(np.where(np.isfinite(d1), d1, -1)))
    path = [b]
    while path[-1] != a and pred[path[-1]] >= 0:
        path.append(int(pred[path[-1]]))
    return np.stack([xs[path], ys[path]], axis=1).astype(np.float64)


def place_scribble(
    mask: np.ndarray, radius: float | None = None, rng: np.random.Generator | None = None
) -> tuple[list[tuple[float, float]], float]:
    """A stroke inside ``mask``: (points as (x, y), brush radius). The brush never leaves the
    region: points lie where the distance to its boundary exceeds the radius."""
    x, y, depth = deepest_point(mask, rng)
    r = float(radius) if radius is not None else float(np.clip(0.4 * depth, 1.0, 4.0))
    r = min(r, max(depth - 0.5, 0.5))
    core = _distance(mask) >= r + 0.5
    if not core.any():
        return [(float(x), float(y))], r
    path = _longest_skeleton_path(core, (x, y))
    step = max(1, len(path) // 512)
    pts = path[::step]
    return [(float(px), float(py)) for px, py in pts], r


def gt_box(gt: np.ndarray, threshold: float = 0.0) -> BoxPrompt | None:
    """Bounding box of ``gt > threshold`` (x1/y1 one past the last column/row), or None if empty."""
    m = as_alpha(gt) > threshold
    rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
    if len(rows) == 0:
        return None
    return BoxPrompt(x0=float(cols[0]), y0=float(rows[0]), x1=float(cols[-1] + 1), y1=float(rows[-1] + 1))


@dataclass
class SimulationResult:
    """``rounds[r]``: the prompts added in round r; ``predictions[r]``: the model's alpha after it;
    ``ious[r]``: IoU with the ground truth after it; ``clicks[r]``: clicks so far (cumulative);
    ``interactions[r]``: prompts of any kind so far (cumulative)."""

    rounds: list[list[Prompt]] = field(default_factory=list)
    predictions: list[np.ndarray] = field(default_factory=list)
    ious: list[float] = field(default_factory=list)
    clicks: list[int] = field(default_factory=list)
    interactions: list[int] = field(default_factory=list)


def aggregate_rounds(rounds: Sequence[Sequence[Prompt]], upto: int | None = None) -> list[Prompt]:
    """Prompts of rounds 1..``upto`` (all by default) as one list, for models without multi-round support."""
    chosen = rounds if upto is None else rounds[:upto]
    return [p for r in chosen for p in r]


class UserSimulator:
    """Simulated user of a protocol ("box", "click", "scribble", "text", "mix").

    ``clicks_per_round`` (3) and ``scribbles_per_round`` (2) per correcting round;
    ``threshold`` binarises alphas for the error regions; ``scribble_radius`` fixes the
    brush (default: 40 % of the region's depth, between 1 and 4 px).
    """

    def __init__(
        self,
        protocol: str | ProtocolSpec = "click",
        seed: int = 0,
        rounds: int = 5,
        clicks_per_round: int = 3,
        scribbles_per_round: int = 2,
        threshold: float = 0.5,
        scribble_radius: float | None = None,
    ):
        self.protocol = get_protocol(protocol)
        self.seed = int(seed)
        self.rounds = int(rounds)
        self.clicks_per_round = clicks_per_round
        self.scribbles_per_round = scribbles_per_round
        self.threshold = threshold
        self.scribble_radius = scribble_radius

    def _rng(self, round_index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(round_index)])

    def correction_kind(self, round_index: int) -> str | None:
        """ "click", "scribble" or None (no corrections) for a 0-based round."""
        if round_index == 0 and not self.protocol.correct_first_round:
            return None
        if self.protocol.corrections == "random":
            return "click" if self._rng(round_index).random() < 0.5 else "scribble"
        return self.protocol.corrections

    def round_prompts(
        self,
        round_index: int,
        gt: np.ndarray,
        previous: np.ndarray | None = None,
        text: str | None = None,
    ) -> list[Prompt]:
        """Prompts of round ``round_index`` (0-based) for target ``gt`` [H, W] given the
        ``previous`` prediction [H, W] (None before any). ``text`` describes the target; the
        text and mix protocols need it."""
        prompts: list[Prompt] = []
        if round_index == 0:
            for kind in self.protocol.first_round:
                if kind == "box":
                    box = gt_box(gt)
                    if box is not None:
                        prompts.append(box)
                elif kind == "text":
                    if not text:
                        raise ValueError(f"protocol {self.protocol.name!r} needs the target's text")
                    prompts.append(TextPrompt(text=text))
        kind = self.correction_kind(round_index)
        if kind is not None:
            prompts.extend(self.corrections(round_index, gt, previous, kind))
        return prompts

    def corrections(
        self, round_index: int, gt: np.ndarray, previous: np.ndarray | None, kind: str
    ) -> list[ClickPrompt | ScribblePrompt]:
        """``clicks_per_round`` clicks or ``scribbles_per_round`` scribbles in the largest errors."""
        rng = self._rng(round_index)
        # Draw the mix choice first so that the stream is the same whichever kind is used.
        rng.random()
        fn, fp = _errors(previous, gt, self.threshold)
        count = self.clicks_per_round if kind == "click" else self.scribbles_per_round
        out: list[ClickPrompt | ScribblePrompt] = []
        for _ in range(count):
            remaining = _components(fn, "fg", 1) + _components(fp, "bg", 1)
            if not remaining:
                break
            region = max(remaining, key=lambda r: r.area)
            target = fn if region.label == "fg" else fp
            if kind == "click":
                x, y, depth = deepest_point(region.mask, rng)
                out.append(ClickPrompt(x=float(x), y=float(y), label=region.label))
                cv2.circle(_view_u8(target), (x, y), max(round(depth), 1), 0, -1)
            else:
                points, radius = place_scribble(region.mask, self.scribble_radius, rng)
                out.append(ScribblePrompt(points=points, label=region.label, radius=radius))
                depth = float(_distance(region.mask).max())
                band = np.zeros(gt.shape, np.uint8)
                pts = np.round(np.array(points)).astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(band, [pts], False, 1, max(round(2 * (depth + radius)), 1))
                cv2.circle(band, tuple(int(v) for v in pts[0, 0]), max(round(depth + radius), 1), 1, -1)
                target &= band == 0
        return out

    def simulate(
        self,
        gt: np.ndarray,
        predict: Callable[[list[Prompt], int], np.ndarray],
        text: str | None = None,
        multi_round: bool = True,
    ) -> SimulationResult:
        """Run all rounds against a model.

        ``predict(prompts, round_index)`` returns the alpha [H, W] after a round. With
        ``multi_round`` it receives only that round's new prompts (the model keeps the
        session); otherwise it receives rounds 1..t aggregated.
        """
        result = SimulationResult()
        previous: np.ndarray | None = None
        clicks = interactions = 0
        for r in range(self.rounds):
            prompts = self.round_prompts(r, gt, previous, text)
            result.rounds.append(prompts)
            model_input = prompts if multi_round else aggregate_rounds(result.rounds)
            previous = np.asarray(predict(model_input, r))
            result.predictions.append(previous)
            result.ious.append(iou(previous, gt, self.threshold))
            clicks += sum(isinstance(p, ClickPrompt) for p in prompts)
            interactions += len(prompts)
            result.clicks.append(clicks)
            result.interactions.append(interactions)
        return result


def _view_u8(mask: np.ndarray) -> np.ndarray:
    """A uint8 view of a bool array, so OpenCV can draw into it in place."""
    return mask.view(np.uint8)
