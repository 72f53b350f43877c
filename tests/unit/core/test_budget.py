"""The byte budget: never over capacity, first come first served, nothing leaks on cancel."""

from __future__ import annotations

import anyio
import pytest

from ssec_transfer.core.buffers import ByteBudget

pytestmark = pytest.mark.anyio


async def test_never_exceeds_capacity_and_serves_fifo() -> None:
    budget = ByteBudget(10)
    order: list[str] = []

    async def take(name: str, size: int, hold: float) -> None:
        async with budget.reserve(size):
            order.append(name)
            assert budget.reserved <= budget.capacity
            await anyio.sleep(hold)

    async with anyio.create_task_group() as tg:
        tg.start_soon(take, "a", 6, 0.05)
        await anyio.sleep(0.01)
        tg.start_soon(take, "big", 8, 0.01)  # must wait for a
        await anyio.sleep(0.01)
        tg.start_soon(take, "small", 2, 0.01)  # fits now, but queues behind big (FIFO)
    assert order == ["a", "big", "small"]
    assert budget.peak <= 10
    assert budget.reserved == 0


async def test_oversized_request_runs_alone_instead_of_deadlocking() -> None:
    budget = ByteBudget(4)
    async with budget.reserve(100):
        assert budget.reserved == 100
    assert budget.reserved == 0


async def test_cancelled_waiter_releases_nothing_it_did_not_get() -> None:
    budget = ByteBudget(4)
    await budget.acquire(4)
    with anyio.move_on_after(0.02):
        await budget.acquire(2)
    assert budget.stats().waiting == 0
    budget.release(4)
    assert budget.reserved == 0


@pytest.mark.anyio
async def test_cancelled_at_the_grant_checkpoint_leaks_nothing() -> None:
    """A reservation granted at once but cancelled at its checkpoint is given back."""
    budget = ByteBudget(1024)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await budget.acquire(512)
    assert budget.stats().reserved == 0
