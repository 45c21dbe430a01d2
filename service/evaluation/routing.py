"""Deciding ``auto``'s routing table from measurements.

For each prompt situation of ``service.pipelines.routing`` the pipelines that can serve it are
evaluated on the same targets under the matching simulator protocol, and the one with the
lowest SAD after the protocol's last round wins (IoU breaks ties). Untrained pipelines are
measured and shown but never chosen. The result is the JSON the service reads
(``triton_repo/auto_routes.json``): the table plus every figure behind it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
    "mix": ("mix", 3),
}
SITUATION_KINDS = {
    "none": set(),
    "box": {"box"},
    "click": {"click"},
    "scribble": {"scribble"},
    "text": {"text"},
    "mix": {"box", "text", "click", "scribble"},
}


@dataclass
class Candidate:
    model: str
    trained: bool
    summary: ModelSummary

    @property
    def final(self) -> dict[str, float] | None:
        return self.summary.per_round[-1] if self.summary.per_round and not self.summary.failures else None


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


async def calibrate(registry: PipelineRegistry, items: list[Sample], seed: int = 0) -> dict:
    """Evaluate every eligible pipeline per situation; return the routing JSON document."""
    document: dict = {"routes": {}, "situations": {}}
    for situation, (protocol, rounds) in SITUATIONS.items():
        candidates = []
        for name in eligible(registry, situation):
            results = [await run_sample(registry, name, item, protocol, rounds, seed) for item in items]
            candidates.append(Candidate(name, registry.pipelines[name].trained, summarise(name, results)))
        usable = [c for c in candidates if c.trained and c.final is not None]
        best = min(usable, key=lambda c: (c.final["sad"], -c.final["iou"]), default=None)
        if best is not None:
            document["routes"][situation] = best.model
        document["situations"][situation] = {
            "protocol": protocol,
            "rounds": rounds,
            "chosen": best.model if best else None,
            "candidates": [
                {
                    "model": c.model,
                    "trained": c.trained,
                    "failures": c.summary.failures,
                    "final": c.final,
                    "summary": asdict(c.summary),
                }
                for c in candidates
            ],
        }
    return document


def markdown(document: dict) -> str:
    """The routing table with its figures, as a Markdown table for the README."""
    lines = [
        "| situation | protocol | model | SAD | MSE×1e3 | Grad | Conn | IoU | chosen |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for situation, entry in document["situations"].items():
        for c in entry["candidates"]:
            f = c["final"]
            name = c["model"] + ("" if c["trained"] else " (untrained)")
            chosen = "**auto**" if entry["chosen"] == c["model"] else ""
            if f is None:
                lines.append(
                    f"| {situation} | {entry['protocol']} ×{entry['rounds']} | {name} | – | – | – | – | – | "
                    f"failed |"
                )
                continue
            lines.append(
                f"| {situation} | {entry['protocol']} ×{entry['rounds']} | {name} | {f['sad']:.2f} | "
                f"{f['mse'] * 1e3:.2f} | {f['grad']:.2f} | {f['conn']:.2f} | {f['iou']:.3f} | {chosen} |"
            )
    return "\n".join(lines) + "\n"
