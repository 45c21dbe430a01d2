"""Inference backends: where the exported networks of ``triton_repo/`` run.

``local`` runs the TorchScript files in-process (the embedded default, CPU); ``triton`` calls
a Triton server over gRPC. Both take and return numpy arrays keyed by the base names of
``models/io_spec.py`` (``image``, ``features``, ...), batch dimension first.
"""

from service.backends.base import InferenceBackend, NetworkInfo
from service.backends.factory import create_backend

__all__ = ["InferenceBackend", "NetworkInfo", "create_backend"]
