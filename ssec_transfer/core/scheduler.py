"""One scheduler per engine: a global limit on requests in flight and one memory budget,
shared by every transfer of a run.

Every S3 request of every transfer takes a slot from one FIFO limiter, so a thousand small
files and the parts of a large one queue in arrival order: small files are not starved and
large ones keep their parts flowing. Payload bytes are reserved in one byte budget. Both
report statistics, for the progress display and for tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from ssec_transfer.core.buffers import ByteBudget


@dataclass(frozen=True)
class SchedulerStats:
    requests_in_flight: int
    requests_waiting: int
    request_limit: int
    peak_requests_in_flight: int
    bytes_reserved: int
    bytes_waiting: int  # reservations queued, not bytes
    memory_budget: int
    peak_bytes_reserved: int


class Scheduler:
    def __init__(self, *, max_requests: int, max_memory: int) -> None:
        self.budget = ByteBudget(max_memory)
        self._slots = anyio.CapacityLimiter(max_requests)
        self._in_flight = 0
        self._peak_in_flight = 0

    @asynccontextmanager
    async def request(self) -> AsyncIterator[None]:
        """Hold one request slot for the duration of one S3 request."""
        async with self._slots:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            try:
                yield
            finally:
                self._in_flight -= 1

    def stats(self) -> SchedulerStats:
        budget = self.budget.stats()
        return SchedulerStats(
            requests_in_flight=self._in_flight,
            requests_waiting=self._slots.statistics().tasks_waiting,
            request_limit=int(self._slots.total_tokens),
            peak_requests_in_flight=self._peak_in_flight,
            bytes_reserved=budget.reserved,
            bytes_waiting=budget.waiting,
            memory_budget=budget.capacity,
            peak_bytes_reserved=budget.peak,
        )
