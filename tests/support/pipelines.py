"""A stand-in pipeline whose own mattes are given, to test what every pipeline does after its
network (the progressive merge, the mark honouring) through the real ``Pipeline.run_round``."""

from __future__ import annotations

import numpy as np

from schemas.system import ModelInfo
from service.pipelines.base import Pipeline, RoundInput, RoundOutput


class GivenMattes(Pipeline):
    """Round ``i`` computes ``mattes[i]`` (the last one for every later round)."""

    name = "given"
    description = "given mattes"
    prompt_kinds = frozenset({"box", "click"})

    def __init__(self, mattes: list[np.ndarray]) -> None:
        self.mattes = mattes

    async def compute_round(self, request: RoundInput) -> RoundOutput:
        matte = self.mattes[min(request.round_index, len(self.mattes) - 1)]
        return RoundOutput(alpha=matte.copy(), score=None)

    async def info(self) -> ModelInfo:
        raise NotImplementedError
