"""Task groups that fail with the one error that matters.

The rule (`most_meaningful`): KeyboardInterrupt, then SystemExit, then the first tool error
(SSECTransferError), else the first failure; nested groups are searched leaf by leaf. A single
failure comes out as itself, never as an ExceptionGroup of one; cancellation is not swallowed;
and Ctrl-C lets shielded cleanups (aborts, temporary-file removal) finish.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskGroup

from ssec_transfer.core.errors import (
    AccessDeniedError,
    NoSuchObjectError,
    SSECTransferError,
    TransferFailedError,
    WrongKeyError,
)
from ssec_transfer.core.taskgroups import in_child_task, most_meaningful, task_group

REPO = Path(__file__).resolve().parents[3]


async def fail_with(exc: BaseException) -> None:
    await anyio.lowlevel.checkpoint()
    raise exc


async def fail_when_cancelled(exc: BaseException) -> None:
    """A worker whose cleanup fails once it is cancelled, as parts on one dead connection do."""
    try:
        await anyio.sleep_forever()
    except anyio.get_cancelled_exc_class():
        raise exc from None


# -- live task groups ----------------------------------------------------------------------------


async def run_group(
    failing: BaseException,
    waiting: Sequence[BaseException] = (),
    *,
    group: Callable[[], AbstractAsyncContextManager[TaskGroup]] = task_group,
) -> None:
    """Workers that fail once cancelled reach their wait first; then one worker fails."""
    async with group() as tg:
        tg.start_soon(anyio.sleep_forever)
        for exc in waiting:
            tg.start_soon(fail_when_cancelled, exc)
        await anyio.lowlevel.checkpoint()
        tg.start_soon(fail_with, failing)


async def fail_in_the_body(error: BaseException) -> None:
    async with task_group() as tg:
        tg.start_soon(anyio.sleep_forever)
        await anyio.lowlevel.checkpoint()
        raise error


@pytest.mark.anyio
@pytest.mark.parametrize(
    "error",
    [
        WrongKeyError("the key does not match this object"),
        ValueError("not a tool error"),
        OSError(28, "No space left on device"),
    ],
    ids=["tool error", "ValueError", "OSError"],
)
async def test_a_single_failure_comes_out_unwrapped(error: Exception) -> None:
    with pytest.raises(type(error)) as raised:
        await run_group(error)
    assert raised.value is error
    assert not isinstance(raised.value, BaseExceptionGroup)


@pytest.mark.anyio
async def test_a_failure_of_the_body_itself_comes_out_unwrapped() -> None:
    error = NoSuchObjectError("object does not exist")
    with pytest.raises(NoSuchObjectError) as raised:
        await fail_in_the_body(error)
    assert raised.value is error


@pytest.mark.anyio
async def test_several_failures_are_really_a_group_without_unwrapping() -> None:
    """The scenario the next tests rely on: anyio alone reports both failures as a group."""
    with pytest.raises(BaseExceptionGroup) as raised:
        await run_group(ValueError("first"), [WrongKeyError("second")],
                        group=anyio.create_task_group)  # fmt: skip
    assert [type(e) for e in raised.value.exceptions] == [ValueError, WrongKeyError]


@pytest.mark.anyio
async def test_the_tool_error_beats_an_earlier_plain_failure() -> None:
    with pytest.raises(WrongKeyError, match="second"):
        await run_group(ValueError("first"), [WrongKeyError("second")])


@pytest.mark.anyio
async def test_the_first_tool_error_wins_among_several() -> None:
    with pytest.raises(NoSuchObjectError, match="first"):
        await run_group(
            NoSuchObjectError("first"),
            [AccessDeniedError("second"), TransferFailedError("third")],
        )


@pytest.mark.anyio
async def test_without_tool_errors_the_first_failure_wins() -> None:
    with pytest.raises(ValueError, match="first"):
        await run_group(ValueError("first"), [RuntimeError("second")])


@pytest.mark.anyio
async def test_cancellation_is_not_swallowed() -> None:
    finished: list[str] = []

    async def worker(name: str) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.01)  # a shielded cleanup, like an abort
                finished.append(name)

    with anyio.move_on_after(0.05) as scope:
        async with task_group() as tg:
            tg.start_soon(worker, "a")
            tg.start_soon(worker, "b")
        finished.append("after the group")  # must not run: the group was cancelled
    assert scope.cancelled_caught
    assert sorted(finished) == ["a", "b"]


@pytest.mark.anyio
async def test_a_cancelled_group_leaves_the_task_cancellable_again() -> None:
    """After a cancelled group the enclosing scope catches the cancellation and work goes on."""
    for _ in range(2):
        with anyio.move_on_after(0.01) as scope:
            async with task_group() as tg:
                tg.start_soon(anyio.sleep_forever)
        assert scope.cancelled_caught
    await anyio.lowlevel.checkpoint()


@pytest.mark.anyio
async def test_a_tool_error_raised_while_cancelling_beats_the_cancellation() -> None:
    """A cleanup that fails while the group is being cancelled is what the user needs to see
    (an abort that could not be sent), so it escapes the cancelling scope."""

    async def cancelled_while_a_cleanup_fails() -> None:
        with anyio.move_on_after(0.02):
            async with task_group() as tg:
                tg.start_soon(fail_when_cancelled, TransferFailedError("abort failed"))
                tg.start_soon(anyio.sleep_forever)

    with pytest.raises(TransferFailedError, match="abort failed"):
        await cancelled_while_a_cleanup_fails()


# -- most_meaningful: the rule itself ------------------------------------------------------------

KEYBOARD = KeyboardInterrupt()
EXIT = SystemExit(3)
WRONG_KEY = WrongKeyError("wrong key")
FAILED = TransferFailedError("connection broke")
VALUE = ValueError("a bug")
RUNTIME = RuntimeError("another bug")
CANCELLED = asyncio.CancelledError()


@pytest.mark.parametrize(
    ("leaves", "expected"),
    [
        pytest.param([VALUE, WRONG_KEY], WRONG_KEY, id="tool error beats a plain one"),
        pytest.param([CANCELLED, WRONG_KEY], WRONG_KEY, id="tool error beats a cancellation"),
        pytest.param([FAILED, WRONG_KEY], FAILED, id="first tool error wins"),
        pytest.param([WRONG_KEY, KEYBOARD], KEYBOARD, id="Ctrl-C beats everything"),
        pytest.param([WRONG_KEY, EXIT], EXIT, id="SystemExit beats tool errors"),
        pytest.param([EXIT, KEYBOARD], KEYBOARD, id="Ctrl-C beats SystemExit"),
        pytest.param([VALUE, RUNTIME], VALUE, id="else the first failure"),
        pytest.param([CANCELLED, VALUE], CANCELLED, id="else the first, even a cancellation"),
        pytest.param([CANCELLED], CANCELLED, id="only a cancellation"),
    ],
)
def test_most_meaningful(leaves: list[BaseException], expected: BaseException) -> None:
    assert most_meaningful(BaseExceptionGroup("workers failed", leaves)) is expected


def test_most_meaningful_searches_nested_groups() -> None:
    nested = BaseExceptionGroup(
        "outer",
        [VALUE, ExceptionGroup("inner", [RUNTIME, ExceptionGroup("deeper", [FAILED])])],
    )
    assert most_meaningful(nested) is FAILED
    assert most_meaningful(ExceptionGroup("only plain", [ExceptionGroup("x", [RUNTIME])])) is (
        RUNTIME
    )


def test_tool_errors_are_found_by_their_base_class() -> None:
    class ServerSpecificError(TransferFailedError):
        pass

    special = ServerSpecificError("x")
    assert isinstance(special, SSECTransferError)
    assert most_meaningful(ExceptionGroup("g", [VALUE, special])) is special


# -- in_child_task ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_in_child_task_returns_the_result() -> None:
    async def work() -> int:
        await anyio.lowlevel.checkpoint()
        return 42

    assert await in_child_task(work) == 42


@pytest.mark.anyio
async def test_in_child_task_raises_the_failure_unwrapped() -> None:
    error = WrongKeyError("the key does not match this object")

    async def work() -> int:
        await anyio.lowlevel.checkpoint()
        raise error

    with pytest.raises(WrongKeyError) as raised:
        await in_child_task(work)
    assert raised.value is error


@pytest.mark.anyio
async def test_in_child_task_lets_shielded_cleanup_finish_when_cancelled_natively() -> None:
    """What asyncio.Runner does on Ctrl-C: cancel the main task with Task.cancel()."""
    started = anyio.Event()
    cleaned: list[str] = []

    async def work() -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.05)
                cleaned.append("aborted")

    task = asyncio.ensure_future(in_child_task(work))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["aborted"]


def test_ctrl_c_finishes_the_shielded_cleanup_then_raises_keyboard_interrupt() -> None:
    """A real SIGINT to a process running `anyio.run(in_child_task, ...)`, as the CLI does."""
    script = textwrap.dedent(
        """
        import anyio
        from ssec_transfer.core.taskgroups import in_child_task

        async def work():
            try:
                print("ready", flush=True)
                await anyio.sleep(60)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(0.3)
                    print("cleanup finished", flush=True)

        try:
            anyio.run(in_child_task, work)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert out.split() == ["cleanup", "finished", "KeyboardInterrupt"], err
    assert proc.returncode == 0, err
