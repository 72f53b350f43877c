"""How a signal ends the process: one table for every command.

| signal  | first                                  | second                 | exit |
|---------|----------------------------------------|------------------------|------|
| SIGINT  | stop: abort multipart uploads, remove  | quit at once, without  | 130  |
| SIGTERM | temporary files, print one line (watch | cleanup (`cleanup`     | 143  |
| SIGHUP  | drains first: see `graceful_stop`)     | finds what is left)    | 129  |

The exit code is 128 + the signal's number, as a shell reports a process the signal killed.
systemd, Kubernetes and `timeout` stop processes with SIGTERM, and a closed terminal sends
SIGHUP, so neither may leave more behind than Ctrl-C does.

Signals are received by the event loop (not a Python handler raising mid-bytecode), and the
first one cancels the command's task group: shielded cleanups (aborts, temporary-file removal)
always run to their end.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

import anyio
from anyio import CancelScope

from ssec_transfer.core.taskgroups import task_group

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

T = TypeVar("T")


def exit_code(signum: int) -> int:
    return 128 + signum


class Interrupted(Exception):
    """The command was stopped by `signum`; its cleanups have run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return exit_code(self.signum)


class _Stopper:
    """What the signals received so far have done to the running command."""

    def __init__(self, scope: CancelScope) -> None:
        self.scope = scope
        self.received: list[int] = []
        self.drain: Callable[[str], None] | None = None

    def on_signal(self, signum: int) -> None:
        self.received.append(signum)
        name = signal.Signals(signum).name
        if self.drain is not None and len(self.received) == 1:
            self.drain(name)
        elif not self.scope.cancel_called:
            self.scope.cancel()
        else:
            # Asked twice: the user would rather have the prompt back than the cleanup.
            print(
                f"ssec-transfer: {name} again: quitting without cleanup; "
                "`ssec-transfer cleanup` finds unfinished uploads and temporary files",
                file=sys.stderr,
                flush=True,
            )
            os._exit(exit_code(signum))


_current: _Stopper | None = None


@contextmanager
def graceful_stop(drain: Callable[[str], None]) -> Iterator[None]:
    """While inside, the first signal calls `drain(signal_name)` instead of cancelling
    (`watch` finishes the uploads in flight); the next one cancels as usual."""
    stopper = _current
    if stopper is None:  # not under `run_until_signal` (the Python API): nothing to do
        yield
        return
    stopper.drain = drain
    try:
        yield
    finally:
        stopper.drain = None


async def run_until_signal(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` in a child task; a stop signal cancels it and raises `Interrupted`."""
    global _current
    results: list[T] = []
    work_scope = anyio.CancelScope()
    stopper = _Stopper(work_scope)
    # The listener lives outside the work's scope: it must still hear a second signal while
    # the cancelled work runs its cleanups.
    async with task_group() as tg:

        async def listen() -> None:
            with anyio.open_signal_receiver(*STOP_SIGNALS) as received:
                async for signum in received:
                    stopper.on_signal(signum)

        async def child() -> None:
            try:
                with work_scope:
                    results.append(await work())
            except Exception:
                # A cleanup that failed because the signal cut its request short: the
                # signal is what the user must hear about.
                if not stopper.received:
                    raise
            finally:
                tg.cancel_scope.cancel()  # the listener's work is done too

        _current = stopper
        tg.start_soon(listen)
        tg.start_soon(child)
    _current = None
    if stopper.received and not results:
        raise Interrupted(stopper.received[0])
    return results[0]


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def install_for_sync_commands() -> None:
    """SIGTERM and SIGHUP end a synchronous command like Ctrl-C does (Python raises
    KeyboardInterrupt for SIGINT; these raise `Interrupted`), so `finally` blocks run."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupted)
