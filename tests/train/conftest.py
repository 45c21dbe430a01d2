"""Shared settings for the trainer tests: one CPU thread, and a stand-in text encoder.

Loading MiniLM takes ~10 s; these tests check the trainer, not the sentence encoder
(``models.text`` has its own users and tests), so text prompts are embedded by a
deterministic hash-seeded stand-in with the same output contract (L2-normalised float32 [N, 384]).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from models.text import TEXT_DIM


class FakeEncoder:
    """``encode(texts) -> float32 [N, 384]``, one fixed unit vector per distinct text."""

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), TEXT_DIM), np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(TEXT_DIM).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out


@pytest.fixture(autouse=True)
def _fast_and_quiet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("models.train.tasks.shared_encoder", lambda: FakeEncoder())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
