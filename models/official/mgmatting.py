"""MGMatting's generator in the official layout (parameter names of ``yucornetto/MGMatting``).

``encoder.`` is the ResNet-D-style ``res_shortcut_encoder_29`` (BasicBlock layers [3,4,4,2],
stem strides 2,1,2, five shortcut branches), ``aspp.`` the DeepLab ASPP, ``decoder.`` the
``res_shortcut_decoder_22`` (BasicBlock-up layers [2,3,3,2], LeakyReLU 0.2) with the three
``refine_OS{1,4,8}`` heads. InstMatt's matting network is the same generator with a 3-channel
guidance (target, others, background) and 3 output channels (``MGMattingConfig`` fields
``mask_channels``/``out_channels``); it also returns the full-resolution 32-channel feature
its refiner consumes.

Differences from the official modules, none of which changes a parameter or an output:

* the official convolutions are wrapped in a ``SpectralNorm`` module that stores
  ``weight_bar/u/v`` and divides by σ in every forward; here they are plain convolutions and
  the importer (``models/checkpoint_import.py``) folds ``weight_bar / σ`` once, so key
  ``x.module.weight_bar`` becomes ``x.weight``;
* ASPP's global branch is upsampled with ``F.interpolate`` (nearest) instead of a new
  ``nn.Upsample`` built in ``forward`` (scriptable);
* ``forward`` returns a tuple ``(os1, os4, os8, feature)`` instead of a dict.

Widths are configurable so parity fixtures can be built from the official code at a reduced
width (see ``tests/fixtures/official/README.md``); ``paper`` is the released configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.common.prm import ProgressiveRefinement
from models.official.contract import imagenet_normalise, pad_to_multiple_of_32


@dataclass(frozen=True)
class MGMattingConfig:
    """``stem``: the official literal 32 (stem, shortcut-0, OS1 feature and head widths);
    ``widths``: encoder layer widths (official 64, 128, 256, 512), mirrored by the decoder;
    ``aspp_mid``: ASPP branch width (official 256).
    """

    mask_channels: int = 1
    out_channels: int = 1
    stem: int = 32
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    aspp_mid: int = 256
    enc_blocks: tuple[int, int, int, int] = (3, 4, 4, 2)
    dec_blocks: tuple[int, int, int, int] = (2, 3, 3, 2)


PRESETS: dict[str, MGMattingConfig] = {
    "paper": MGMattingConfig(),
    # The parity fixtures' reduced configuration: every official width / 8, two blocks a layer.
    "parity": MGMattingConfig(
        stem=4, widths=(8, 16, 32, 64), aspp_mid=32, enc_blocks=(2, 2, 2, 2), dec_blocks=(2, 2, 2, 2)
    ),
}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class EncoderBlock(nn.Module):
    """ResNet BasicBlock (ReLU); ``downsample`` is AvgPool 2 + 1×1 conv + BN when strided."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1:
            self.downsample = nn.Sequential(
                nn.AvgPool2d(2, stride), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)
            )
        elif cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class DecoderBlock(nn.Module):
    """Up-BasicBlock (LeakyReLU 0.2): a stride-2 block opens with a 4×4 transposed conv and its
    identity is nearest ×2 + 1×1 conv + BN.
    """

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        if stride > 1:
            self.conv1: nn.Module = nn.ConvTranspose2d(cin, cin, 4, stride=2, padding=1, bias=False)
        else:
            self.conv1 = _conv3x3(cin, cin)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2 = _conv3x3(cin, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.upsample: nn.Module | None = None
        if stride != 1:
            self.upsample = nn.Sequential(
                nn.UpsamplingNearest2d(scale_factor=2),
                nn.Conv2d(cin, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            )
        elif cin != cout:
            self.upsample = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.bn1(self.conv1(x)), 0.2)
        out = self.bn2(self.conv2(out))
        identity = x if self.upsample is None else self.upsample(x)
        return F.leaky_relu(out + identity, 0.2)


def _layer(block: type[nn.Module], cin: int, cout: int, count: int, stride: int) -> nn.Sequential:
    if count == 0:
        return nn.Sequential(nn.Identity())
    return nn.Sequential(block(cin, cout, stride), *[block(cout, cout, 1) for _ in range(count - 1)])


def _shortcut(cin: int, cout: int) -> nn.Sequential:
    # Official order: conv, ReLU, BN, conv, ReLU, BN (indices 0..5 are the key names).
    return nn.Sequential(
        _conv3x3(cin, cout),
        nn.ReLU(),
        nn.BatchNorm2d(cout),
        _conv3x3(cout, cout),
        nn.ReLU(),
        nn.BatchNorm2d(cout),
    )


class ShortcutEncoder(nn.Module):
    """``[B, 3+mask, H, W]`` (H, W multiples of 32) -> bottleneck ``[B, w3, H/32, W/32]`` and the
    five shortcut features at strides 1, 2, 4, 8, 16.
    """

    def __init__(self, cfg: MGMattingConfig) -> None:
        super().__init__()
        stem, (w0, w1, w2, w3) = cfg.stem, cfg.widths
        cin = 3 + cfg.mask_channels
        self.conv1 = nn.Conv2d(cin, stem, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.conv2 = _conv3x3(stem, stem)
        self.bn2 = nn.BatchNorm2d(stem)
        self.conv3 = _conv3x3(stem, w0, stride=2)
        self.bn3 = nn.BatchNorm2d(w0)
        self.layer1 = _layer(EncoderBlock, w0, w0, cfg.enc_blocks[0], 1)
        self.layer2 = _layer(EncoderBlock, w0, w1, cfg.enc_blocks[1], 2)
        self.layer3 = _layer(EncoderBlock, w1, w2, cfg.enc_blocks[2], 2)
        self.layer_bottleneck = _layer(EncoderBlock, w2, w3, cfg.enc_blocks[3], 2)
        ins, outs = (cin, stem, w0, w1, w2), (stem, stem, w0, w1, w2)
        self.shortcut = nn.ModuleList([_shortcut(i, o) for i, o in zip(ins, outs, strict=True)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out = F.relu(self.bn1(self.conv1(x)))
        x1 = F.relu(self.bn2(self.conv2(out)))
        out = F.relu(self.bn3(self.conv3(x1)))
        x2 = self.layer1(out)
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        out = self.layer_bottleneck(x4)
        taps = [x, x1, x2, x3, x4]
        features = [branch(tap) for branch, tap in zip(self.shortcut, taps, strict=True)]
        return out, features


class ASPP(nn.Module):
    """DeepLab ASPP, dilations 1, 2, 4, 8 plus global pooling; ``[B,C,h,w]`` -> ``[B,C,h,w]``."""

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.aspp1 = nn.Conv2d(channels, mid, 1, bias=False)
        self.aspp2 = nn.Conv2d(channels, mid, 3, padding=2, dilation=2, bias=False)
        self.aspp3 = nn.Conv2d(channels, mid, 3, padding=4, dilation=4, bias=False)
        self.aspp4 = nn.Conv2d(channels, mid, 3, padding=8, dilation=8, bias=False)
        self.aspp5 = nn.Conv2d(channels, mid, 1, bias=False)
        self.aspp1_bn = nn.BatchNorm2d(mid)
        self.aspp2_bn = nn.BatchNorm2d(mid)
        self.aspp3_bn = nn.BatchNorm2d(mid)
        self.aspp4_bn = nn.BatchNorm2d(mid)
        self.aspp5_bn = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid * 5, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.relu(self.aspp1_bn(self.aspp1(x)))
        x2 = F.relu(self.aspp2_bn(self.aspp2(x)))
        x3 = F.relu(self.aspp3_bn(self.aspp3(x)))
        x4 = F.relu(self.aspp4_bn(self.aspp4(x)))
        x5 = F.relu(self.aspp5_bn(self.aspp5(F.adaptive_avg_pool2d(x, 1))))
        x5 = F.interpolate(x5, size=(x.shape[2], x.shape[3]), mode="nearest")
        return F.relu(self.bn2(self.conv2(torch.cat((x1, x2, x3, x4, x5), 1))))


def official_tanh_alpha(logits: torch.Tensor) -> torch.Tensor:
    """``(tanh(x) + 1) / 2`` computed as the official code does, so PRM's 1/255 thresholds see the
    same floats (``models.common.layers.tanh_alpha`` uses the equal but not bit-identical
    ``sigmoid(2x)``).
    """
    return (torch.tanh(logits) + 1.0) / 2.0


def _refine_head(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, hidden, 3, padding=1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.LeakyReLU(0.2),
        nn.Conv2d(hidden, cout, 3, padding=1),
    )


class ShortcutDecoder(nn.Module):
    """Bottleneck + shortcut features -> ``(os1, os4, os8, feature)``: three alphas
    ``[B,out,H,W]`` in [0,1] (``(tanh+1)/2``; OS4/OS8 bilinearly upsampled) and the OS1 feature
    ``[B,stem,H,W]``.
    """

    def __init__(self, cfg: MGMattingConfig) -> None:
        super().__init__()
        stem, (w0, w1, w2, w3) = cfg.stem, cfg.widths
        self.conv1 = nn.ConvTranspose2d(stem, stem, 4, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        top = w3 if cfg.dec_blocks[0] > 0 else w2
        self.layer1 = _layer(DecoderBlock, top, w2, cfg.dec_blocks[0], 2)
        self.layer2 = _layer(DecoderBlock, w2, w1, cfg.dec_blocks[1], 2)
        self.layer3 = _layer(DecoderBlock, w1, w0, cfg.dec_blocks[2], 2)
        self.layer4 = _layer(DecoderBlock, w0, stem, cfg.dec_blocks[3], 2)
        self.refine_OS1 = _refine_head(stem, stem, cfg.out_channels)
        self.refine_OS4 = _refine_head(w0, stem, cfg.out_channels)
        self.refine_OS8 = _refine_head(w1, stem, cfg.out_channels)

    def forward(
        self, x: torch.Tensor, shortcuts: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        fea1, fea2, fea3, fea4, fea5 = shortcuts[0], shortcuts[1], shortcuts[2], shortcuts[3], shortcuts[4]
        x = self.layer1(x) + fea5
        x = self.layer2(x) + fea4
        os8 = self.refine_OS8(x)
        x = self.layer3(x) + fea3
        os4 = self.refine_OS4(x)
        x = self.layer4(x) + fea2
        x = F.leaky_relu(self.bn1(self.conv1(x)), 0.2) + fea1
        os1 = self.refine_OS1(x)
        os4 = F.interpolate(os4, scale_factor=4.0, mode="bilinear", align_corners=False)
        os8 = F.interpolate(os8, scale_factor=8.0, mode="bilinear", align_corners=False)
        return official_tanh_alpha(os1), official_tanh_alpha(os4), official_tanh_alpha(os8), x


class MGMattingGenerator(nn.Module):
    """``forward(image, guidance)``: ImageNet-normalised RGB ``[B,3,H,W]`` and guidance
    ``[B,mask,H,W]`` (H, W multiples of 32) -> ``(os1, os4, os8, feature)`` as the decoder gives.
    """

    def __init__(self, cfg: MGMattingConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = ShortcutEncoder(cfg)
        self.aspp = ASPP(cfg.widths[3], cfg.aspp_mid)
        self.decoder = ShortcutDecoder(cfg)

    def forward(
        self, image: torch.Tensor, guidance: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        embedding, shortcuts = self.encoder(torch.cat((image, guidance), dim=1))
        return self.decoder(self.aspp(embedding), shortcuts)


def build_mgmatting(preset: str | MGMattingConfig = "paper") -> MGMattingGenerator:
    """MGMatting's generator at ``preset`` (or an explicit config)."""
    cfg = preset if isinstance(preset, MGMattingConfig) else PRESETS[preset]
    return MGMattingGenerator(cfg)


class MGMattingExport(nn.Module):
    """Exported ``mgmatting``: normalised image ``[B,3,H,W]`` + binary guidance ``[B,1,H,W]``
    (both padded) -> alpha ``[B,1,H,W]`` after PRM (ellipses 15 then 7, the official
    inference's ``self_refine_width // 2``)."""

    def __init__(self, model: MGMattingGenerator) -> None:
        super().__init__()
        self.model = model
        self.prm = ProgressiveRefinement()

    def forward(self, image: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        os1, os4, os8, _ = self.model(image, guidance)
        return self.prm(os1, os4, os8)


def prepare_mgmatting(
    image_rgb: np.ndarray, mask_u8: np.ndarray, threshold: int = 128
) -> tuple[torch.Tensor, torch.Tensor]:
    """Official ``generator_tensor_dict``: RGB uint8 ``[H,W,3]`` and a uint8 mask ``[H,W]`` ->
    normalised padded image ``[1,3,Hp,Wp]`` and guidance ``[1,1,Hp,Wp]`` (``mask >= threshold``;
    the official default 128 is for segmentation masks)."""
    guidance = pad_to_multiple_of_32((mask_u8 >= threshold).astype(np.float32))
    return imagenet_normalise(pad_to_multiple_of_32(image_rgb))[None], torch.from_numpy(guidance)[None, None]
