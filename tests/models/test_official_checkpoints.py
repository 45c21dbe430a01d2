"""The papers' released checkpoints: import and output parity with the official code.

The fixtures under ``tests/fixtures/official/`` were made by ``generate.py`` there from the
official repositories (nowsyn/InstMatt @ 5845dee, yucornetto/MGMatting @ 2bac93f) at the
``parity`` preset (every width / 8, two blocks a layer), seeded random weights, saved the way
the official trainers save them; the official forwards and ``infer.py`` produced the expected
outputs. Here ``matteserve import-checkpoint`` imports those files and our networks — eager
and exported to TorchScript — must reproduce the official outputs.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from models.checkpoint_import import (
    CheckpointError,
    build_official,
    import_checkpoint,
    load_imported,
    official_to_ours,
    read_container,
)
from models.common.prm import ProgressiveRefinement
from models.export import export_official
from models.official.instmatt import (
    instmatt_alphas,
    instmatt_inference,
    likely_duplicates,
    prepare_instmatt,
    refine_instances,
    refine_windows,
    refiner_window_size,
)
from models.official.mgmatting import prepare_mgmatting
from models.semat.contract import semat_frame
from models.smat import prepare_smat
from service.cli import app
from tests.fixtures.official.files import CHECKPOINTS, FIXTURES
from tests.fixtures.official.scenes import refiner_inputs

MANIFESTS = {
    "mgmatting": ("mgmatting", "paper"),
    "instmatt": ("instmatt", "paper"),
    "smat": ("smat", "paper"),
    "semat": ("semat_sam", "paper"),
    "semat-hq": ("semat_hq_sam", "paper_hq"),
    "semat-sam2": ("semat_sam2", "paper_sam2"),
}
ATOL = 1e-4


def npz(path: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / path) as data:
        return {k: data[k] for k in data}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both fixtures imported through the CLI, as a user would."""
    out = tmp_path_factory.mktemp("weights")
    runner = CliRunner()
    paths = {}
    for family, checkpoint in CHECKPOINTS.items():
        result = runner.invoke(
            app,
            [
                "import-checkpoint",
                family,
                str(checkpoint),
                "--variant",
                "parity",
                "--preset",
                "parity",
                "--out-dir",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        paths[family] = out / f"{family}-parity.pt"
    return paths


@pytest.fixture(scope="module")
def exported(imported: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    for weights in imported.values():
        export_official(repo, weights)
    return repo


def scripted(repo: Path, name: str) -> torch.jit.ScriptModule:
    return torch.jit.load(str(repo / name / "1" / "model.pt")).eval()


def test_import_writes_the_weights_and_their_provenance(imported: dict[str, Path]) -> None:
    for family, weights in imported.items():
        record = json.loads(weights.with_suffix(".json").read_text())
        source = CHECKPOINTS[family]
        assert record["family"] == family and record["preset"] == "parity"
        assert record["source_file"] == source.name
        assert record["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
        assert record["official_repository"].startswith("https://github.com/")
        assert record["licence"]
        if family in ("mgmatting", "instmatt"):
            assert "fold spectral norm" in " ".join(record["transformations"])
        assert record["lora_merged"] == (family == "semat")
        state = torch.load(weights, weights_only=True)
        assert not any(k.startswith("module.") or "weight_bar" in k for k in state)


def test_mgmatting_matches_the_official_forward_and_inference(
    imported: dict[str, Path], exported: Path
) -> None:
    case = npz("mgmatting/infer.npz")
    model, _ = load_imported(imported["mgmatting"])
    rgb = cv2.cvtColor(case["image_bgr"], cv2.COLOR_BGR2RGB)
    image, guidance = prepare_mgmatting(rgb, case["mask"])
    # Our pre-processing is the official one, tensor for tensor.
    np.testing.assert_array_equal(image.numpy(), case["image"])
    np.testing.assert_array_equal(guidance.numpy(), case["guidance"])
    with torch.no_grad():
        os1, os4, os8, _ = model(image, guidance)
    for name, ours in (("alpha_os1", os1), ("alpha_os4", os4), ("alpha_os8", os8)):
        np.testing.assert_allclose(ours.numpy(), case[name], atol=ATOL, err_msg=name)
    # PRM sees both certain and uncertain pixels, so the fixture exercises its selection.
    region = ProgressiveRefinement().refine(os1, os4, os8)[1]
    assert 0.05 < float(region.float().mean()) < 0.95
    h, w = case["mask"].shape
    with torch.no_grad():
        for alpha in (
            ProgressiveRefinement()(os1, os4, os8),
            scripted(exported, "mgmatting")(image, guidance),
        ):
            final = (alpha[0, 0].numpy() * 255).astype(np.uint8)[32 : h + 32, 32 : w + 32]
            assert_uint8_close(final, case["alpha"])


def assert_uint8_close(ours: np.ndarray, official: np.ndarray) -> None:
    """uint8 alphas from float alphas equal to ~1e-4: truncation may move a value by one level."""
    assert ours.shape == official.shape
    diff = np.abs(ours.astype(np.int16) - official.astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_instmatt_generator_matches_the_official_forward(imported: dict[str, Path], exported: Path) -> None:
    case = npz("instmatt/forward.npz")
    model, _ = load_imported(imported["instmatt"])
    image, guidance = torch.from_numpy(case["image"]), torch.from_numpy(case["guidance"])
    with torch.no_grad():
        outputs = model(image, guidance)
        for name, ours in zip(("alpha_os1", "alpha_os4", "alpha_os8", "feature"), outputs, strict=True):
            np.testing.assert_allclose(ours.numpy(), case[name], atol=ATOL, err_msg=name)
        official = [torch.from_numpy(case[k]) for k in ("alpha_os1", "alpha_os4", "alpha_os8")]
        expected, region = ProgressiveRefinement().refine(*official)
        trimatte, traced_region, feature = scripted(exported, "instmatt_official")(image, guidance)
    np.testing.assert_allclose(trimatte.numpy(), expected.numpy(), atol=ATOL)
    np.testing.assert_array_equal(traced_region.numpy(), region.float().numpy())
    np.testing.assert_allclose(feature.numpy(), case["feature"], atol=ATOL)


@pytest.mark.parametrize("name", ["refiner_k15", "refiner_k3"])
def test_instmatt_refiner_matches_the_official_refiner(
    imported: dict[str, Path], exported: Path, name: str
) -> None:
    case = npz(f"instmatt/{name}.npz")
    model, _ = load_imported(imported["instmatt"])
    image, pred, feature = refiner_inputs(case["image_bgr"], case["masks"], channels=4)
    k, _, h, w = pred.shape
    if name == "refiner_k15":  # the fixture exercises the duplicate check and several windows
        flagged = likely_duplicates(pred[:, 0:1])
        assert 0 < int(flagged.sum()) < k
        distance = (1 - pred[:, 0:1].sum(0, keepdim=True) - pred[:, 2:3].mean(0, keepdim=True)).abs()
        assert len(refine_windows(distance, refiner_window_size(k, h, w))) > 1
    traced = scripted(exported, "instmatt_refiner")

    def exported_kernel(p: torch.Tensor, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return traced(p[None], f[None], x[None])[0]

    for kernel in (model.refiner, exported_kernel):
        refined = refine_instances(kernel, image, pred, feature)
        np.testing.assert_allclose(refined[:, 0].numpy(), case["refined_target"], atol=ATOL)
        assert float((refined - pred).abs().max()) > 0.1  # the refiner did change the mattes


@pytest.mark.parametrize("name", ["infer_k3", "infer_k10"])
def test_instmatt_inference_matches_official_infer(imported: dict[str, Path], name: str) -> None:
    """Pre-processing (incl. the max-side downscale for k10), PRM, refiner, post-processing."""
    case = npz(f"instmatt/{name}.npz")
    model, _ = load_imported(imported["instmatt"])
    rgb = cv2.cvtColor(case["image_bgr"], cv2.COLOR_BGR2RGB)
    inputs = prepare_instmatt(rgb, case["masks"].astype(np.float32) / 255.0, max_side=int(case["max_side"]))
    alphas = instmatt_alphas(instmatt_inference(model, inputs), inputs)
    official = np.moveaxis(case["alpha"], -1, 0)
    assert alphas.shape == official.shape
    for ours, theirs in zip(alphas, official, strict=True):
        assert_uint8_close(ours, theirs)


@pytest.mark.parametrize("name", ["auto", "box", "points", "box_h14"])
def test_smat_matches_the_official_forward(imported: dict[str, Path], exported: Path, name: str) -> None:
    """Automatic mode, a box, two 41-px click squares, and an image whose height is already a
    multiple of 14 (the official padding still adds 14)."""
    case = npz(f"smat/{name}.npz")
    model, _ = load_imported(imported["smat"])
    rgb = cv2.cvtColor(case["image_bgr"], cv2.COLOR_BGR2RGB)
    image, prompt = prepare_smat(rgb, case["prompt"])
    np.testing.assert_array_equal(image.numpy(), case["padded"])
    h, w = case["prompt"].shape
    with torch.no_grad():
        tokens, cls = model.backbone(image)
        np.testing.assert_allclose(cls.numpy(), case["class_token"], atol=ATOL)
        np.testing.assert_allclose(tokens.flatten(2).transpose(1, 2).numpy(), case["patch_tokens"], atol=ATOL)
        eager = model(
            torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float()[None] / 255.0, prompt[..., :h, :w]
        )
        encoder, decoder = (
            scripted(exported, "smat_official_encoder"),
            scripted(exported, "smat_official_decoder"),
        )
        traced_alpha, traced_sim = decoder(image, *encoder(image), prompt)
    for alpha, sim in ((eager["alpha"], eager["similarity"]), (traced_alpha[..., :h, :w], traced_sim)):
        np.testing.assert_allclose(alpha.numpy(), case["phas"], atol=ATOL)
        np.testing.assert_allclose(sim[0, 0].numpy(), case["sim"], atol=ATOL)
    assert float(eager["alpha"].std()) > 0.1  # the fixture's alpha is not flat


def import_semat_variant(out: Path, checkpoint: str, variant: str) -> tuple[Path, Path]:
    """A SEMat variant's fixture imported through the CLI (``--variant``) and exported."""
    args = ["import-checkpoint", "semat", str(FIXTURES / "semat" / checkpoint), "--variant", variant]
    result = CliRunner().invoke(app, [*args, "--preset", "parity", "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    weights = out / f"semat-{variant}.pt"
    export_official(out / "repo", weights)
    return weights, out / "repo"


@pytest.fixture(scope="module")
def semat_hq(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The HQ-SAM variant's fixture imported (variant ``hq-sam``) and exported."""
    return import_semat_variant(tmp_path_factory.mktemp("semat_hq"), "SEMat_HQ-SAM.pth", "hq-sam")


@pytest.fixture(scope="module")
def semat_sam2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The SAM2 variant's fixture imported (variant ``sam2``) and exported."""
    return import_semat_variant(tmp_path_factory.mktemp("semat_sam2"), "SEMat_SAM2.pth", "sam2")


# case prefix -> (checkpoint, the reduced preset it was made at)
SEMAT_VARIANTS = {
    "": ("SEMat_SAM.pth", "parity"),
    "hq_": ("SEMat_HQ-SAM.pth", "parity_hq"),
    "sam2_": ("SEMat_SAM2.pth", "parity_sam2"),
}


@pytest.mark.parametrize(
    "name", ["landscape", "portrait", "hq_landscape", "hq_portrait", "sam2_landscape", "sam2_portrait"]
)
def test_semat_matches_the_official_forward(
    imported: dict[str, Path],
    exported: Path,
    semat_hq: tuple[Path, Path],
    semat_sam2: tuple[Path, Path],
    name: str,
) -> None:
    """A landscape photo whose box is clipped at x = 0 and a portrait one whose box runs past the
    bottom edge, for the SAM, HQ-SAM and SAM2 variants; LoRA unmerged (as in the file), merged
    (as imported) and traced."""
    case = npz(f"semat/{name}.npz")
    prefix = name.rpartition("_")[0] + "_" if "_" in name else ""
    checkpoint, preset = SEMAT_VARIANTS[prefix]
    weights, repo = {"": (imported["semat"], exported), "hq_": semat_hq, "sam2_": semat_sam2}[prefix]
    frame = semat_frame(case["image_rgb"], 256)
    np.testing.assert_array_equal(
        frame.image, case["padded_rgb"].transpose(2, 0, 1).astype(np.float32) / 255.0
    )
    np.testing.assert_array_equal(frame.box(*case["box"]), case["bbox"][0].astype(np.float32))
    assert frame.resized == tuple(case["pad_hw"])
    unmerged = build_official("semat", preset).eval()
    unmerged.load_state_dict(
        official_to_ours("semat", read_container(FIXTURES / "semat" / checkpoint), unmerged, "fixture")
    )
    merged, record = load_imported(weights)
    assert record["preset"] == preset
    image, box = torch.from_numpy(frame.image)[None], torch.from_numpy(frame.box(*case["box"]))[None]
    with torch.no_grad():
        eager = [unmerged(image, box), merged(image, box)]
        results = [(o["alpha"], o["trimap_logits"]) for o in eager]
        wire = torch.from_numpy(case["padded_rgb"].transpose(2, 0, 1).copy())[None]  # uint8, as it travels
        results.append(tuple(scripted(repo, "semat")(wire, box)))
    for alpha, trimap in results:
        np.testing.assert_allclose(alpha.numpy(), case["alpha"], atol=ATOL)
        # The trimap logits reach ±12-14 (HQ-SAM: logits of two token heads summed); float32 sums
        # over the encoder differ by up to 1.5e-4 there (measured), so 2e-4; alpha stays within 1e-4.
        np.testing.assert_allclose(trimap.numpy(), case["trimap_logits"], atol=2 * ATOL)
    if prefix == "sam2_":  # the SAM token's own logits too (SAM 2's high-resolution upscaling)
        for out in eager:
            np.testing.assert_allclose(out["masks_sam"].numpy(), case["masks_sam"], atol=2 * ATOL)
    assert_uint8_close(np.uint8(frame.crop(results[-1][0][0, 0].numpy()) * 255), case["output_alpha"])


def test_semat_variants_and_training_only_keys(tmp_path: Path) -> None:
    state = read_container(CHECKPOINTS["semat"])
    state["sam_model.frozen_mask_decoder.iou_token.weight"] = torch.zeros(1, 32)  # training-only copy
    path = tmp_path / "SEMat_SAM.pth"
    torch.save({"model": state, "iteration": 1}, path)
    result = import_checkpoint("semat", path, "parity", "parity", tmp_path / "out")
    assert not any("frozen" in k for k in torch.load(result.weights, weights_only=True))
    with pytest.raises(CheckpointError, match=r"missing \(25\)"):  # a SAM-variant file is no HQ-SAM one
        import_checkpoint("semat", path, "hq-sam", "parity", tmp_path / "out")
    with pytest.raises(CheckpointError, match=r"missing \(\d+\)[\s\S]*unexpected \(\d+\)"):  # nor a SAM2 one
        import_checkpoint("semat", path, "sam2", "parity", tmp_path / "out")


def test_semat_sam2_import_drops_the_video_memory_modules(tmp_path: Path) -> None:
    """SAM 2's memory attention / encoder and object-pointer heads are in the file, never run for
    an image, and not in the imported weights; the file's transformer MLPs are renamed."""
    source = read_container(FIXTURES / "semat/SEMat_SAM2.pth")
    memory = [
        k for k in source if k.startswith(("sam_model.memory_", "sam_model.obj_ptr", "sam_model.mask_down"))
    ]
    assert memory and any(".mlp.layers.0." in k for k in source)
    result = import_checkpoint("semat", FIXTURES / "semat/SEMat_SAM2.pth", "sam2", "parity", tmp_path)
    imported = torch.load(result.weights, weights_only=True)
    assert not any("memory" in k or "obj_ptr" in k or "maskmem" in k for k in imported)
    assert not any("lora_" in k for k in imported)  # merged
    record = json.loads(result.provenance.read_text())
    assert record["preset"] == "parity_sam2" and "SEMat_SAM2.pth" in record["what"]


def random_state(manifest: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """A checkpoint-like state dict with the manifest's names and shapes (random where the import
    computes with the values: spectral norms; zeros elsewhere, so ViT-L stays cheap)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in manifest.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(1, dtype=torch.long)
        elif ".module.weight_" in name:
            state[name] = torch.randn(shape, generator=gen) * 0.01 + (
                1.0 if name.endswith("weight_u") else 0.0
            )
        else:
            state[name] = torch.zeros(shape)
    return state


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_the_full_size_official_key_manifest_imports_exactly_at_the_paper_preset(name: str) -> None:
    family = name.partition("-")[0]
    manifest_name, preset = MANIFESTS[name]
    manifest = json.loads((FIXTURES / "manifests" / f"{manifest_name}.json").read_text())
    model = build_official(family, preset)
    state = official_to_ours(family, random_state(manifest), model, "manifest")
    assert set(state) == set(model.state_dict())
    model.load_state_dict(state, strict=True)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("drop", "missing (3)"),
        ("extra", "unexpected (1)"),
        ("reshape", "mis-shaped (1)"),
    ],
)
def test_a_checkpoint_that_does_not_match_is_refused_listing_the_keys(
    tmp_path: Path, change: str, expected: str
) -> None:
    manifest = json.loads((FIXTURES / "manifests" / "mgmatting.json").read_text())
    state = random_state(manifest)
    if change == "drop":  # a spectral-normalised conv loses its whole weight
        for suffix in ("weight_bar", "weight_u", "weight_v"):
            del state[f"module.decoder.layer2.1.conv1.module.{suffix}"]
        state.pop("module.aspp.bn2.running_var")
        state.pop("module.aspp.bn2.running_mean")
    elif change == "extra":
        state["module.cross_head.0.weight"] = torch.zeros(32, 32, 3, 3)
    else:
        state["module.aspp.aspp1.weight"] = torch.zeros(256, 512, 3, 3)
    path = tmp_path / "MGMatting-DIM-100k.pth"
    torch.save({"iter": 1, "state_dict": state}, path)
    out = tmp_path / "out"
    with pytest.raises(CheckpointError) as info:
        import_checkpoint("mgmatting", path, out_dir=out)
    message = str(info.value)
    assert expected in message and "nothing was imported" in message
    named = {
        "drop": ["decoder.layer2.1.conv1.weight", "aspp.bn2.running_var"],
        "extra": ["cross_head.0.weight"],
        "reshape": ["aspp.aspp1.weight: file [256, 512, 3, 3], network [256, 512, 1, 1]"],
    }[change]
    assert all(n in message for n in named), message
    assert not out.exists() or not any(out.iterdir())  # never a partial import
    result = CliRunner().invoke(app, ["import-checkpoint", "mgmatting", str(path), "--out-dir", str(out)])
    assert result.exit_code == 2 and expected in result.output


class Payload:
    """Something a pickle can only restore by running code."""

    def __reduce__(self):
        return (print, ("this ran while loading",))


def test_containers_the_importer_reads_and_files_it_refuses(tmp_path: Path) -> None:
    tensors = {"a.weight": torch.ones(2)}
    for container in (tensors, {"state_dict": tensors, "iter": 3}, {"model": tensors, "iteration": 9}):
        torch.save(container, tmp_path / "c.pth")
        assert set(read_container(tmp_path / "c.pth")) == {"a.weight"}
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint at all")
    (tmp_path / "code.pth").write_bytes(pickle.dumps({"state_dict": Payload()}))
    torch.save({"optimizer": {"lr": 0.1}}, tmp_path / "empty.pth")
    for name, reason in (
        ("garbage.pth", "not a loadable checkpoint"),
        ("code.pth", "not a loadable checkpoint"),
        ("empty.pth", "found no state_dict"),
        ("missing.pth", "no such file"),
    ):
        with pytest.raises(CheckpointError, match=reason):
            read_container(tmp_path / name)
    with pytest.raises(CheckpointError, match="unknown family"):
        import_checkpoint("dfimat", tmp_path / "c.pth")


def test_export_refuses_weights_that_were_not_imported(tmp_path: Path) -> None:
    """``export --weights`` needs an imported file and its provenance beside it."""
    torch.save({"a.weight": torch.ones(1)}, tmp_path / "mgmatting-x.pt")
    args = ["export", "--repo", str(tmp_path / "repo"), "--weights", str(tmp_path / "mgmatting-x.pt")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "cannot export" in result.output
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())


def test_export_in_process_leaves_autograd_on(imported: dict[str, Path], tmp_path: Path) -> None:
    """The export command runs under no_grad, not by switching autograd off for the process
    (it did, and every later training step in the same process failed)."""
    args = ["export", "--repo", str(tmp_path / "repo"), "--weights", str(imported["mgmatting"])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert torch.is_grad_enabled()
    assert (tmp_path / "repo" / "mgmatting" / "1" / "model.pt").is_file()
