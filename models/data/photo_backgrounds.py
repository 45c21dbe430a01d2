"""Real background photographs without people, from free packages, for compositing training scenes.

The catalogue lists photographs (artwork, renders and photos showing people filtered out by
eye from contact sheets) with where they come from and their licence. They are found where
the packages install them; nothing is downloaded:

* Debian ``lomiri-wallpapers`` (``/usr/share/backgrounds/``; licence per file in its
  ``debian/copyright``), ``mate-backgrounds`` (``/usr/share/backgrounds/mate/nature/``, GPL-2+),
  ``plasma-workspace-wallpapers`` (``/usr/share/wallpapers/<name>/contents/images/``, GPL-2+);
  ``apt-get install lomiri-wallpapers mate-backgrounds plasma-workspace-wallpapers``.
* PyPI ``scikit-image`` (``skimage/data/``: CC0 / public domain sample photos) and
  ``scikit-learn`` (``sklearn/datasets/images/``: china.jpg and flower.jpg, CC BY 2.0).

:func:`available_backgrounds` returns the entries present on this machine; the trainer records
them (with licences) in the provenance of the weights it writes.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class BackgroundPhoto:
    """One catalogue entry: ``source`` (package), ``relpath`` inside its root, ``licence``."""

    source: str
    relpath: str
    licence: str


_LOMIRI = {
    "Bridge_by_Sander_Klootwijk.jpg": "CC-BY-SA-4.0 (Sander Klootwijk)",
    "Dragonfly_by_Bolly.jpg": "CC-BY-SA-4.0 (Bolly)",
    "Kleiber_by_Lukas_Baubkus.jpg": "CC-BY-SA-4.0 (Lukas Baubkus)",
    "Picture_0B_by_freespace.jpg": "CC-BY-4.0 (Trevor Freespace)",
    "Picture_1A_by_freespace.jpg": "CC-BY-4.0 (Trevor Freespace)",
    "Wine_by_Jakkub_Mede.jpg": "CC-BY-SA-4.0 (Jakkub Mede)",
    "aitzgorri_by_Aitzol_Berasategi.jpg": "CC-BY-4.0 (Aitzol Berasategi)",
    "free_by_Peter_Nerlich.jpg": "CC-BY-SA-4.0 (Peter Nerlich)",
    "friends_by_Aitzol_Berasategi.jpg": "CC-BY-4.0 (Aitzol Berasategi)",
    "greentock_by_Peter_Nerlich.jpg": "CC-BY-SA-4.0 (Peter Nerlich)",
    "life_by_Aitzol_Berasategi.jpg": "CC-BY-4.0 (Aitzol Berasategi)",
    "picosdeeuropa_by_Aitzol_Berasategi.jpg": "CC-BY-4.0 (Aitzol Berasategi)",
    "seeding_by_Clements_Engelhardt.jpg": "CC0-1.0 (Clemens Engelhardt)",
    "sunset_by_Aitzol_Berasategi.jpg": "CC-BY-4.0 (Aitzol Berasategi)",
}
_MATE = (
    "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops",
    "Storm", "TwoWings", "Wood", "YellowFlower",
)  # fmt: skip
_PLASMA = (
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
    "OneStandsOut", "Path", "Volna", "summer_1am",
)  # fmt: skip
_SKIMAGE = ("brick.png", "chelsea.png", "coffee.png", "coins.png", "grass.png", "gravel.png", "rocket.jpg")
_SKLEARN = ("china.jpg", "flower.jpg")

CATALOGUE: tuple[BackgroundPhoto, ...] = (
    *(BackgroundPhoto("lomiri-wallpapers", name, lic) for name, lic in _LOMIRI.items()),
    *(BackgroundPhoto("mate-backgrounds", f"mate/nature/{n}.jpg", "GPL-2+") for n in _MATE),
    *(BackgroundPhoto("plasma-workspace-wallpapers", n, "GPL-2+") for n in _PLASMA),
    *(BackgroundPhoto("scikit-image", n, "CC0 / public domain (skimage/data/README.txt)") for n in _SKIMAGE),
    *(BackgroundPhoto("scikit-learn", n, "CC BY 2.0 (sklearn/datasets/images/README.txt)") for n in _SKLEARN),
)


def _package_dir(module: str, sub: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / sub


def resolve(entry: BackgroundPhoto) -> Path | None:
    """The file of ``entry`` on this machine, or None when its package is not installed."""
    if entry.source in ("lomiri-wallpapers", "mate-backgrounds"):
        path: Path | None = Path("/usr/share/backgrounds") / entry.relpath
    elif entry.source == "plasma-workspace-wallpapers":
        folder = Path("/usr/share/wallpapers") / entry.relpath / "contents" / "images"
        files = sorted(folder.glob("*.*"), key=lambda p: p.stat().st_size) if folder.is_dir() else []
        # The smallest rendition that is at least 1280 wide keeps decoding cheap.
        wide = [p for p in files if p.stem.split("x")[0].isdigit() and int(p.stem.split("x")[0]) >= 1280]
        path = wide[0] if wide else (files[-1] if files else None)
    elif entry.source == "scikit-image":
        folder = _package_dir("skimage.data", "")
        path = None if folder is None else folder / entry.relpath
    else:
        folder = _package_dir("sklearn.datasets", "images")
        path = None if folder is None else folder / entry.relpath
    return path if path is not None and path.is_file() else None


def available_backgrounds() -> list[tuple[BackgroundPhoto, Path]]:
    """Catalogue entries whose files are installed here, in catalogue order."""
    found = []
    for entry in CATALOGUE:
        path = resolve(entry)
        if path is not None:
            found.append((entry, path))
    return found


def load_background(path: Path, long_side: int = 768) -> np.ndarray:
    """The photo at ``path`` as uint8 RGB, scaled down so its longer side is at most ``long_side``."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read background {path}")
    h, w = bgr.shape[:2]
    s = min(1.0, long_side / max(h, w))
    if s < 1.0:
        bgr = cv2.resize(bgr, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[..., ::-1])


def background_set(
    given: list[np.ndarray] | None = None,
) -> tuple[list[np.ndarray], list[dict[str, str]]]:
    """The background photos a compositor uses and what its provenance records about them:
    ``given`` ones (tests), else every catalogue photo installed here, loaded."""
    if given is not None:
        return given, [{"source": "given", "file": f"#{i}"} for i in range(len(given))]
    found = available_backgrounds()
    sources = [{"source": e.source, "file": e.relpath, "licence": e.licence} for e, _ in found]
    return [load_background(p) for _, p in found], sources


def background_crop(photo: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of ``photo`` (random scale 0.4–1.0 of the largest crop of aspect w/h,
    random flip) resized to ``h`` x ``w``: uint8 [h, w, 3]."""
    ph, pw = photo.shape[:2]
    aspect = w / h
    ch = ph if pw / ph >= aspect else pw / aspect
    scale = rng.uniform(0.4, 1.0)
    ch = max(8, int(ch * scale))
    cw = max(8, min(pw, int(ch * aspect)))
    ch = min(ph, ch)
    y0 = int(rng.integers(0, ph - ch + 1))
    x0 = int(rng.integers(0, pw - cw + 1))
    crop = photo[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    interp = cv2.INTER_AREA if ch > h else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=interp)
