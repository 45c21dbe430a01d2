"""A process-wide bound on the pixels being decoded and processed at once.

Memory per request grows with the photo (decoded RGB, the matte, the cut-out's colours:
about 25 bytes a pixel at the peak, README "Memory"), so a handful of near-limit uploads at
once could exceed a pod's memory limit. Every operation on an image holds its pixel count
from this budget; when the budget is spent the next one waits, and after ``wait_s`` gets 503
``server_busy`` with Retry-After instead of running the process out of memory.

anyio's ``CapacityLimiter`` and asyncio's ``Semaphore`` take one token per holder; this needs
holders of different weights, hence the small condition-variable loop below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from service.errors import Unavailable


class PixelBudget:
    """At most ``capacity`` pixels held at once; one holder may take the whole capacity."""

    def __init__(self, capacity: int, wait_s: float) -> None:
        self.capacity = capacity
        self.wait_s = wait_s
        self.used = 0
        self._changed = anyio.Condition()

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        """Hold ``pixels`` (capped at the capacity) for the body; ``Unavailable``
        (``server_busy``) if they do not become free within ``wait_s``."""
        weight = max(1, min(int(pixels), self.capacity))
        try:
            with anyio.fail_after(self.wait_s):
                async with self._changed:
                    while self.used + weight > self.capacity:
                        await self._changed.wait()
                    self.used += weight
        except TimeoutError:
            raise Unavailable(
                "The server is busy with other large images; try again shortly.", code="server_busy"
            ) from None
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                async with self._changed:
                    self.used -= weight
                    self._changed.notify_all()
