"""Task groups that fail with the error that matters, not an ExceptionGroup of one.

anyio 4 always wraps child failures in an exception group. A transfer's workers fail for one
cause; when several fail at once (all parts hit the same dead connection), the user needs one
clear error, so the group is unwrapped to its most meaningful member.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
from anyio.abc import TaskGroup

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
