"""Group commit: items that become ready together are written together.

A bulk run finishes dozens of small files at once, and each used to pay its own SQLite
transaction (and fsync) and its own thread hop for its ledger row. Here the first caller to
find no write in progress writes everything queued so far in one call of `write` (in a worker
thread); callers that arrive meanwhile wait for the next such write. Every caller returns only
once its own item is written, so a row is durable before its transfer is reported: a crash
loses nothing that was acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class _Batch(Generic[T]):
    def __init__(self) -> None:
        self.items: list[T] = []
        self.written = anyio.Event()
        self.failure: BaseException | None = None


class GroupCommit(Generic[T]):
    def __init__(self, write: Callable[[Sequence[T]], None]) -> None:
        self._write = write
        self._open: _Batch[T] | None = None  # filling while another batch is written
        self._writing = False

    async def add(self, item: T) -> None:
        """Queue `item` and return once a write that included it has finished."""
        if self._open is None:
            self._open = _Batch()
        batch = self._open
        batch.items.append(item)
        if self._writing:
            await batch.written.wait()
        else:
            await self._write_open_batches()
        if batch.failure is not None:
            raise batch.failure

    async def _write_open_batches(self) -> None:
        """Write batches until none is open; the caller's own is the first."""
        self._writing = True
        try:
            while self._open is not None:
                batch, self._open = self._open, None
                try:
                    await anyio.to_thread.run_sync(self._write, batch.items)
                except Exception as exc:
                    batch.failure = exc
                finally:
                    batch.written.set()
        finally:
            self._writing = False
