"""Group commit: items finishing together share one write, and nobody returns before its
own item is written."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import anyio
import pytest

from ssec_transfer.core.groupcommit import GroupCommit

pytestmark = pytest.mark.anyio


class SlowStore:
    """A blocking writer that takes a while, as an fsync-ing SQLite commit does."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def write(self, items: Sequence[int]) -> None:
        time.sleep(0.02)
        if self.fail_on is not None and self.fail_on in items:
            raise OSError("disk I/O error")
        with self.lock:
            self.batches.append(list(items))

    @property
    def written(self) -> list[int]:
        return [item for batch in self.batches for item in batch]


async def test_concurrent_items_share_writes_and_each_is_written_once() -> None:
    store = SlowStore()
    commit = GroupCommit[int](store.write)
    seen_written: dict[int, bool] = {}

    async def add(item: int) -> None:
        await commit.add(item)
        seen_written[item] = item in store.written

    async with anyio.create_task_group() as tg:
        for item in range(100):
            tg.start_soon(add, item)
    assert sorted(store.written) == list(range(100))
    assert len(store.batches) < 10  # one per wave, not one per item
    assert all(seen_written.values())  # nobody returned before its item was written


async def test_a_lone_item_is_written_at_once() -> None:
    store = SlowStore()
    commit = GroupCommit[int](store.write)
    await commit.add(7)
    assert store.batches == [[7]]


async def test_a_failed_write_fails_its_own_callers_and_later_batches_go_on() -> None:
    store = SlowStore(fail_on=3)
    commit = GroupCommit[int](store.write)
    failures: list[int] = []

    async def add(item: int) -> None:
        try:
            await commit.add(item)
        except OSError:
            failures.append(item)

    async with anyio.create_task_group() as tg:
        tg.start_soon(add, 3)  # alone in the first batch
        await anyio.sleep(0.005)
        for item in (4, 5):
            tg.start_soon(add, item)
    assert failures == [3]
    assert sorted(store.written) == [4, 5]
