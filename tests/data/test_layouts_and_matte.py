import cv2
import numpy as np
import pytest
import torch

from models.data.dataset import SceneDataset, SyntheticMattingDataset, collate_scenes, letterbox_scene
from models.data.layouts import HIM2KFolder, SingleInstanceFolder, open_folder, read_alpha
from models.data.mask_to_matte import adaptive_omega, mask_to_matte, mask_to_trimap, masks_to_mattes


def _write_rgb(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img[..., ::-1])


def _write_alpha(path, alpha):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.round(alpha * 255).astype(np.uint8))


@pytest.fixture()
def him2k(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "HIM2K"
    for subset, name, k in (("comp", "a", 2), ("natural", "b", 1)):
        img = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
        _write_rgb(root / "images" / subset / f"{name}.jpg", img)
        for i in range(k):
            alpha = np.zeros((40, 60), np.float32)
            alpha[5:35, 5 + 25 * i : 25 + 25 * i] = 1.0
            alpha[5:35, 25 + 25 * i] = 0.5
            _write_alpha(root / "alphas" / subset / name / f"{i:02d}.png", alpha)
    return root


def test_him2k_loader(him2k):
    data = HIM2KFolder(him2k)
    assert len(data) == 2
    scene = data[0]
    assert scene.name == "comp/a" and scene.image.shape == (40, 60, 3)
    assert scene.alphas.shape == (2, 40, 60) and scene.alphas.dtype == np.float32
    assert scene.alphas[0, 10, 10] == 1.0 and abs(scene.alphas[0, 10, 25] - 128 / 255) < 1e-6
    assert scene.descriptions[0].startswith("the person on the left")
    assert scene.descriptions[1].startswith("the person on the right")
    assert scene.depth is None
    assert len(HIM2KFolder(him2k, subset="natural")) == 1
    assert isinstance(open_folder(him2k), HIM2KFolder)


def test_single_instance_loader(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("x", "y"):
        _write_rgb(tmp_path / "image" / f"{name}.png", rng.integers(0, 255, (30, 20, 3), dtype=np.uint8))
        _write_alpha(tmp_path / "alpha" / f"{name}.png", np.full((30, 20), 0.25, np.float32))
    _write_rgb(tmp_path / "image" / "no_alpha.png", np.zeros((30, 20, 3), np.uint8))
    data = SingleInstanceFolder(tmp_path)
    assert len(data) == 2
    scene = data[1]
    assert scene.name == "y" and scene.alphas.shape == (1, 30, 20)
    assert np.allclose(scene.alphas, 64 / 255)
    assert isinstance(open_folder(tmp_path), SingleInstanceFolder)


def test_read_alpha_16bit_and_rgba(tmp_path):
    a16 = np.full((4, 4), 65535 // 2, np.uint16)
    cv2.imwrite(str(tmp_path / "a16.png"), a16)
    assert np.allclose(read_alpha(tmp_path / "a16.png"), 0.5, atol=1e-4)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 255
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    assert np.allclose(read_alpha(tmp_path / "rgba.png"), 1.0)


def test_mask_size_mismatch_is_an_error(tmp_path):
    _write_rgb(tmp_path / "images" / "a.png", np.zeros((10, 10, 3), np.uint8))
    _write_alpha(tmp_path / "alphas" / "a" / "00.png", np.zeros((5, 5), np.float32))
    with pytest.raises(ValueError, match="does not match"):
        HIM2KFolder(tmp_path)[0]


def _soft_disc(size=64, radius=18):
    yy, xx = np.mgrid[0:size, 0:size]
    d = np.hypot(xx - size / 2, yy - size / 2)
    alpha = np.clip((radius + 2 - d) / 4, 0, 1)
    fg, bg = np.array([0.9, 0.2, 0.1]), np.array([0.1, 0.3, 0.8])
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return image, alpha, d


def test_adaptive_omega():
    assert adaptive_omega(1200) == 11  # sqrt(100) = 10 -> odd
    assert adaptive_omega(0) == 3
    assert adaptive_omega(1e6, max_omega=31) == 31


def test_mask_to_trimap_bands():
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    tri = mask_to_trimap(mask, omega=9)
    assert tri[32, 32] == 255 and tri[0, 0] == 0 and tri[16, 32] == 128 and tri[14, 32] == 128
    assert set(np.unique(tri)) == {0, 128, 255}


def test_mask_to_matte_soft_near_edge_hard_far_away():
    image, alpha_true, dist = _soft_disc()
    mask = alpha_true > 0.5
    alpha = mask_to_matte((image * 255).astype(np.uint8), mask)
    assert alpha.shape == mask.shape and alpha.dtype == np.float32
    assert alpha.min() >= 0 and alpha.max() <= 1
    assert np.all(alpha[dist < 8] == 1.0) and np.all(alpha[dist > 30] == 0.0)
    edge = np.abs(dist - 18) < 1.5  # the true ramp runs from d = 16 to 20
    assert ((alpha[edge] > 0.05) & (alpha[edge] < 0.95)).mean() > 0.5
    assert np.abs(alpha - alpha_true).mean() < 0.02


def test_masks_to_mattes_are_exclusive():
    image, alpha_true, _ = _soft_disc()
    masks = np.stack([alpha_true > 0.5, alpha_true > 0.5])
    out = masks_to_mattes(image, masks)
    assert out.shape == (2, 64, 64) and out.sum(axis=0).max() <= 1 + 1e-6


def test_synthetic_dataset_items_are_deterministic_and_collate():
    ds = SyntheticMattingDataset(seed=5, length=4, size=96)
    a, b = ds[1], SyntheticMattingDataset(seed=5, length=4, size=96)[1]
    assert torch.equal(a["image"], b["image"]) and a["target"] == b["target"]
    assert a["image"].shape == (3, 96, 96) and a["image"].max() <= 1
    assert a["alphas"].shape[0] == a["num_instances"] == len(a["descriptions"])
    assert torch.equal(a["target_alpha"][0], a["alphas"][a["target"]])
    batch = collate_scenes([ds[0], ds[1]])
    k = batch["alphas"].shape[1]
    assert batch["image"].shape == (2, 3, 96, 96) and batch["instance_mask"].shape == (2, k)
    assert batch["instance_mask"].sum() == batch["num_instances"].sum()
    with pytest.raises(IndexError):
        ds[4]


def test_scene_dataset_letterboxes(him2k):
    ds = SceneDataset(HIM2KFolder(him2k), size=32)
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["alphas"].shape == (2, 32, 32)
    box = letterbox_scene(HIM2KFolder(him2k)[0], 30)
    assert box.image[25:].max() == 0  # 40x60 -> 20x30, padded below
