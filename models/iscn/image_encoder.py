"""ISCN image encoder: image -> S/16 semantic features and S/4 per-pixel mask features.

A light CNN gives strides 4/8/16 (``cfg.backbone``: MobileNetV2 blocks of ``stage_channels``,
or EfficientNet-Lite0's first blocks, initialised from ImageNet for training); a transformer
global encoder runs on the S/16 tokens so that every position sees the whole scene (the
"unified visual-semantic space" the prompts are sampled from); an FPN pixel decoder brings
the context back to S/4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.common.attention import TransformerEncoderLayer, sine_position_embedding
from models.common.efficientnet_lite import FEATURE_CHANNELS, EfficientNetLite0Features
from models.common.layers import InvertedResidual, conv_bn_act
from models.common.norm import ImageNormalizer
from models.iscn.config import ISCNConfig


class ISCNImageEncoder(nn.Module):
    """``image [B,3,S,S]`` in [0,1] -> ``features [B,dim,S/16,S/16]``, ``mask_features
    [B,mask_dim,S/4,S/4]``.
    """

    def __init__(self, cfg: ISCNConfig) -> None:
        super().__init__()
        self.normalize = ImageNormalizer()
        self.backbone: nn.Module | None = None
        if cfg.backbone == "efficientnet_lite0":
            self.backbone = EfficientNetLite0Features()
            channels = FEATURE_CHANNELS
        elif cfg.backbone == "mobilenetv2":
            # Stem and stages directly under the encoder: the names in the shipped weights.
            self.stem = conv_bn_act(3, cfg.stem_channels, 3, 2, act=nn.ReLU6)
            stages = []
            in_ch = cfg.stem_channels
            for out_ch, n in zip(cfg.stage_channels, cfg.stage_blocks, strict=True):
                blocks = [InvertedResidual(in_ch, out_ch, 2, cfg.expand)]
                blocks += [InvertedResidual(out_ch, out_ch, 1, cfg.expand) for _ in range(n - 1)]
                stages.append(nn.Sequential(*blocks))
                in_ch = out_ch
            self.stages = nn.ModuleList(stages)
            channels = cfg.stage_channels
        else:
            raise ValueError(f"unknown ISCN backbone {cfg.backbone!r}")
        self.input_proj = nn.Conv2d(channels[2], cfg.dim, 1)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(cfg.dim, cfg.heads) for _ in range(cfg.encoder_layers)
        )
        self.out_norm = nn.LayerNorm(cfg.dim)
        # FPN pixel decoder: S/16 -> S/8 -> S/4.
        self.top = nn.Conv2d(cfg.dim, cfg.mask_dim, 1)
        self.lateral8 = nn.Conv2d(channels[1], cfg.mask_dim, 1)
        self.lateral4 = nn.Conv2d(channels[0], cfg.mask_dim, 1)
        self.fuse8 = conv_bn_act(cfg.mask_dim, cfg.mask_dim, 3)
        self.fuse4 = conv_bn_act(cfg.mask_dim, cfg.mask_dim, 3)
        self.mask_out = nn.Conv2d(cfg.mask_dim, cfg.mask_dim, 1)
        self.dim = cfg.dim

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.normalize(image)
        if self.backbone is not None:
            c4, c8, c16 = self.backbone(x)
        else:
            c4 = self.stages[0](self.stem(x))
            c8 = self.stages[1](c4)
            c16 = self.stages[2](c8)
        f = self.input_proj(c16)
        b, c, h, w = f.shape
        pos = sine_position_embedding(h, w, c, f).flatten(2).transpose(1, 2)
        tokens = f.flatten(2).transpose(1, 2)
        for layer in self.layers:
            tokens = layer(tokens, pos)
        tokens = self.out_norm(tokens)
        features = tokens.transpose(1, 2).reshape(b, c, h, w)
        p = self.top(features)
        p = self.fuse8(self.lateral8(c8) + F.interpolate(p, scale_factor=2.0, mode="nearest"))
        p = self.fuse4(self.lateral4(c4) + F.interpolate(p, scale_factor=2.0, mode="nearest"))
        return features, self.mask_out(p)
