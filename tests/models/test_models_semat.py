"""SEMat: official (SAM ViT-L) parameter layout of the paper preset, box rasterisation, LoRA merge."""

from __future__ import annotations

import torch

from models.semat import PRESETS, SEMat, box_mask, build_semat, official_key

SMALL = 64

# Official key (after peft's wrapper prefix is stripped by official_key) -> shape, from
# official-models.md §3 (SEMat_SAM.pth, ViT-L, LoRA rank 16, 3 matting tokens).
PEFT = "sam_model.image_encoder.base_model.model."
OFFICIAL_SHAPES = {
    PEFT + "pos_embed": (1, 64, 64, 1024),
    PEFT + "patch_embed.proj.base_layer.weight": (1024, 3, 16, 16),
    PEFT + "patch_embed.proj.lora_A.default.weight": (16, 3, 16, 16),
    PEFT + "patch_embed.proj.lora_B.default.weight": (1024, 16, 1, 1),
    PEFT + "blocks.0.attn.qkv.base_layer.weight": (3072, 1024),
    PEFT + "blocks.0.attn.qkv.base_layer.bias": (3072,),
    PEFT + "blocks.0.attn.qkv.lora_A.default.weight": (16, 1024),
    PEFT + "blocks.0.attn.qkv.lora_B.default.weight": (3072, 16),
    PEFT + "blocks.23.attn.proj.base_layer.weight": (1024, 1024),
    PEFT + "blocks.23.attn.proj.lora_A.default.weight": (16, 1024),
    PEFT + "blocks.23.attn.proj.lora_B.default.weight": (1024, 16),
    PEFT + "blocks.0.attn.rel_pos_h": (27, 64),
    PEFT + "blocks.4.attn.rel_pos_w": (27, 64),
    PEFT + "blocks.5.attn.rel_pos_h": (127, 64),
    PEFT + "blocks.23.attn.rel_pos_w": (127, 64),
    PEFT + "blocks.11.mlp.lin1.weight": (4096, 1024),
    PEFT + "blocks.11.mlp.lin2.weight": (1024, 4096),
    PEFT + "blocks.7.norm1.weight": (1024,),
    PEFT + "neck.0.weight": (256, 1024, 1, 1),
    PEFT + "neck.1.weight": (256,),
    PEFT + "neck.2.weight": (256, 256, 3, 3),
    PEFT + "neck.3.bias": (256,),
    "sam_model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": (2, 128),
    "sam_model.prompt_encoder.point_embeddings.3.weight": (1, 256),
    "sam_model.prompt_encoder.not_a_point_embed.weight": (1, 256),
    "sam_model.prompt_encoder.no_mask_embed.weight": (1, 256),
    "sam_model.prompt_encoder.mask_downscaling.0.weight": (4, 1, 2, 2),
    "sam_model.prompt_encoder.mask_downscaling.3.weight": (16, 4, 2, 2),
    "sam_model.prompt_encoder.mask_downscaling.6.weight": (256, 16, 1, 1),
    "sam_model.mask_decoder.iou_token.weight": (1, 256),
    "sam_model.mask_decoder.mask_tokens.weight": (4, 256),
    "sam_model.mask_decoder.transformer.layers.0.self_attn.q_proj.weight": (256, 256),
    "sam_model.mask_decoder.transformer.layers.1.cross_attn_token_to_image.k_proj.weight": (128, 256),
    "sam_model.mask_decoder.transformer.layers.1.cross_attn_image_to_token.out_proj.weight": (256, 128),
    "sam_model.mask_decoder.transformer.layers.0.mlp.lin1.weight": (2048, 256),
    "sam_model.mask_decoder.transformer.layers.0.norm4.weight": (256,),
    "sam_model.mask_decoder.transformer.final_attn_token_to_image.v_proj.weight": (128, 256),
    "sam_model.mask_decoder.transformer.norm_final_attn.weight": (256,),
    "sam_model.mask_decoder.output_upscaling.0.weight": (256, 64, 2, 2),
    "sam_model.mask_decoder.output_upscaling.1.weight": (64,),
    "sam_model.mask_decoder.output_upscaling.3.weight": (64, 32, 2, 2),
    "sam_model.mask_decoder.output_hypernetworks_mlps.3.layers.2.weight": (32, 256),
    "sam_model.mask_decoder.iou_prediction_head.layers.2.weight": (4, 256),
    "sam_model.mask_decoder.matting_hf_token.weight": (3, 256),
    "sam_model.mask_decoder.matting_hf_mlp.layers.0.weight": (256, 256),
    "sam_model.mask_decoder.matting_hf_mlp.layers.2.weight": (32, 256),
    "sam_model.mask_decoder.matting_compress_vit_feat.0.weight": (1024, 256, 2, 2),
    "sam_model.mask_decoder.matting_compress_vit_feat.1.weight": (256,),
    "sam_model.mask_decoder.matting_compress_vit_feat.3.weight": (256, 32, 2, 2),
    "sam_model.mask_decoder.matting_embedding_encoder.0.weight": (256, 64, 2, 2),
    "sam_model.mask_decoder.matting_embedding_encoder.3.weight": (64, 32, 2, 2),
    "sam_model.mask_decoder.matting_embedding_maskfeature.0.weight": (64, 32, 3, 3),
    "sam_model.mask_decoder.matting_embedding_maskfeature.3.weight": (32, 64, 3, 3),
    "condition_layer.patch_embed.proj.weight": (1024, 4, 16, 16),
    "condition_layer.patch_embed.proj.bias": (1024,),
    "matting_decoder.big_kernel_process.0.weight": (16, 6, 13, 13),
    "matting_decoder.big_kernel_process.1.running_var": (16,),
    "matting_decoder.big_kernel_process.3.weight": (32, 16, 13, 13),
    "matting_decoder.big_kernel_process.4.weight": (32,),
    "matting_decoder.vit_feat_proj.3.weight": (256, 1024, 1, 1),
    "matting_decoder.vit_feat_proj.0.bias": (256,),
    "matting_decoder.vit_feat_aggregation.0.weight": (256, 1024, 3, 3),
    "matting_decoder.vit_feat_aggregation.1.weight": (256,),
    "matting_decoder.down_blks.0.basic_layer.0.0.weight": (32, 32, 5, 5),
    "matting_decoder.down_blks.1.basic_layer.0.0.weight": (64, 32, 5, 5),
    "matting_decoder.down_blks.3.basic_layer.2.3.weight": (256, 256, 5, 5),
    "matting_decoder.down_blks.3.basic_layer.2.4.weight": (256,),
    "matting_decoder.down_blks.2.res_layer.weight": (128, 64, 5, 5),
    "matting_decoder.mid_layer.0.weight": (256, 512, 1, 1),
    "matting_decoder.mid_layer.1.weight": (256,),
    "matting_decoder.up_blks.0.basic_layer.0.0.weight": (256, 128, 2, 2),
    "matting_decoder.up_blks.0.basic_layer.0.3.weight": (128, 128, 3, 3),
    "matting_decoder.up_blks.3.basic_layer.2.0.weight": (16, 16, 3, 3),
    "matting_decoder.up_blks.3.res_layer.weight": (16, 32, 3, 3),
    "matting_decoder.matting_head.weight": (1, 16, 3, 3),
    "matting_decoder.matting_head.bias": (1,),
}


def test_paper_preset_has_the_official_layout() -> None:
    with torch.device("meta"):
        model = build_semat("paper")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, shape in OFFICIAL_SHAPES.items():
        mapped = official_key(key)
        assert mapped in ours, key
        assert ours[mapped] == shape, (key, ours[mapped], shape)
    # No HQ-token modules in the SAM variant; frozen decoder copies are dropped on load.
    hq_only = (
        ".hf_token.",
        ".hf_mlp.",
        ".compress_vit_feat.",
        ".embedding_encoder.",
        ".embedding_maskfeature.",
    )
    assert not any(part in k for k in ours for part in hq_only)
    assert official_key("sam_model.frozen_mask_decoder.iou_token.weight") is None
    # Merging LoRA leaves SAM's plain names (what the exported encoder carries).
    with torch.device("meta"):
        merged = build_semat("paper").merge_lora()
    keys = set(merged.state_dict())
    assert "sam_model.image_encoder.blocks.0.attn.qkv.weight" in keys
    assert "sam_model.image_encoder.patch_embed.proj.weight" in keys
    assert not any("lora_" in k or "base_layer" in k for k in keys)


def test_box_mask_matches_the_official_half_open_rows_and_columns() -> None:
    boxes = torch.tensor([[2.7, 1.2, 6.9, 4.0], [0.0, 0.0, 8.0, 8.0]])
    m = box_mask(boxes, 8, 8)
    expected = torch.zeros(2, 1, 8, 8)
    expected[0, 0, 1:4, 2:6] = 1  # rows int(y0):int(y1), cols int(x0):int(x1)
    expected[1] = 1
    torch.testing.assert_close(m, expected)


def test_lora_merge_gives_identical_outputs() -> None:
    model = build_semat("tiny")
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    model.eval()
    image = torch.rand(2, 3, SMALL, SMALL)
    box = torch.tensor([[4.0, 6.0, 40.0, 50.0], [10.0, 3.0, 60.0, 33.0]])
    with torch.no_grad():
        before = model(image, box)
        model.merge_lora()
        after = model(image, box)
    for key in ("alpha", "trimap_logits"):
        torch.testing.assert_close(after[key], before[key], atol=1e-5, rtol=1e-5)


def test_box_changes_the_features() -> None:
    model = SEMat(PRESETS["tiny"]).eval()
    image = torch.rand(1, 3, SMALL, SMALL)
    with torch.no_grad():
        a = model(image, torch.tensor([[0.0, 0.0, 30.0, 30.0]]))["trimap_logits"]
        b = model(image, torch.tensor([[30.0, 30.0, 64.0, 64.0]]))["trimap_logits"]
    assert not torch.allclose(a, b)
