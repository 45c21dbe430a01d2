"""Translation of a libtorch model repository into a Python-backend one (no server needed)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from service.triton_local import RepositoryError, build_python_repository, read_model_config, translate_config
from service.triton_local.repository import RUNNER_SOURCE


def _copy(repo: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the tiny repository."""
    return Path(shutil.copytree(repo, tmp_path / "source", symlinks=True))


def test_translated_config_keeps_what_clients_and_the_batcher_see(tiny_repo: Path) -> None:
    original = read_model_config(tiny_repo / "pair" / "config.pbtxt")
    translated = translate_config(original)

    assert translated.backend == "python"
    assert translated.platform == ""
    assert translated.name == "pair"
    assert translated.max_batch_size == 8
    assert translated.dynamic_batching == original.dynamic_batching
    assert list(translated.dynamic_batching.preferred_batch_size) == [4, 8]
    assert translated.dynamic_batching.max_queue_delay_microseconds == 100000
    assert list(translated.input) == list(original.input)
    assert list(translated.output) == list(original.output)
    assert [i.name for i in translated.input] == ["image__0", "mask__1"]
    assert translated.parameters["letterbox"].string_value == "32"
    assert [(g.kind, g.count, list(g.gpus)) for g in translated.instance_group] == [
        (mc.ModelInstanceGroup.KIND_CPU, 1, [])
    ]


def test_instance_groups_become_cpu_groups_with_their_count(tiny_repo: Path) -> None:
    original = read_model_config(tiny_repo / "affine" / "config.pbtxt")

    kept = translate_config(original)
    overridden = translate_config(original, instance_count=1)

    assert [(g.kind, g.count, list(g.gpus)) for g in kept.instance_group] == [
        (mc.ModelInstanceGroup.KIND_CPU, 2, [])
    ]
    assert [g.count for g in overridden.instance_group] == [1]
    assert kept.model_warmup == original.model_warmup


def test_translation_without_instance_group_or_with_model_filename() -> None:
    config = mc.ModelConfig(name="m", platform="pytorch_libtorch", default_model_filename="weights.pt")

    translated = translate_config(config)

    assert translated.default_model_filename == ""
    assert [(g.kind, g.count) for g in translated.instance_group] == [(mc.ModelInstanceGroup.KIND_CPU, 1)]


def test_built_repository_links_the_original_torchscript_files(tiny_repo: Path, tmp_path: Path) -> None:
    target = tmp_path / "translated"

    models = build_python_repository(tiny_repo, target)

    assert [(m.name, m.kind, m.versions) for m in models] == [
        ("affine", "torchscript", (1,)),
        ("pair", "torchscript", (1,)),
    ]
    for name in ("pair", "affine"):
        model_pt = target / name / "1" / "model.pt"
        assert model_pt.is_symlink()
        assert model_pt.resolve() == (tiny_repo / name / "1" / "model.pt").resolve()
        assert (target / name / "1" / "model.py").read_text() == RUNNER_SOURCE.read_text()
        config = read_model_config(target / name / "config.pbtxt")
        assert config.backend == "python"
        assert config.name == name


def test_rebuilding_replaces_the_previous_translation(tiny_repo: Path, tmp_path: Path) -> None:
    target = tmp_path / "translated"
    build_python_repository(tiny_repo, target)
    (target / "stale").mkdir()

    build_python_repository(tiny_repo, target)

    assert sorted(p.name for p in target.iterdir()) == ["affine", "pair"]


def test_warmup_data_directory_and_ensembles_are_carried_over(tiny_repo: Path, tmp_path: Path) -> None:
    source = _copy(tiny_repo, tmp_path)
    (source / "pair" / "warmup").mkdir()
    (source / "pair" / "warmup" / "image").write_bytes(b"\0" * 16)
    (source / "both").mkdir()
    (source / "both" / "config.pbtxt").write_text(
        'name: "both" platform: "ensemble" max_batch_size: 8 '
        'input [ { name: "x" data_type: TYPE_FP32 dims: [4] } ] '
        'output [ { name: "y" data_type: TYPE_FP32 dims: [4] } ]'
    )
    target = tmp_path / "translated"

    models = build_python_repository(source, target)

    assert (target / "pair" / "warmup").resolve() == (source / "pair" / "warmup").resolve()
    assert {m.name: m.kind for m in models}["both"] == "ensemble"
    assert read_model_config(target / "both" / "config.pbtxt").platform == "ensemble"


def _edit_pair_config(repo: Path, old: str, new: str) -> None:
    """Replace text in the `pair` model's configuration."""
    path = repo / "pair" / "config.pbtxt"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda repo: shutil.rmtree(repo), "does not exist"),
        (lambda repo: [shutil.rmtree(p) for p in repo.iterdir()], "has no model"),
        (
            lambda repo: (repo / "pair" / "config.pbtxt").write_text("name: 'pair' max_batch_size: [oops"),
            "pair",
        ),
        (lambda repo: _edit_pair_config(repo, "pytorch_libtorch", "onnxruntime_onnx"), "onnxruntime_onnx"),
        (lambda repo: _edit_pair_config(repo, 'name: "pair"', 'name: "other"'), "'other'"),
        (lambda repo: (repo / "pair" / "1" / "model.pt").unlink(), "model 'pair': no version directory"),
        (lambda repo: _edit_pair_config(repo, "TYPE_FP32 dims: [8]", "TYPE_STRING dims: [8]"), "TYPE_STRING"),
    ],
    ids=["missing", "empty", "unparsable", "platform", "name", "no-model-file", "string-tensor"],
)
def test_bad_repositories_are_refused_with_a_clear_error(
    tiny_repo: Path, tmp_path: Path, damage: object, message: str
) -> None:
    source = _copy(tiny_repo, tmp_path)
    damage(source)  # type: ignore[operator]

    with pytest.raises(RepositoryError, match=message):
        build_python_repository(source, tmp_path / "translated")


def test_repository_built_from_scratch_in_a_fresh_directory(
    tmp_path: Path, repo_factory: Callable[[Path], Path]
) -> None:
    repo = repo_factory(tmp_path / "fresh")

    models = build_python_repository(repo, tmp_path / "out")

    assert {m.name for m in models} == {"pair", "affine"}
