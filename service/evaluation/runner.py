"""Running pipelines round by round against simulated users, as a session would.

Each sample is a fresh in-memory session: the simulator adds a round's prompts, the pipeline
runs with every prompt so far, the previous round's matte and state, and cached features —
exactly what ``MattingService`` hands it, minus Redis. Pipelines that do not keep rounds
(``multi_round = False``) get rounds 1..t aggregated and no previous matte. The protocol
``auto`` is one round with no prompt, scored against the union of all instances.

A sample that fails is counted as failed with its error and the run goes on. When the
pipeline raises (or refuses the prompts), the sample's rounds from the failing one on are scored
as an empty matte (what the user got), so a pipeline that fails is not ranked on its successes
alone. A sample whose photo or ground truth cannot be read has no rounds to score: it is
counted as failed for every model alike and is left out of the means (``n`` per round says how
many were scored). Where the sample has a trimap, SAD/MSE/Grad/Conn are also given over its
unknown region (``*_unknown``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import get_args

import numpy as np

from models.eval.metrics import conn, grad, iou, mad, matting_errors, mse, noc, sad
from models.eval.simulator import UserSimulator
from schemas.prompts import ClickPrompt, Prompt
from schemas.sessions import PipelineName
from service.errors import ApiError
from service.evaluation.samples import Sample
from service.pipelines import FeatureCache, PipelineRegistry, RoundInput

METRICS = ("sad", "mse", "mad", "grad", "conn", "iou")
UNKNOWN_METRICS = ("sad_unknown", "mse_unknown", "grad_unknown", "conn_unknown")
MODELS = ("auto", *get_args(PipelineName))
"""What ``--model`` may name: a pipeline, or ``auto`` (the service's routing)."""


def model_names(text: str) -> list[str]:
    """The models of a comma-separated ``--model`` list, spaces stripped and each once (a name
    given twice would be two rows of the same figures); ``ValueError`` naming the problem for
    an empty list or an unknown name, so that a typo stops the run before it starts."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise ValueError(f"no model named in {text!r}; name one or more of {', '.join(MODELS)}")
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise ValueError(f"unknown model {', '.join(map(repr, unknown))}; known: {', '.join(MODELS)}")
    return names


@dataclass
class RoundScore:
    """Errors of one round's matte (SAD, Grad, Conn in thousands; MSE, MAD per pixel)."""

    sad: float
    mse: float
    mad: float
    grad: float
    conn: float
    iou: float
    clicks: int
    latency_ms: float
    sad_unknown: float = math.nan
    mse_unknown: float = math.nan
    grad_unknown: float = math.nan
    conn_unknown: float = math.nan

    @classmethod
    def of(
        cls,
        pred: np.ndarray,
        gt: np.ndarray,
        clicks: int,
        latency_ms: float,
        trimap: np.ndarray | None = None,
    ) -> RoundScore:
        unknown = {}
        if trimap is not None:
            errors = matting_errors(pred, gt, trimap)
            unknown = {f"{m}_unknown": errors[m] for m in ("sad", "mse", "grad", "conn")}
        return cls(
            sad(pred, gt),
            mse(pred, gt),
            mad(pred, gt),
            grad(pred, gt),
            conn(pred, gt),
            iou(pred, gt),
            clicks,
            latency_ms,
            **unknown,
        )


@dataclass
class SampleResult:
    sample: str
    model: str
    rounds: list[RoundScore] = field(default_factory=list)
    error: str | None = None


async def run_sample(
    registry: PipelineRegistry, model: str, sample: Sample, protocol: str, rounds: int, seed: int
) -> SampleResult:
    """Simulate one user on one sample with ``model`` (a pipeline name or ``auto``). Never raises
    for a failing sample or pipeline: the result carries the error (see the module doc)."""
    result = SampleResult(sample.name, model)
    if sample.error is not None:
        result.error = sample.error
        return result
    cache = FeatureCache.in_memory()
    if protocol == "auto":
        plan = [[]]
        target = sample.everyone
        simulator = None
    else:
        simulator = UserSimulator(protocol, seed=seed, rounds=rounds)
        plan = None
        target = sample.alpha
    history: list[list[Prompt]] = []
    previous: np.ndarray | None = None
    state: bytes | None = None
    clicks = 0
    total = rounds if plan is None else len(plan)
    for r in range(total):
        try:
            new = (
                plan[r]
                if plan is not None
                else simulator.round_prompts(r, target, previous, sample.text or None)
            )
            history.append(list(new))
            everything = [p for prompts in history for p in prompts]
            pipeline = await registry.resolve(model, everything)
            start = time.perf_counter()
            output = await pipeline.run_round(
                RoundInput(
                    image=sample.image,
                    prompts=everything,
                    new_prompts=list(new) if pipeline.multi_round else everything,
                    previous_alpha=previous if pipeline.multi_round else None,
                    previous_state=state if pipeline.multi_round else None,
                    features=cache,
                    round_index=r + 1,
                )
            )
        except ApiError as exc:
            result.error = f"round {r + 1}: {exc.code}: {exc.message}"
        except Exception as exc:  # a failing engine must not end the run
            result.error = f"round {r + 1}: {type(exc).__name__}: {exc}"
        if result.error is not None:
            empty = np.zeros_like(target)
            for _ in range(r, total):
                result.rounds.append(RoundScore.of(empty, target, clicks, math.nan, sample.trimap))
            break
        latency = (time.perf_counter() - start) * 1000.0
        previous, state = output.alpha, output.state
        clicks += sum(isinstance(p, ClickPrompt) for p in new)
        result.rounds.append(RoundScore.of(previous, target, clicks, latency, sample.trimap))
    return result


@dataclass
class ModelSummary:
    """Means over samples, per round (round r averages the samples that reached it)."""

    model: str
    samples: int
    failures: int
    per_round: list[dict[str, float]]
    noc90: float | None
    noc85: float | None
    failure_examples: list[str] = field(default_factory=list)


def summarise(model: str, results: Iterable[SampleResult]) -> ModelSummary:
    results = list(results)
    scored = [r for r in results if r.rounds]
    depth = max((len(r.rounds) for r in scored), default=0)
    per_round = []
    for k in range(depth):
        rows = [r.rounds[k] for r in scored if len(r.rounds) > k]
        entry = {m: float(np.mean([getattr(row, m) for row in rows])) for m in METRICS}
        for m in UNKNOWN_METRICS:
            values = [getattr(row, m) for row in rows if not math.isnan(getattr(row, m))]
            if values:
                entry[m] = float(np.mean(values))
        latencies = [row.latency_ms for row in rows if not math.isnan(row.latency_ms)]
        entry["latency_ms"] = float(np.median(latencies)) if latencies else math.nan
        entry["n"] = len(rows)
        per_round.append(entry)
    nocs = {}
    for threshold in (0.85, 0.9):
        values = [
            noc([s.iou for s in r.rounds], threshold, clicks=[s.clicks for s in r.rounds])
            for r in scored
            if r.rounds[-1].clicks > 0
        ]
        nocs[threshold] = float(np.mean(values)) if values else None
    failures = [r for r in results if r.error]
    return ModelSummary(
        model,
        len(results),
        len(failures),
        per_round,
        nocs[0.9],
        nocs[0.85],
        sorted({r.error for r in failures})[:3],
    )
