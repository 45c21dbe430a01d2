"""SMat (official ViT-S/14 layout, automatic vs prompted mode) and MRN (PRM inside the graph)."""

from __future__ import annotations

import torch

from models.mrn import build_mrn
from models.smat import build_smat

SMALL = 64


def test_smat_paper_preset_layout() -> None:
    with torch.device("meta"):
        model = build_smat("paper")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {
        "backbone.cls_token": (1, 1, 384),
        "backbone.pos_embed": (1, 1370, 384),
        "backbone.mask_token": (1, 384),
        "backbone.patch_embed.proj.weight": (384, 3, 14, 14),
        "backbone.blocks.11.attn.qkv.weight": (1152, 384),
        "backbone.blocks.0.ls1.gamma": (384,),
        "backbone.blocks.0.mlp.fc1.weight": (1536, 384),
        "backbone.norm.weight": (384,),
        "prompt_cross_attn.layers.0.self_attn.in_proj_weight": (1152, 384),
        "prompt_cross_attn.layers.0.multihead_attn.out_proj.weight": (384, 384),
        "prompt_cross_attn.layers.0.linear1.weight": (2048, 384),
        "prompt_cross_attn.layers.0.norm3.weight": (384,),
        "decoder.convstream.convs.0.conv.weight": (48, 3, 3, 3),
        "decoder.convstream.convs.2.bn.running_mean": (192,),
        "decoder.fusion_blks.0.conv.conv.weight": (256, 577, 3, 3),
        "decoder.fusion_blks.1.conv.conv.weight": (128, 352, 3, 3),
        "decoder.fusion_blks.2.conv.conv.weight": (64, 176, 3, 3),
        "decoder.fusion_blks.3.conv.conv.weight": (32, 67, 3, 3),
        "decoder.matting_head.matting_convs.0.weight": (16, 32, 3, 3),
        "decoder.matting_head.matting_convs.3.weight": (1, 16, 1, 1),
    }
    for key, shape in expected.items():
        assert shapes.get(key) == shape, key


def test_smat_uses_the_class_token_only_without_a_prompt() -> None:
    model = build_smat("tiny").eval()
    image = torch.rand(1, 3, SMALL, SMALL)
    prompt = torch.zeros(1, 1, SMALL, SMALL)
    with torch.no_grad():
        tokens, cls = model.encode(image)
        auto = model.decode(image, tokens, cls, prompt)["alpha"]
        auto_other = model.decode(image, tokens, cls + 1.0, prompt)["alpha"]
        prompt[..., 10:30, 10:30] = 1.0
        inter = model.decode(image, tokens, cls, prompt)["alpha"]
        inter_other = model.decode(image, tokens, cls + 1.0, prompt)["alpha"]
    assert not torch.allclose(auto, auto_other)
    torch.testing.assert_close(inter, inter_other)
    assert not torch.allclose(auto, inter)


def test_smat_patch14_pads_and_crops() -> None:
    from models.smat import SMat, SMatConfig

    cfg = SMatConfig(img_size=56, patch_size=14, embed_dim=32, depth=1, num_heads=2, prompt_ffn=32)
    model = SMat(cfg).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, SMALL, SMALL), torch.zeros(2, 1, SMALL, SMALL))
    assert out["alpha"].shape == (2, 1, SMALL, SMALL)
    assert out["similarity"].shape == (2, 1, 5, 5)  # ceil(64 / 14)


def test_mrn_applies_prm_and_binarises_the_mask() -> None:
    model = build_mrn("tiny").eval()
    image = torch.rand(2, 3, SMALL, SMALL)
    mask = torch.zeros(2, 1, SMALL, SMALL)
    mask[..., 8:40, 12:50] = 0.8
    with torch.no_grad():
        out = model(image, mask)
        again = model(image, (mask >= 0.5).float())
    torch.testing.assert_close(out["alpha"], again["alpha"])
    torch.testing.assert_close(out["alpha"], model.prm(out["alpha_os1"], out["alpha_os4"], out["alpha_os8"]))
    assert out["alpha"].min() >= 0 and out["alpha"].max() <= 1


def test_the_prompt_channel_layout_starts_as_the_same_function() -> None:
    """``with_prompt_channel``: weights without the prompt channel, laid out with it (new input
    channels zero), compute the same alpha; the official layouts never have the channel."""
    from dataclasses import replace

    from models.smat import PRESETS, SMat, with_prompt_channel

    assert PRESETS["tiny"].prompt_channel
    assert not any(PRESETS[p].prompt_channel for p in ("paper", "parity"))
    torch.manual_seed(0)
    plain = SMat(replace(PRESETS["tiny"], img_size=64, prompt_channel=False)).eval()
    widened = SMat(replace(PRESETS["tiny"], img_size=64)).eval()
    widened.load_state_dict(with_prompt_channel(plain.state_dict()))
    image, prompt = torch.rand(2, 3, 64, 64), torch.zeros(2, 1, 64, 64)
    prompt[0, :, 10:50, 20:40] = 1.0
    with torch.no_grad():
        # The same function; the convolution kernels may sum a different number of input channels
        # in a different order (seen on AMD EPYC: 6e-8 apart, one float32 ulp at 0.6).
        torch.testing.assert_close(
            plain(image, prompt)["alpha"], widened(image, prompt)["alpha"], rtol=0, atol=1e-6
        )
        # Once trained, the channel matters: the prompt changes the decoder's input directly.
        widened.decoder.convstream.convs[0].conv.weight[:, 3].fill_(1.0)
        assert (plain(image, prompt)["alpha"] - widened(image, prompt)["alpha"]).abs().max() > 1e-3
