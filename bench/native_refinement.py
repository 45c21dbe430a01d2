"""Cost of the native-resolution band refinement at 1 MP and 12 MP (``python -m bench.native_refinement``).

A network's matte is emulated by the scene's true matte taken to 256 px (area) and softened
(Gaussian, sigma 0.8 px), the resolution the networks work at. Side by side in one run, per
photo size: the time to take it to the photo with the guided upsampling alone (what ships by
default) and with the band solved again at native resolution (``MATTESERVE_NATIVE_REFINEMENT``,
``service.engines.band_refinement``), their ratio, and both mattes' SAD / Grad against the true
matte (synthetic scenes: for debugging; the quality figures that count are the README's, on
``../shared/evaldata``). The refinement solves at most ``max_unknown`` band pixels, so a 12 MP
photo costs a bounded multiple of a 1 MP one.
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

from models.data.synthetic import SceneGenerator
from models.eval.metrics import grad, sad
from service.engines.band_refinement import BandRefinement, photo_matte

SIZES = {"1 MP": (864, 1152), "12 MP": (3000, 4000)}
NETWORK_SIDE = 256


def network_like(alpha: np.ndarray) -> np.ndarray:
    """The true matte at the networks' resolution (long side 256), softened like a network's."""
    h, w = alpha.shape
    s = NETWORK_SIDE / max(h, w)
    small = cv2.resize(alpha, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (3, 3), 0.8)


def measure(size: tuple[int, int], scenes: int, refinement: BandRefinement) -> dict[str, float]:
    generator = SceneGenerator(seed=777)
    rows: dict[str, list[float]] = {}
    for k in range(scenes):
        # Scenes are rendered at 1 MP and enlarged: the generator's cost at 12 MP is not the point.
        scene = generator.scene(k, size=SIZES["1 MP"])
        image = cv2.resize(scene.image, size[::-1], interpolation=cv2.INTER_CUBIC)
        truth = np.clip(cv2.resize(scene.alphas.sum(0), size[::-1], interpolation=cv2.INTER_CUBIC), 0, 1)
        small = network_like(truth)
        for name, how in (("guided", None), ("native", refinement)):
            start = time.perf_counter()
            alpha = photo_matte(small, image, how)
            rows.setdefault(f"{name}_ms", []).append((time.perf_counter() - start) * 1000)
            rows.setdefault(f"{name}_sad", []).append(sad(alpha, truth))
            rows.setdefault(f"{name}_grad", []).append(grad(alpha, truth))
            assert alpha.shape == truth.shape
    out = {k: statistics.median(v) if k.endswith("_ms") else float(np.mean(v)) for k, v in rows.items()}
    out["time_ratio"] = out["native_ms"] / out["guided_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("out/bench/native_refinement.json"))
    args = parser.parse_args()
    refinement = BandRefinement()
    results = {label: measure(size, args.scenes, refinement) for label, size in SIZES.items()}
    table = Table(title=f"native band refinement (max {refinement.max_unknown} band pixels)")
    for col in ("photo", "guided ms", "native ms", "ratio", "SAD guided/native", "Grad guided/native"):
        table.add_column(col, justify="right")
    for label, r in results.items():
        table.add_row(
            label,
            f"{r['guided_ms']:.0f}",
            f"{r['native_ms']:.0f}",
            f"{r['time_ratio']:.1f}x",
            f"{r['guided_sad']:.2f} / {r['native_sad']:.2f}",
            f"{r['guided_grad']:.2f} / {r['native_grad']:.2f}",
        )
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
