"""The interface every inference backend implements."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.export import read_repo
from models.io_spec import ModelIO, model_io
from service.errors import ApiError, ModelNotReady
from service.pixel_budget import lent_back

# The licence of the weights this project trains and ships (the project's own, see pyproject.toml).
OUR_WEIGHTS_LICENCE = (
    "Apache-2.0 (matteserve's weights; the training data's licences are in their provenance file)"
)


@dataclass(frozen=True)
class NetworkInfo:
    """What ``config.pbtxt`` says of an exported network, read without loading it."""

    name: str
    weights: str  # "trained" | "untrained" | "missing"
    input_size: int  # 0: native resolution (official-layout networks)
    preset: str
    origin: str = "ours"  # "ours" | "official"
    source: str | None = None  # official weights: "<file> (sha256 <hex>)"
    licence: str | None = None

    @property
    def trained(self) -> bool:
        return self.weights == "trained"

    @property
    def io(self) -> ModelIO:
        return model_io(self.name, self.input_size, self.preset)


def read_networks(repository: Path) -> dict[str, NetworkInfo]:
    """The networks of a model repository, from the ``matteserve_*`` parameters of their configs."""
    if not repository.is_dir():
        return {}
    infos = {}
    for name, params in read_repo(repository).items():
        source = params.get("source_file")
        infos[name] = NetworkInfo(
            name=name,
            weights=params.get("weights", "untrained"),
            input_size=int(params.get("input_size", 512)),
            preset=params.get("preset", "tiny"),
            origin=params.get("origin", "ours"),
            source=f"{source} (sha256 {params.get('source_sha256', '?')})" if source else None,
            licence=params.get(
                "licence", OUR_WEIGHTS_LICENCE if params.get("weights") == "trained" else None
            ),
        )
    return infos


class InferenceBackend(abc.ABC):
    """Runs exported networks by name on batched numpy inputs."""

    name: str

    def __init__(self, networks: dict[str, NetworkInfo]) -> None:
        self.networks = networks

    def network(self, name: str) -> NetworkInfo | None:
        return self.networks.get(name)

    async def infer(
        self, model: str, inputs: dict[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run ``model`` on ``inputs`` (base name -> array [B, *dims] of the io-spec dtype);
        return base name -> array [B, *dims] for the ``outputs`` asked for (base names; None:
        all), so a backend transfers only what the caller uses. Raises ``BackendUnavailable``
        when the backend cannot be reached and ``ModelNotReady`` when the model cannot run.

        The caller's photo pixels go back to the pixel budget for the call: a network's memory
        does not grow with the photo, and a stalled server must not queue every other request."""
        async with lent_back():
            return await self._infer(model, inputs, outputs)

    @abc.abstractmethod
    async def _infer(
        self, model: str, inputs: dict[str, np.ndarray], outputs: Sequence[str] | None
    ) -> dict[str, np.ndarray]:
        """:meth:`infer` itself, as each backend runs it."""

    @abc.abstractmethod
    async def ready(self, model: str) -> bool:
        """Whether ``model`` can run now."""

    async def unready_error(self, model: str) -> ApiError | None:
        """The error a call of ``model`` would meet now (``BackendUnavailable`` when the backend
        cannot be reached, ``ModelNotReady`` otherwise), or None when it is ready. The message
        is meant for API users: no addresses or paths."""
        if await self.ready(model):
            return None
        return ModelNotReady(f"Network {model!r} is not ready on the {self.name} backend; try again shortly.")

    async def health(self) -> dict[str, str]:
        """Named readiness checks for /readyz (``ok`` or a reason)."""
        return {}

    async def start(self) -> None:  # noqa: B027 - an optional hook
        """Connect or load; called once before serving."""

    async def close(self) -> None:  # noqa: B027 - an optional hook
        """Release connections and memory."""
