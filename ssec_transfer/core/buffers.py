"""A byte budget for part buffers: reserve before reading or fetching, release when done.

Total memory for payload is then one number, not a product of knobs (aws-c-s3's buffer pool).
Reservations are served first-in, first-out, so a large part is never starved by a stream of
small ones. A single reservation larger than the whole budget is granted when nothing else is
held, so an oversized part slows things down instead of deadlocking.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio


@dataclass(eq=False)
class _Waiter:
    size: int
    event: anyio.Event = field(default_factory=anyio.Event)
    granted: bool = False


@dataclass(frozen=True)
class BudgetStats:
    capacity: int
    reserved: int
    peak: int
    waiting: int


class ByteBudget:
    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("a byte budget needs a positive capacity")
        self.capacity = capacity
        self.reserved = 0
        self.peak = 0
        self._waiters: deque[_Waiter] = deque()

    def stats(self) -> BudgetStats:
        return BudgetStats(self.capacity, self.reserved, self.peak, len(self._waiters))

    def _fits(self, size: int) -> bool:
        return self.reserved + size <= self.capacity or self.reserved == 0

    def _grant(self, size: int) -> None:
        self.reserved += size
        self.peak = max(self.peak, self.reserved)

    async def acquire(self, size: int) -> None:
        if not self._waiters and self._fits(size):
            self._grant(size)
            try:
                await anyio.lowlevel.checkpoint()
            except BaseException:  # cancelled at the checkpoint: the caller never got it
                self.release(size)
                raise
            return
        waiter = _Waiter(size)
        self._waiters.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self.release(size)
            else:
                self._waiters.remove(waiter)
                self._wake()
            raise

    def release(self, size: int) -> None:
        self.reserved -= size
        if self.reserved < 0:
            raise RuntimeError("byte budget released more than was reserved")
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._fits(self._waiters[0].size):
            waiter = self._waiters.popleft()
            self._grant(waiter.size)
            waiter.granted = True
            waiter.event.set()

    @asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        await self.acquire(size)
        try:
            yield
        finally:
            self.release(size)
