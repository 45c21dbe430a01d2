"""A process-wide bound on the pixels being decoded and processed at once.

Memory per request grows with the photo (decoded RGB, the matte, the cut-out's colours:
about 25 bytes a pixel at the peak, README "Memory"), so a handful of near-limit uploads at
once could exceed a pod's memory limit. Every operation on an image holds its pixel count
from this budget; when the budget is spent the next one waits, and after ``wait_s`` gets 503
``server_busy`` with Retry-After instead of running the process out of memory.

While a holder waits on another process (a network call on Triton, which may take up to
``MATTESERVE_TRITON_TIMEOUT_S`` when the server stalls), what it keeps in memory is the photo
and the previous matte, not the peak: :func:`lent_back` gives all but :data:`WAIT_RESIDENT_SHARE`
of its pixels back for the wait, so other requests (a classical round, an upload) are not
queued behind a stalled backend, and rounds that wait together still stay within the budget.

anyio's ``CapacityLimiter`` and asyncio's ``Semaphore`` take one token per holder; this needs
holders of different weights, hence the small condition-variable loop below.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

import anyio

from service.errors import Unavailable

# What a round keeps while it waits on a network call, as a share of its pixels' weight: the
# photo (3 bytes a pixel) and the previous matte (4) of the ~25 bytes a pixel of the peak.
WAIT_RESIDENT_SHARE = 0.3


@dataclass
class _Hold:
    """One :meth:`PixelBudget.hold`: its weight, the part of it a wait gives back (``lendable``),
    whether the budget counts it in ``full``, ``lent`` (all but the resident part) or ``none``,
    and how many :func:`lent_back` waits are open (tasks of one round may wait side by side)."""

    budget: PixelBudget
    weight: int
    lendable: int
    state: Literal["full", "lent", "none"] = "none"
    waits: int = 0


_current: ContextVar[_Hold | None] = ContextVar("matteserve_pixel_hold", default=None)


class PixelBudget:
    """At most ``capacity`` pixels held at once; one holder may take the whole capacity.
    ``used``: the pixels counted now; ``lent``: those given back by holders waiting on another
    process (:func:`lent_back`), which are free for others meanwhile."""

    def __init__(self, capacity: int, wait_s: float) -> None:
        self.capacity = capacity
        self.wait_s = wait_s
        self.used = 0
        self.lent = 0
        self._changed = anyio.Condition()

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        """Hold ``pixels`` (capped at the capacity) for the body; ``Unavailable``
        (``server_busy``) if they do not become free within ``wait_s``."""
        weight = max(1, min(int(pixels), self.capacity))
        hold = _Hold(self, weight, weight - math.ceil(WAIT_RESIDENT_SHARE * weight))
        await self._count(hold, "full")
        token = _current.set(hold)
        try:
            yield
        finally:
            _current.reset(token)
            await self._count(hold, "none")

    def _pixels(self, hold: _Hold, state: str) -> int:
        return {"full": hold.weight, "lent": hold.weight - hold.lendable, "none": 0}[state]

    async def _count(self, hold: _Hold, state: Literal["full", "lent", "none"]) -> None:
        """Move ``hold`` to ``state``. Counting more waits (up to ``wait_s``, then
        ``Unavailable``) until the pixels fit; counting less never waits and is never cancelled."""
        if self._more(hold, state) <= 0:
            with anyio.CancelScope(shield=True):
                async with self._changed:
                    self._move(hold, state)
                    self._changed.notify_all()
            return
        try:
            with anyio.fail_after(self.wait_s):
                async with self._changed:
                    # Recomputed each time: another task of the holder may have moved it meanwhile.
                    while self._more(hold, state) > self.capacity - self.used:
                        await self._changed.wait()
                    self._move(hold, state)
        except TimeoutError:
            raise Unavailable(
                "The server is busy with other large images; try again shortly.", code="server_busy"
            ) from None

    def _more(self, hold: _Hold, state: str) -> int:
        return self._pixels(hold, state) - self._pixels(hold, hold.state)

    def _move(self, hold: _Hold, state: Literal["full", "lent", "none"]) -> None:
        self.used += self._more(hold, state)
        self.lent += (state == "lent") * hold.lendable - (hold.state == "lent") * hold.lendable
        hold.state = state


@asynccontextmanager
async def lent_back() -> AsyncIterator[None]:
    """Give the current task's held pixels, all but the resident share, back to their budget
    for the body (a wait on another process), and take them again after it, waiting as
    :meth:`PixelBudget.hold` does (``Unavailable`` if they do not come back in time; the body's
    own error wins over that). Outside a hold, nothing happens."""
    hold = _current.get()
    if hold is None:
        yield
        return
    hold.waits += 1
    if hold.state == "full":
        await hold.budget._count(hold, "lent")
    try:
        yield
    except BaseException:
        with contextlib.suppress(Unavailable):
            await _take_back(hold)
        raise
    await _take_back(hold)


async def _take_back(hold: _Hold) -> None:
    hold.waits -= 1
    if hold.waits == 0 and hold.state == "lent":
        await hold.budget._count(hold, "full")
