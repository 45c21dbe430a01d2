"""A real Triton Inference Server on this machine, serving `triton_repo/` on CPU.

The `tritonserver` binary bundled with the PyPI package `nvidia-pytriton` has no libtorch
backend, only the Python backend. `repository` translates a libtorch model repository
into a Python-backend one (same model names, batching, inputs and outputs, the same
`model.pt` files), and `server` runs the bundled binary on it as a managed subprocess.
"""

from service.triton_local.cli import main
from service.triton_local.repository import (
    RepositoryError,
    TranslatedModel,
    build_python_repository,
    read_model_config,
    translate_config,
)
from service.triton_local.server import (
    TritonLocalError,
    TritonLocalServer,
    default_cache_dir,
    find_tritonserver,
    parse_model_metrics,
    stub_python_bin,
)

__all__ = [
    "RepositoryError",
    "TranslatedModel",
    "TritonLocalError",
    "TritonLocalServer",
    "build_python_repository",
    "default_cache_dir",
    "find_tritonserver",
    "main",
    "parse_model_metrics",
    "read_model_config",
    "stub_python_bin",
    "translate_config",
]
