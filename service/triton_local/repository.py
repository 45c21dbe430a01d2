"""Translate a libtorch Triton model repository into one the bundled Python backend can run.

For every model of the source repository (`<model>/config.pbtxt` + `<model>/<version>/model.pt`)
the target repository gets:

- `<model>/config.pbtxt`: the original `ModelConfig` with the same name, `max_batch_size`,
  `dynamic_batching`, inputs and outputs (names, data types, dims, reshape), `parameters`,
  `model_warmup` and version policy, but `backend: "python"` instead of the libtorch
  platform and CPU instance groups instead of GPU ones;
- `<model>/<version>/model.py`: the generic TorchScript runner `torchscript_model.py`;
- `<model>/<version>/model.pt`: a symlink to the original TorchScript file (never a copy);
- `<model>/warmup`: a symlink to the original warmup data directory, if there is one.

Ensemble configurations are copied unchanged and Python-backend models are linked as they
are; any other platform is refused with a `RepositoryError`, since the bundled server has
no backend for it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

CONFIG_FILE = "config.pbtxt"
LIBTORCH_PLATFORM = "pytorch_libtorch"
LIBTORCH_BACKEND = "pytorch"
DEFAULT_TORCHSCRIPT_FILE = "model.pt"
RUNNER_SOURCE = Path(__file__).with_name("torchscript_model.py")


class RepositoryError(ValueError):
    """A model repository that cannot be served by the bundled Triton server."""


@dataclass(frozen=True)
class TranslatedModel:
    """One model of the translated repository and where its files came from."""

    name: str
    kind: str  # "torchscript", "python" or "ensemble"
    source_dir: Path
    versions: tuple[int, ...]
    config: mc.ModelConfig


def read_model_config(path: Path) -> mc.ModelConfig:
    """Parse a `config.pbtxt` file into Triton's `ModelConfig` protobuf."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise RepositoryError(f"cannot read model configuration {path}: {exc}") from exc
    try:
        return text_format.Parse(text, mc.ModelConfig())
    except text_format.ParseError as exc:
        raise RepositoryError(f"{path} is not a valid Triton ModelConfig: {exc}") from exc


def is_libtorch(config: mc.ModelConfig) -> bool:
    """Whether a configuration is served by Triton's PyTorch (libtorch) backend."""
    return config.platform == LIBTORCH_PLATFORM or config.backend == LIBTORCH_BACKEND


def translate_config(config: mc.ModelConfig, *, instance_count: int | None = None) -> mc.ModelConfig:
    """Return the Python-backend equivalent of a libtorch model configuration.

    Everything the clients and the dynamic batcher see is kept; what only makes sense for
    the libtorch backend on a GPU (platform, model file name, GPU placement, accelerator
    settings) is replaced. `instance_count`, when given, overrides the number of instances
    of every instance group (each Python-backend instance is a process of its own).
    """
    out = mc.ModelConfig()
    out.CopyFrom(config)
    out.ClearField("platform")
    out.backend = "python"
    out.ClearField("default_model_filename")
    out.ClearField("cc_model_filenames")
    out.ClearField("optimization")
    out.ClearField("instance_group")
    groups = list(config.instance_group) or [mc.ModelInstanceGroup(count=1)]
    for group in groups:
        cpu_group = out.instance_group.add()
        if group.name:
            cpu_group.name = group.name
        cpu_group.kind = mc.ModelInstanceGroup.KIND_CPU
        count = instance_count if instance_count is not None else group.count
        cpu_group.count = max(1, count)
        if group.HasField("rate_limiter"):
            cpu_group.rate_limiter.CopyFrom(group.rate_limiter)
    return out


def _version_dirs(model_dir: Path) -> list[Path]:
    """The numeric version subdirectories of a model directory, in version order."""
    dirs = [p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(dirs, key=lambda p: int(p.name))


def _check_tensors(name: str, config: mc.ModelConfig) -> None:
    """Refuse configurations whose tensors the TorchScript runner cannot serve."""
    if not config.input or not config.output:
        raise RepositoryError(f"model {name!r}: the configuration must list its inputs and outputs")
    for tensor in [*config.input, *config.output]:
        if tensor.data_type in (mc.TYPE_INVALID, mc.TYPE_STRING, mc.TYPE_BF16):
            dtype = mc.DataType.Name(tensor.data_type)
            raise RepositoryError(f"model {name!r}: tensor {tensor.name!r} has unsupported data type {dtype}")


def _write_config(path: Path, config: mc.ModelConfig) -> None:
    """Write a `ModelConfig` as protobuf text."""
    path.write_text(text_format.MessageToString(config))


def _translate_model(model_dir: Path, target: Path, instance_count: int | None) -> TranslatedModel:
    """Translate one model directory of the source repository into `target`."""
    name = model_dir.name
    config = read_model_config(model_dir / CONFIG_FILE)
    if config.name and config.name != name:
        raise RepositoryError(
            f"model directory {model_dir} holds a configuration named {config.name!r}; "
            "Triton requires the name to match the directory"
        )
    config.name = name
    target_dir = target / name

    if config.platform == "ensemble":
        target_dir.mkdir()
        _write_config(target_dir / CONFIG_FILE, config)
        return TranslatedModel(name, "ensemble", model_dir, (), config)

    if config.backend == "python":
        target_dir.symlink_to(model_dir.resolve(), target_is_directory=True)
        versions = tuple(int(p.name) for p in _version_dirs(model_dir))
        return TranslatedModel(name, "python", model_dir, versions, config)

    if not is_libtorch(config):
        kind = config.platform or config.backend or "(no platform or backend)"
        raise RepositoryError(
            f"model {name!r} uses {kind!r}; the bundled Triton server runs only libtorch models "
            "(through its Python backend), Python-backend models and ensembles"
        )
    _check_tensors(name, config)
    filename = config.default_model_filename or DEFAULT_TORCHSCRIPT_FILE
    versions = [v for v in _version_dirs(model_dir) if (v / filename).is_file()]
    if not versions:
        raise RepositoryError(f"model {name!r}: no version directory in {model_dir} holds {filename!r}")

    target_dir.mkdir()
    for version in versions:
        version_dir = target_dir / version.name
        version_dir.mkdir()
        shutil.copyfile(RUNNER_SOURCE, version_dir / "model.py")
        (version_dir / DEFAULT_TORCHSCRIPT_FILE).symlink_to((version / filename).resolve())
    if (model_dir / "warmup").is_dir():
        (target_dir / "warmup").symlink_to((model_dir / "warmup").resolve(), target_is_directory=True)
    translated = translate_config(config, instance_count=instance_count)
    _write_config(target_dir / CONFIG_FILE, translated)
    return TranslatedModel(name, "torchscript", model_dir, tuple(int(v.name) for v in versions), translated)


def build_python_repository(
    source: Path, target: Path, *, instance_count: int | None = None
) -> list[TranslatedModel]:
    """Build in `target` (emptied first) a Python-backend repository equivalent to `source`.

    Every subdirectory of `source` with a `config.pbtxt` is a model; other entries are
    ignored, as Triton would. Raises `RepositoryError` naming the model at fault when any
    model cannot be translated, or when there is no model at all.
    """
    source = Path(source)
    if not source.is_dir():
        raise RepositoryError(f"model repository {source} does not exist or is not a directory")
    model_dirs = sorted(p for p in source.iterdir() if p.is_dir() and (p / CONFIG_FILE).is_file())
    if not model_dirs:
        raise RepositoryError(f"model repository {source} has no model (no <model>/{CONFIG_FILE})")
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    return [_translate_model(model_dir, target, instance_count) for model_dir in model_dirs]
