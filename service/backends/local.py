"""The ``local`` backend: the TorchScript files of ``triton_repo/`` run in-process on CPU.

Models load at start (they are small); inference runs in worker threads under the shared
capacity limiter, so CPU-bound work never blocks the event loop and at most
``MATTESERVE_INFERENCE_THREADS`` jobs compete for the cores.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import anyio
import numpy as np
import torch

from models.io_spec import to_wire
from service.backends.base import InferenceBackend, NetworkInfo
from service.errors import ModelNotReady

log = logging.getLogger(__name__)


class LocalBackend(InferenceBackend):
    name = "local"

    def __init__(
        self, repository: Path, networks: dict[str, NetworkInfo], limiter: anyio.CapacityLimiter, threads: int
    ) -> None:
        super().__init__(networks)
        self.repository = repository
        self.limiter = limiter
        self.threads = threads
        self.modules: dict[str, torch.jit.ScriptModule] = {}
        self.errors: dict[str, str] = {}

    async def start(self) -> None:
        await anyio.to_thread.run_sync(self._load_all)

    def _load_all(self) -> None:
        torch.set_num_threads(self.threads)
        for name in self.networks:
            path = self.repository / name / "1" / "model.pt"
            try:
                self.modules[name] = torch.jit.load(str(path), map_location="cpu").eval()
            except (RuntimeError, OSError, ValueError) as exc:
                self.errors[name] = f"{path} failed to load: {exc}"
                log.error("model %s failed to load: %s", name, exc)

    async def ready(self, model: str) -> bool:
        return model in self.modules

    async def _infer(
        self, model: str, inputs: dict[str, np.ndarray], outputs: Sequence[str] | None
    ) -> dict[str, np.ndarray]:
        module = self.modules.get(model)
        if module is None:
            reason = self.errors.get(model, f"model {model!r} is not in {self.repository}")
            log.warning("local backend cannot run %s: %s", model, reason)  # paths: log only
            raise ModelNotReady(
                f"Model {model!r} is not available on this server (it could not be loaded); "
                "the server log says why."
            )
        io = self.networks[model].io
        # Cached features are read-only (shared by a session's rounds); torch wants writable
        # arrays even though the graph never writes its inputs, so those few are copied.
        args = [
            torch.from_numpy(np.require(to_wire(spec, inputs[spec.base_name]), requirements="W"))
            for spec in io.inputs
        ]

        def run() -> dict[str, np.ndarray]:
            with torch.inference_mode():
                results = module(*args)
            if isinstance(results, torch.Tensor):
                results = (results,)
            return {
                t.base_name: out.numpy()
                for t, out in zip(io.outputs, results, strict=True)
                if outputs is None or t.base_name in outputs
            }

        return await anyio.to_thread.run_sync(run, limiter=self.limiter)

    async def health(self) -> dict[str, str]:
        if self.errors:
            return {"backend": "; ".join(self.errors.values())}
        return {"backend": "ok"}

    async def close(self) -> None:
        self.modules.clear()
