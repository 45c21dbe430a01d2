"""Choosing the backend from the settings."""

from __future__ import annotations

import anyio

from service.backends.base import InferenceBackend, read_networks
from service.config import Settings


def create_backend(settings: Settings, limiter: anyio.CapacityLimiter) -> InferenceBackend:
    """The backend ``MATTESERVE_BACKEND`` names, over the networks of ``MATTESERVE_MODEL_REPOSITORY``."""
    networks = read_networks(settings.model_repository)
    if settings.backend == "triton":
        from service.backends.triton import TritonBackend

        return TritonBackend(settings.triton_url, networks, settings.triton_timeout_s)
    from service.backends.local import LocalBackend

    return LocalBackend(settings.model_repository, networks, limiter, threads=settings.inference_threads)
