"""Prometheus metrics (prometheus-client), one registry per app instance.

- ``matteserve_http_request_duration_seconds{route,method,status}``: request latency.
- ``matteserve_round_duration_seconds{model,stage}``: round latency per pipeline and stage
  (``total`` is the whole round as the client sees it, minus network).
- ``matteserve_active_sessions``: sessions alive in Redis (all replicas), read at scrape time.
- ``matteserve_errors_total{code}``: error answers by error code.
- ``matteserve_pixels_held``: photo pixels held from this replica's pixel budget
  (``MATTESERVE_MAX_CONCURRENT_PIXELS``) now; ``matteserve_pixels_lent``: pixels given back by
  rounds waiting on a network call (free for others meanwhile). Read at scrape time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The service's metric families, registered in their own ``CollectorRegistry``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_latency = Histogram(
            "matteserve_http_request_duration_seconds",
            "HTTP request latency by route template, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.round_latency = Histogram(
            "matteserve_round_duration_seconds",
            "Round latency by pipeline and stage.",
            ["model", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.active_sessions = Gauge(
            "matteserve_active_sessions",
            "Sessions alive in Redis (shared by all replicas).",
            registry=self.registry,
        )
        self.errors = Counter(
            "matteserve_errors_total", "Error answers by error code.", ["code"], registry=self.registry
        )
        self.pixels_held = Gauge(
            "matteserve_pixels_held",
            "Photo pixels held from this replica's pixel budget now.",
            registry=self.registry,
        )
        self.pixels_lent = Gauge(
            "matteserve_pixels_lent",
            "Held pixels given back for a wait on a network call (free for others meanwhile).",
            registry=self.registry,
        )
        self._count_sessions: Callable[[], Awaitable[int]] | None = None

    def observe_round(self, model: str, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.round_latency.labels(model=model, stage=stage).observe(ms / 1000.0)

    def count_sessions_with(self, counter: Callable[[], Awaitable[int]]) -> None:
        self._count_sessions = counter

    def read_pixels_with(self, held: Callable[[], int], lent: Callable[[], int]) -> None:
        """Read the pixel gauges from the budget at scrape time (prometheus-client's
        ``set_function``)."""
        self.pixels_held.set_function(held)
        self.pixels_lent.set_function(lent)

    async def render(self) -> bytes:
        """The exposition text; refreshes the session gauge from Redis first (best effort)."""
        if self._count_sessions is not None:
            # A scrape must not fail because Redis is down.
            with contextlib.suppress(Exception):
                self.active_sessions.set(await self._count_sessions())
        return generate_latest(self.registry)
