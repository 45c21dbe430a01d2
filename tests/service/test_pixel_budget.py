"""The pixel budget (issue 11.8): holders of different sizes share it, a holder that does not
fit waits for the pixels to come back, and one that waits too long gets 503 server_busy.
Ordered by events, never by sleeps."""

from __future__ import annotations

import anyio
import pytest

from service.errors import Unavailable
from service.pixel_budget import PixelBudget, lent_back


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


@pytest.mark.anyio
async def test_a_holder_waiting_on_a_network_lends_its_pixels_and_takes_them_back() -> None:
    """A round waiting on Triton (``lent_back`` around the call) keeps only its resident share
    (30 %) and does not keep others waiting."""
    budget = PixelBudget(1200, wait_s=60)
    in_call = anyio.Event()
    other_done = anyio.Event()
    order: list[str] = []

    async def round_on_a_network() -> None:
        async with budget.hold(800):
            async with lent_back():
                assert (budget.used, budget.lent) == (240, 560)
                in_call.set()
                await other_done.wait()  # the network answers only after the other request
            assert (budget.used, budget.lent) == (800, 0)
            order.append("network round out")

    async def other_request() -> None:
        await in_call.wait()
        async with budget.hold(900):  # does not fit beside the 800, only beside their resident 240
            order.append("other in")
        other_done.set()

    async with anyio.create_task_group() as group:
        group.start_soon(round_on_a_network)
        group.start_soon(other_request)
    assert order == ["other in", "network round out"]
    assert (budget.used, budget.lent) == (0, 0)


@pytest.mark.anyio
@pytest.mark.parametrize("call_fails", [False, True])
async def test_taking_the_pixels_back_waits_and_a_busy_budget_never_hides_the_calls_error(
    call_fails: bool,
) -> None:
    """Another request takes the lent pixels and keeps them past ``wait_s``: the round gets 503
    ``server_busy`` after its call, or the call's own error if the call failed; nothing is
    counted twice or lost."""
    budget = PixelBudget(1000, wait_s=0.05)
    lent = anyio.Event()
    taken = anyio.Event()
    finished = anyio.Event()

    class CallFailed(Exception):
        pass

    async def network_round() -> None:
        with pytest.raises(CallFailed if call_fails else Unavailable):
            async with budget.hold(600), lent_back():
                lent.set()
                await taken.wait()
                if call_fails:
                    raise CallFailed
        finished.set()

    async def other_request() -> None:
        await lent.wait()
        async with budget.hold(700):
            taken.set()
            await finished.wait()

    async with anyio.create_task_group() as group:
        group.start_soon(network_round)
        group.start_soon(other_request)
    assert (budget.used, budget.lent) == (0, 0)


@pytest.mark.anyio
async def test_tasks_of_one_holder_lend_its_pixels_once() -> None:
    budget = PixelBudget(1000, wait_s=60)
    both_in = anyio.Event()
    entered: list[int] = []

    async def call(k: int) -> None:
        async with lent_back():
            entered.append(k)
            if len(entered) == 2:
                both_in.set()
            await both_in.wait()
            assert (budget.used, budget.lent) == (150, 350)

    async with budget.hold(500):
        async with anyio.create_task_group() as group:
            group.start_soon(call, 1)
            group.start_soon(call, 2)
        assert (budget.used, budget.lent) == (500, 0)
    assert (budget.used, budget.lent) == (0, 0)
    async with lent_back():  # outside a hold: nothing to lend
        assert (budget.used, budget.lent) == (0, 0)
