"""Deciding ``auto``'s routing table from measurements.

For each prompt situation of ``service.pipelines.routing`` the pipelines that can serve it are
evaluated on the same targets under the matching simulator protocol, on one or more data sets.
Each data set is scored by what its ground truth supports: SAD after the protocol's last round
where the ground truth is a soft matte (composites), IoU where it is a binary mask (the COCO
persons). The rule (issue 10: ``auto`` is never worse than the classical engine on real photos):

* where the classical engine can serve the situation, a learned pipeline is only eligible if it
  beats classical on **every** data set; if none does, classical is chosen;
* among the eligible, the best mean rank over the data sets wins (the first data set's figure
  breaks ties); untrained pipelines are measured and shown but never chosen.

Failed samples count as failures and are scored as an empty matte (see
:mod:`service.evaluation.runner`). The result is the JSON the service reads
(``triton_repo/auto_routes.json``): the table plus every figure behind it, and under
``unrouted`` each situation measured without a route and why (the service then takes its
default for it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from service.evaluation.runner import ModelSummary, run_sample, summarise
from service.evaluation.samples import Sample
from service.pipelines import PipelineRegistry

# situation -> (simulator protocol, rounds); a situation is the set of prompt kinds a session has
SITUATIONS: dict[str, tuple[str, int]] = {
    "none": ("auto", 1),
    "box": ("box", 1),
    "click": ("click", 3),
    "scribble": ("scribble", 3),
    "text": ("text", 1),
    "marks": ("box", 3),
    "mix": ("mix", 3),
}
SITUATION_KINDS = {
    "none": set(),
    "box": {"box"},
    "click": {"click"},
    "scribble": {"scribble"},
    "text": {"text"},
    "marks": {"box", "click"},
    "mix": {"box", "text", "click", "scribble"},
}
BASELINE = "classical"


@dataclass
class DataSet:
    """Named evaluation targets; ``soft`` when the ground truth is a matte (scored by SAD), else
    a binary mask (scored by IoU)."""

    name: str
    items: list[Sample]
    soft: bool

    @classmethod
    def of(cls, name: str, items: list[Sample]) -> DataSet:
        """Soft when more than 0.1 % of the ground-truth pixels are strictly between 0 and 1."""
        fractions = [
            float(((s.alpha > 0) & (s.alpha < 1)).mean()) for s in items if s.error is None and s.alpha.size
        ]
        return cls(name, items, bool(fractions) and float(np.mean(fractions)) > 1e-3)

    @property
    def metric(self) -> str:
        return "sad" if self.soft else "iou"


@dataclass
class Candidate:
    model: str
    trained: bool
    summaries: dict[str, ModelSummary]

    def final(self, data: str) -> dict[str, float] | None:
        summary = self.summaries[data]
        return summary.per_round[-1] if summary.per_round else None

    def score(self, data: DataSet) -> float:
        """Lower is better: SAD, or 1 - IoU."""
        f = self.final(data.name)
        if f is None:
            return float("inf")
        return f["sad"] if data.soft else 1.0 - f["iou"]


def eligible(registry: PipelineRegistry, situation: str) -> list[str]:
    """Pipelines able to serve a situation (``mix`` needs at least box + clicks/scribbles; text
    is optional there, since a pipeline without text falls back to the rest)."""
    kinds = SITUATION_KINDS[situation]
    names = []
    for name, pipeline in registry.pipelines.items():
        if situation == "none":
            if pipeline.automatic:
                names.append(name)
        elif situation == "mix":
            if {"box", "click"} <= pipeline.prompt_kinds and "text" in pipeline.prompt_kinds:
                names.append(name)
        elif kinds <= pipeline.prompt_kinds:
            names.append(name)
    return names


def choose(candidates: list[Candidate], datasets: list[DataSet]) -> str | None:
    """The rule of the module doc."""
    trained = [c for c in candidates if c.trained and any(c.final(d.name) for d in datasets)]
    baseline = next((c for c in trained if c.model == BASELINE), None)
    if baseline is not None:
        trained = [
            c for c in trained if c is baseline or all(c.score(d) < baseline.score(d) for d in datasets)
        ]
    if not trained:
        return None
    ranks = {c.model: 0.0 for c in trained}
    for d in datasets:
        for r, c in enumerate(sorted(trained, key=lambda c: c.score(d))):
            ranks[c.model] += r
    return min(trained, key=lambda c: (ranks[c.model], c.score(datasets[0]))).model


async def calibrate(
    registry: PipelineRegistry,
    datasets: list[DataSet],
    automatic: list[DataSet] | None = None,
    seed: int = 0,
) -> dict:
    """Evaluate every eligible pipeline per situation on ``datasets`` (``automatic`` for the
    no-prompt situation, default the same); return the routing JSON document."""
    document: dict = {
        "routes": {},
        "unrouted": {},
        "situations": {},
        "rule": __doc__.split("\n\n")[1].strip(),
    }
    for situation, (protocol, rounds) in SITUATIONS.items():
        sets = (automatic or datasets) if situation == "none" else datasets
        candidates = []
        for name in eligible(registry, situation):
            summaries = {}
            for d in sets:
                results = [await run_sample(registry, name, item, protocol, rounds, seed) for item in d.items]
                summaries[d.name] = summarise(name, results)
            candidates.append(Candidate(name, registry.pipelines[name].trained, summaries))
        best = choose(candidates, sets)
        if best is not None:
            document["routes"][situation] = best
        else:
            document["unrouted"][situation] = _why_unrouted(candidates)
        document["situations"][situation] = {
            "protocol": protocol,
            "rounds": rounds,
            "chosen": best,
            "data": [{"name": d.name, "targets": len(d.items), "scored_by": d.metric} for d in sets],
            "candidates": [
                {
                    "model": c.model,
                    "trained": c.trained,
                    "per_data": {
                        d.name: {
                            "failures": c.summaries[d.name].failures,
                            "final": c.final(d.name),
                            "summary": asdict(c.summaries[d.name]),
                        }
                        for d in sets
                    },
                }
                for c in candidates
            ],
        }
    return document


def _why_unrouted(candidates: list[Candidate]) -> str:
    """Why :func:`choose` found no pipeline among ``candidates``."""
    if not candidates:
        return "no pipeline here can serve it"
    if not any(c.trained for c in candidates):
        return "no trained pipeline can serve it"
    return "no trained pipeline scored a single target (every sample failed)"


def markdown(document: dict) -> str:
    """The routing table with its figures, as a Markdown table for the README (one row per
    situation, model and data set; SAD/Grad/Conn in thousands, MSE x1e3, whole image)."""
    lines = [
        "| situation | protocol | data | model | SAD | MSE×1e3 | Grad | Conn | IoU | failed | chosen |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for situation, entry in document["situations"].items():
        for c in entry["candidates"]:
            name = c["model"] + ("" if c["trained"] else " (untrained)")
            chosen = "**auto**" if entry["chosen"] == c["model"] else ""
            for data, figures in c["per_data"].items():
                f = figures["final"]
                label = data.rstrip("/").split("/")[-1]
                head = f"| {situation} | {entry['protocol']} ×{entry['rounds']} | {label} | {name} |"
                if f is None:
                    lines.append(f"{head} – | – | – | – | – | {figures['failures']} | {chosen} |")
                    continue
                lines.append(
                    f"{head} {f['sad']:.2f} | {f['mse'] * 1e3:.2f} | {f['grad']:.2f} | {f['conn']:.2f} | "
                    f"{f['iou']:.3f} | {figures['failures']} | {chosen} |"
                )
    return "\n".join(lines) + "\n"
