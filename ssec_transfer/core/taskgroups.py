"""Task groups that fail with the error that matters, not an ExceptionGroup of one.

anyio 4 always wraps child failures in an exception group. A transfer's workers fail for one
cause; when several fail at once (all parts hit the same dead connection), the user needs one
clear error, so the group is unwrapped to its most meaningful member.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskGroup

from ssec_transfer.core.errors import SSECTransferError


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(exc))
        else:
            found.append(exc)
    return found


def most_meaningful(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaves = _leaves(group)
    for kind in (KeyboardInterrupt, SystemExit, SSECTransferError):
        for exc in leaves:
            if isinstance(exc, kind):
                return exc
    return leaves[0] if leaves else group


@asynccontextmanager
async def task_group() -> AsyncIterator[TaskGroup]:
    try:
        async with anyio.create_task_group() as tg:
            yield tg
    except BaseExceptionGroup as group:
        raise most_meaningful(group) from None


T = TypeVar("T")


async def in_child_task(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` in a child task of a task group.

    Ctrl-C cancels the main task natively (asyncio.Runner), which would reach straight into
    shielded cleanups running in it; a task group turns it into a cancel scope, which shields
    respect, so aborts and temporary-file removal always finish.
    """
    results: list[T] = []

    async def child() -> None:
        results.append(await work())

    async with task_group() as tg:
        tg.start_soon(child)
    return results[0]


async def for_each(
    items: Sequence[T], work: Callable[[T], Awaitable[None]], concurrency: int
) -> None:
    """Run `work` on every item with at most `concurrency` workers: a producer and N workers
    over a bounded stream, so items are taken in order and the first failure cancels the rest."""
    if not items:
        return
    workers = max(1, min(concurrency, len(items)))
    send, receive = anyio.create_memory_object_stream[T](max_buffer_size=workers)

    async def produce(send: ObjectSendStream[T]) -> None:
        async with send:
            for item in items:
                await send.send(item)

    async def consume(receive: ObjectReceiveStream[T]) -> None:
        async with receive:
            async for item in receive:
                await work(item)

    async with task_group() as tg:
        tg.start_soon(produce, send)
        for _ in range(workers):
            tg.start_soon(consume, receive.clone())
        receive.close()
