"""Cost of a corrective round's two weight-free steps at 1 MP and 12 MP (``python -m bench.corrections``).

Every corrective round of a multi-round pipeline runs the progressive merge
(``service.engines.progressive_merge``) and then the mark-honouring correction
(``service.engines.marks``) on the photo's full-size matte. Side by side in one run, on real
COCO photos of ``../shared/evaldata`` enlarged to each size: a previous matte (the person's
mask dilated, so a ring around them is wrongly included), a new matte (the ring gone near a
background click, and a spurious blob far from it), and the round's click. Reports the median
milliseconds of each step and the merge's share of the two.

Then the mark honouring alone in the situations DFIMat's simulated user corrects (a box and a
foreground click on a missed rim or a missed half, a background click on a wrongly included
neighbour, three clicks on a shifted matte without a box), with its geodesic searches bounded
(as served) and searching every pixel of each region (``bounded_search=False``, the same mattes),
alternating call by call: median milliseconds of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from models.eval.error_mattes import corrective_clicks, erroneous_mattes
from models.eval.simulator import gt_box
from schemas.prompts import BoxPrompt, ClickPrompt, Prompt
from service.engines.marks import edge_costs, honour_marks
from service.engines.progressive_merge import merge_changes
from service.evaluation.samples import samples

SIZES = {"1 MP": 1_000_000, "12 MP": 12_000_000}
DATA = "../shared/evaldata/coco128seg_persons"


def cases(pixels: int, photos: int) -> list[tuple]:
    """(image, previous, new, prompts, new prompts, path costs) per photo, at ``pixels``."""
    out = []
    for sample in list(samples(DATA, max_instances=1))[:photos]:
        s = (pixels / (sample.image.shape[0] * sample.image.shape[1])) ** 0.5
        image = cv2.resize(sample.image, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
        truth = cv2.resize(sample.alpha, image.shape[1::-1], interpolation=cv2.INTER_LINEAR) >= 0.5
        ring = round(0.03 * max(image.shape[:2]))
        wrong = cv2.dilate(truth.astype(np.uint8), np.ones((2 * ring + 1, 2 * ring + 1), np.uint8)) > 0
        ys, xs = np.nonzero(wrong & ~truth)
        if len(ys) == 0:
            continue
        k = len(ys) // 2
        click = ClickPrompt(x=float(xs[k]), y=float(ys[k]), label="bg")
        previous = wrong.astype(np.float32)
        new = previous.copy()
        new[max(0, ys[k] - ring) : ys[k] + ring, max(0, xs[k] - ring) : xs[k] + ring] = 0.0
        h, w = image.shape[:2]
        cv2.circle(new, (w // 10, h // 10), max(2, h // 30), 1.0, -1)
        ty, tx = np.nonzero(truth)
        x0, y0, x1, y1 = (float(v) for v in (tx.min(), ty.min(), tx.max() + 1, ty.max() + 1))
        box = BoxPrompt(x0=x0, y0=y0, x1=x1, y1=y1)
        out.append((image, previous, new, [box, click], [click], edge_costs(image)))
    return out


def measure(pixels: int, photos: int, repeats: int) -> dict[str, float]:
    rows: dict[str, list[float]] = {"merge_ms": [], "marks_ms": []}
    for image, previous, new, prompts, new_prompts, costs in cases(pixels, photos):
        for _ in range(repeats):
            start = time.perf_counter()
            merged = merge_changes(previous, new, new_prompts)
            middle = time.perf_counter()
            honour_marks(image, merged, prompts, costs)
            end = time.perf_counter()
            rows["merge_ms"].append((middle - start) * 1000)
            rows["marks_ms"].append((end - middle) * 1000)
    out = {k: statistics.median(v) for k, v in rows.items()}
    out["merge_share"] = out["merge_ms"] / (out["merge_ms"] + out["marks_ms"])
    return out


def situations(
    pixels: int, photos: int
) -> dict[str, list[tuple[np.ndarray, np.ndarray, list[Prompt], np.ndarray]]]:
    """Situation name -> (image, matte, prompts, path costs) per photo, at ``pixels``: the
    person's mask with an error a simulated user corrects (``models.eval.error_mattes``), and
    the simulator's clicks on it."""
    out: dict[str, list[tuple[np.ndarray, np.ndarray, list[Prompt], np.ndarray]]] = {}
    for sample in list(samples(DATA, max_instances=1))[:photos]:
        s = (pixels / (sample.image.shape[0] * sample.image.shape[1])) ** 0.5
        image = cv2.resize(sample.image, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
        truth = cv2.resize(sample.alpha, image.shape[1::-1], interpolation=cv2.INTER_LINEAR) >= 0.5
        box = gt_box(truth)
        mattes = erroneous_mattes(truth, max(2, round(0.02 * max(image.shape[:2]))))
        costs = edge_costs(image)
        for name, error, with_box, count in (
            ("box + fg click, missed rim", "rim", True, 1),
            ("box + fg click, missed half", "missed half", True, 1),
            ("box + bg click, neighbour", "neighbour", True, 1),
            ("3 clicks, shifted matte, no box", "shifted", False, 3),
        ):
            clicks = corrective_clicks(mattes[error], truth, count)
            prompts = [box, *clicks] if with_box and box is not None else clicks
            out.setdefault(name, []).append((image, mattes[error], prompts, costs))
    return out


def measure_search(pixels: int, photos: int, repeats: int) -> dict[str, dict[str, float]]:
    """Situation -> median ms of the bounded and the everywhere searches, alternating."""
    out = {}
    for name, found in situations(pixels, photos).items():
        bounded, everywhere = [], []
        for image, matte, prompts, costs in found:
            for _ in range(repeats):
                for flag, times in ((True, bounded), (False, everywhere)):
                    start = time.perf_counter()
                    honour_marks(image, matte, prompts, costs, bounded_search=flag)
                    times.append((time.perf_counter() - start) * 1000)
        out[name] = {"bounded_ms": statistics.median(bounded), "everywhere_ms": statistics.median(everywhere)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("out/bench/corrections.json"))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    results = {label: measure(pixels, args.photos, args.repeats) for label, pixels in SIZES.items()}
    table = Table(title="a corrective round's weight-free steps (one thread, median ms)")
    for col in ("photo", "progressive merge", "mark honouring", "merge share"):
        table.add_column(col, justify="right")
    for label, r in results.items():
        table.add_row(label, f"{r['merge_ms']:.1f}", f"{r['marks_ms']:.1f}", f"{r['merge_share']:.0%}")
    console = Console()
    console.print(table)
    search = {label: measure_search(pixels, args.photos, args.repeats) for label, pixels in SIZES.items()}
    table = Table(
        title="mark honouring's geodesic searches: bounded (served) / everywhere (one thread, median ms)"
    )
    for col in ("photo", "situation", "bounded", "everywhere", "everywhere / bounded"):
        table.add_column(col, justify="right")
    for label, rows in search.items():
        for name, r in rows.items():
            ratio = r["everywhere_ms"] / r["bounded_ms"]
            table.add_row(label, name, f"{r['bounded_ms']:.1f}", f"{r['everywhere_ms']:.1f}", f"{ratio:.2f}x")
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**results, "search": search}, indent=2))


if __name__ == "__main__":
    main()
