"""Loaders for matting data on disk, returning the same :class:`~models.data.synthetic.Scene`.

Two layouts are understood:

* Multi-instance (HIM2K and alike): ``root/images/[<subset>/]<name>.<ext>`` and one alpha per
  instance in ``root/alphas/[<subset>/]<name>/<k>.png`` (e.g. ``00.png``, ``01.png``; sorted
  numerically when the names are numbers, else by name). HIM2K itself has the subsets ``comp``
  and ``natural``; a flat layout without subsets works too, and so do the other folder names
  below (``image/<id>.jpg`` + ``alpha/<id>/<k>.png``, as in the COCO persons set).
* Single instance (image matting, e.g. AIM-500, P3M, PPM-100 style): an image folder and an
  alpha folder side by side under ``root`` with matching file stems. The folder names are
  detected from common ones (``images``/``image``/``original``/``blurred_image``/``img`` and
  ``alphas``/``alpha``/``mask``/``matte``/``gt``) or given explicitly.

A photo without any alpha (no alpha file, or no instance folder or an empty one) is no item:
its name is in the loader's ``skipped``, so that callers can report it. Alphas are read as
stored (8- or 16-bit, gray or the first channel / the alpha channel of RGBA) and scaled to
[0, 1]. Descriptions are built from the pixels
(:func:`models.data.descriptions.measure_attributes`), since files carry no attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from models.data.descriptions import describe_instances, measure_attributes
from models.data.synthetic import Scene

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
IMAGE_DIRS = ("images", "image", "original", "blurred_image", "img", "imgs", "merged", "input")
ALPHA_DIRS = ("alphas", "alpha", "mask", "masks", "matte", "mattes", "gt", "GT")


def read_image(path: str | Path) -> np.ndarray:
    """An image file as uint8 RGB [H, W, 3]."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return np.ascontiguousarray(img[..., ::-1])


def read_alpha(path: str | Path) -> np.ndarray:
    """An alpha matte file as float32 [H, W] in [0, 1] (8/16-bit; gray, BGR or BGRA)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f"cannot read alpha {path}")
    if raw.ndim == 3:
        raw = raw[..., 3] if raw.shape[2] == 4 else raw[..., 0]
    scale = 65535.0 if raw.dtype == np.uint16 else 255.0 if raw.dtype == np.uint8 else 1.0
    return np.clip(raw.astype(np.float32) / scale, 0.0, 1.0)


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def _instance_order(path: Path) -> tuple[int, int | str]:
    return (0, int(path.stem)) if path.stem.isdigit() else (1, path.stem)


def _scene(image: np.ndarray, alphas: list[np.ndarray], name: str, describe: bool) -> Scene:
    h, w = image.shape[:2]
    for a in alphas:
        if a.shape != (h, w):
            raise ValueError(f"{name}: alpha of shape {a.shape} does not match image of shape {(h, w)}")
    stack = np.stack(alphas).astype(np.float32) if alphas else np.zeros((0, h, w), np.float32)
    attrs = measure_attributes(image, stack) if describe else []
    texts = describe_instances(attrs) if describe else ["" for _ in alphas]
    return Scene(
        image=image,
        alphas=stack,
        descriptions=texts,
        is_human=np.ones(len(alphas), bool),
        attributes=attrs,
        depth=None,
        name=name,
    )


class HIM2KFolder(Sequence[Scene]):
    """Multi-instance folder (HIM2K layout by default); ``subset`` (e.g. "comp", "natural")
    restricts to one subfolder; ``image_dir``/``alpha_dir`` name the two folders. Photos without
    an alpha are not items; their names are in ``skipped``."""

    def __init__(
        self,
        root: str | Path,
        subset: str | None = None,
        describe: bool = True,
        image_dir: str = "images",
        alpha_dir: str = "alphas",
    ):
        self.root = Path(root)
        images = self.root / image_dir
        alphas = self.root / alpha_dir
        if not images.is_dir() or not alphas.is_dir():
            raise FileNotFoundError(
                f"{self.root} lacks {image_dir}/ and {alpha_dir}/ (multi-instance layout)"
            )
        if subset is not None:
            images, alphas = images / subset, alphas / subset
        self.describe = describe
        self.items: list[tuple[Path, list[Path], str]] = []
        self.skipped: list[str] = []
        for img in _images_under(images):
            rel = img.relative_to(images).with_suffix("")
            inst_dir = alphas / rel
            inst = sorted(_images_under(inst_dir), key=_instance_order) if inst_dir.is_dir() else []
            if inst:
                self.items.append((img, inst, str(rel)))
            else:
                self.skipped.append(str(rel))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Scene:  # type: ignore[override]
        img_path, alpha_paths, name = self.items[index]
        image = read_image(img_path)
        return _scene(image, [read_alpha(p) for p in alpha_paths], name, self.describe)

    def alpha_paths(self, index: int) -> list[Path]:
        """The alpha files of item ``index``, one per instance (readable without its photo)."""
        return list(self.items[index][1])


def _pick_dir(root: Path, names: tuple[str, ...], given: str | None) -> Path:
    if given is not None:
        path = root / given
        if not path.is_dir():
            raise FileNotFoundError(path)
        return path
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(f"{root}: none of the folders {', '.join(names)}")


class SingleInstanceFolder(Sequence[Scene]):
    """Image folder + alpha folder with matching stems; each item is a one-instance Scene. Photos
    without an alpha are not items; their names are in ``skipped``."""

    def __init__(
        self,
        root: str | Path,
        image_dir: str | None = None,
        alpha_dir: str | None = None,
        describe: bool = True,
    ):
        self.root = Path(root)
        self.image_dir = _pick_dir(self.root, IMAGE_DIRS, image_dir)
        self.alpha_dir = _pick_dir(self.root, ALPHA_DIRS, alpha_dir)
        self.describe = describe
        alphas = {p.relative_to(self.alpha_dir).with_suffix(""): p for p in _images_under(self.alpha_dir)}
        self.items: list[tuple[Path, Path, str]] = []
        self.skipped: list[str] = []
        for img in _images_under(self.image_dir):
            rel = img.relative_to(self.image_dir).with_suffix("")
            if rel in alphas:
                self.items.append((img, alphas[rel], str(rel)))
            else:
                self.skipped.append(str(rel))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Scene:  # type: ignore[override]
        img_path, alpha_path, name = self.items[index]
        return _scene(read_image(img_path), [read_alpha(alpha_path)], name, self.describe)

    def alpha_paths(self, index: int) -> list[Path]:
        """The alpha file of item ``index``, as a list like :meth:`HIM2KFolder.alpha_paths`."""
        return [self.items[index][1]]


def open_folder(root: str | Path, **kwargs) -> HIM2KFolder | SingleInstanceFolder:
    """The loader for ``root``: multi-instance when its alpha folder holds per-image folders
    (HIM2K's ``images/`` + ``alphas/``, or any of the image/alpha folder names), else single."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    image_dir = kwargs.pop("image_dir", None) or next((n for n in IMAGE_DIRS if (root / n).is_dir()), None)
    alpha_dir = kwargs.pop("alpha_dir", None) or next((n for n in ALPHA_DIRS if (root / n).is_dir()), None)
    if image_dir is None or alpha_dir is None:
        raise FileNotFoundError(
            f"{root}: no image folder ({', '.join(IMAGE_DIRS)}) and alpha folder ({', '.join(ALPHA_DIRS)})"
        )
    alphas = root / alpha_dir
    if any(p.is_dir() for p in alphas.iterdir()):
        return HIM2KFolder(root, image_dir=image_dir, alpha_dir=alpha_dir, **kwargs)
    return SingleInstanceFolder(root, image_dir=image_dir, alpha_dir=alpha_dir, **kwargs)
