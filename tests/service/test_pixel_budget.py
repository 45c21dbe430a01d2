"""The pixel budget (issue 11.8): holders of different sizes share it, a holder that does not
fit waits for the pixels to come back, and one that waits too long gets 503 server_busy.
Ordered by events, never by sleeps."""

from __future__ import annotations

import anyio
import pytest

from service.errors import Unavailable
from service.pixel_budget import PixelBudget


@pytest.mark.anyio
async def test_a_holder_that_does_not_fit_waits_for_the_pixels_to_come_back() -> None:
    budget = PixelBudget(1000, wait_s=60)
    order: list[str] = []
    first_in = anyio.Event()
    release_first = anyio.Event()

    async def first() -> None:
        async with budget.hold(600):
            order.append("first in")
            first_in.set()
            await release_first.wait()
            order.append("first out")

    async def second() -> None:
        await first_in.wait()
        async with budget.hold(600):
            order.append("second in")
            assert budget.used == 600

    async def small() -> None:
        await first_in.wait()
        async with budget.hold(300):  # fits beside the first
            order.append("small in")
        release_first.set()

    async with anyio.create_task_group() as group:
        group.start_soon(first)
        group.start_soon(second)
        group.start_soon(small)
    assert order.index("small in") < order.index("first out") < order.index("second in")
    assert budget.used == 0


@pytest.mark.anyio
async def test_an_image_larger_than_the_budget_takes_all_of_it_and_waiting_too_long_is_busy() -> None:
    budget = PixelBudget(1000, wait_s=0.05)
    async with budget.hold(5000):
        assert budget.used == 1000
        with pytest.raises(Unavailable) as busy:
            async with budget.hold(1):
                pass
    assert busy.value.code == "server_busy" and busy.value.status == 503 and busy.value.retry_after_s
    assert budget.used == 0
    async with budget.hold(1000):
        assert budget.used == 1000
