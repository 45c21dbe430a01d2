"""What pipelines built on exported networks share: backend calls, status, cached features."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from models.prompting import Letterbox
from schemas.system import ModelInfo, NetworkStatus
from service.backends import InferenceBackend
from service.engines.band_refinement import BandRefinement
from service.errors import ModelNotReady
from service.pipelines.base import FeatureCache, Pipeline, kept_array


def pack_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """Float arrays -> compact bytes for Redis: float16, zip-deflated (``np.savez_compressed``)."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, **{k: v.astype(np.float16) if v.dtype.kind == "f" else v for k, v in arrays.items()}
    )
    return buffer.getvalue()


def unpack_arrays(data: bytes, floats: type = np.float32) -> dict[str, np.ndarray]:
    """Inverse of ``pack_arrays``; floats come back as ``floats`` (float16: as packed, no copy)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {
            k: archive[k].astype(floats, copy=False) if archive[k].dtype.kind == "f" else archive[k]
            for k in archive
        }


def stability_score(alpha: np.ndarray, low: float = 0.4, high: float = 0.6) -> float:
    """How decided a matte is: IoU of (alpha > high) and (alpha > low), in [0, 1] (SAM's
    stability score on the matte). 1 means no pixel sits near the threshold."""
    loose = alpha > low
    union = int(loose.sum())
    return 1.0 if union == 0 else float((alpha > high).sum() / union)


def frame_guide(frame: np.ndarray, box: Letterbox) -> np.ndarray:
    """The guided upsampling's guide from a letterboxed frame [3, S, S] (``Letterbox.image``):
    (h, w, 3) float32, the photo inside the frame. The same values as ``upsampling.guide_at``
    computes from the photo (the same area filter and scaling), so the upsampling need not
    resize the photo a second time."""
    return np.ascontiguousarray(box.crop(frame).transpose(1, 2, 0))


class NetworkRunner:
    """Work that runs on exported networks through an inference backend."""

    networks: tuple[str, ...]

    def __init__(self, backend: InferenceBackend, refinement: BandRefinement | None = None) -> None:
        self.backend = backend
        self.refinement = refinement

    @property
    def size(self) -> int:
        """The fixed input size S the networks were exported at."""
        info = self.backend.network(self.networks[0])
        if info is None:
            raise ModelNotReady(f"Model {self.name!r} has no exported networks in the model repository.")
        return info.input_size

    @property
    def trained(self) -> bool:
        infos = [self.backend.network(n) for n in self.networks]
        return all(info is not None and info.trained for info in infos)

    async def ready(self) -> bool:
        for name in self.networks:
            if self.backend.network(name) is None or not await self.backend.ready(name):
                return False
        return True

    async def statuses(self) -> list[NetworkStatus]:
        """Readiness and weights of each network."""
        statuses = []
        for name in self.networks:
            network = self.backend.network(name)
            if network is None:
                statuses.append(NetworkStatus(name=name, ready=False, weights="missing"))
                continue
            statuses.append(
                NetworkStatus(
                    name=name,
                    ready=await self.backend.ready(name),
                    weights=network.weights,
                    preset=network.preset,
                    origin=network.origin,
                    source=network.source,
                    licence=network.licence,
                )
            )
        return statuses

    async def run(
        self, network: str, outputs: Sequence[str] | None = None, **inputs: np.ndarray
    ) -> dict[str, np.ndarray]:
        """One batch-of-one call of ``network``; inputs without the batch dimension; only the
        ``outputs`` named (None: all) come back."""
        results = await self.backend.infer(network, {k: v[None] for k, v in inputs.items()}, outputs)
        return {k: v[0] for k, v in results.items()}

    async def letterboxed(self, features: FeatureCache, image: np.ndarray, box: Letterbox) -> np.ndarray:
        """``image`` (H, W, 3 uint8) letterboxed for the networks, float32 [3, S, S]
        (``Letterbox.image``), computed once per session and replica (read-only)."""
        return await kept_array(features, f"letterbox/{box.size}", lambda: box.image(image))

    async def cached(self, features: FeatureCache, network: str, image: np.ndarray) -> dict[str, np.ndarray]:
        """``network``'s outputs on the letterboxed ``image``, from the session cache or computed
        (and cached) now. Floats come back as float16, the precision they are cached at (and
        travel at: cached features are FP16 on the wire); the arrays are read-only."""
        arrays = features.recall(network)
        if arrays is not None:
            return arrays
        data = await features.load(network)
        if data is not None:
            arrays = unpack_arrays(data, floats=np.float16)
        else:
            outputs = await self.run(network, image=image)
            await features.save(network, pack_arrays(outputs))
            arrays = {k: v.astype(np.float16) if v.dtype.kind == "f" else v for k, v in outputs.items()}
        for array in arrays.values():
            array.flags.writeable = False
        features.keep(network, arrays)
        return arrays


class NetworkPipeline(NetworkRunner, Pipeline):
    """A user-selectable pipeline (``model``) built on exported networks."""

    async def info(self) -> ModelInfo:
        statuses = await self.statuses()
        trained = all(s.weights == "trained" for s in statuses)
        missing = [s.name for s in statuses if s.weights == "missing"]
        if missing:
            detail = (
                f"not in the model repository: {', '.join(missing)} (export or import them); "
                "its rounds answer 503 model_not_ready"
            )
        else:
            detail = None if trained else "untrained: initial weights, never chosen by auto"
        return ModelInfo(
            name=self.name,
            description=self.description,
            backend=self.backend.name,
            ready=all(s.ready for s in statuses),
            trained=trained,
            prompt_kinds=sorted(self.prompt_kinds),
            automatic=self.automatic,
            multi_round=self.multi_round,
            networks=statuses,
            detail=detail,
        )
