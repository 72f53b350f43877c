"""Part-level retries: the second level under botocore's request retries.

botocore retries a request until its response headers arrive. A body that breaks afterwards
(connection reset, read timeout, short read) or a part the server rejects as corrupted
(BadDigest) is retried here, for that part only, with exponential backoff and full jitter.

Neither level retries for ever: a `ProgressClock` measures how long a request (or a part, across
all its requests) has gone without a sign of life from the server, and no attempt is started
once that reaches `RetryPolicy.request_timeout` (see `ssec_transfer.s3.timeouts`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

# What a body can fail with after the headers is S3's business: `s3.errors.BODY_ERRORS`.
# Nothing here imports aiohttp or botocore, so the CLI can read the defaults below cheaply.

# Defaults of the per-attempt and per-request bounds (`--connect-timeout`, `--read-timeout`,
# `--request-timeout`); README "Tuning" says why these numbers.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
REQUEST_TIMEOUT = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # per part, including the first
    base_delay: float = 0.25
    max_delay: float = 10.0
    # No new attempt once a part has gone this long without a byte moving either way.
    request_timeout: float = REQUEST_TIMEOUT

    def delay(self, attempt: int) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^attempt)]."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))  # noqa: S311 - jitter, not security


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ProgressClock:
    """How long a request, or a part across its requests, has gone without progress: a byte of
    a body moving either way, or an answer from the server. Time spent waiting for a request
    slot or for a slow consumer is not the server's silence: `shift` takes it off."""

    __slots__ = ("_last", "_sent")

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._sent = 0  # the furthest byte of the request body any attempt got taken

    def moved(self) -> None:
        self._last = time.monotonic()

    def shift(self, seconds: float) -> None:
        """Do not count `seconds` just spent waiting on this side as silence."""
        self._last = min(self._last + max(seconds, 0.0), time.monotonic())

    def sent(self, upto: int, took: float) -> None:
        """The request body was taken up to byte `upto`, the last of it in `took` seconds.
        Bytes beyond what earlier attempts got through are progress; sending again what they
        did is neither progress nor silence, so a server that takes every body and never
        answers is given up on, and a slow link resending a broken part is never cut."""
        if upto > self._sent:
            self._sent = upto
            self.moved()
        else:
            self.shift(took)

    def silent_for(self) -> float:
        return time.monotonic() - self._last

    @contextmanager
    def active(self) -> Iterator[ProgressClock]:
        """Make this the clock that requests started inside the block report progress to
        (`current_progress`), so a part's retries share one measure of silence."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)


_CURRENT: ContextVar[ProgressClock | None] = ContextVar("ssec_transfer_progress", default=None)


def current_progress() -> ProgressClock | None:
    """The clock of the request series running in this task (request bodies are written in a
    task aiohttp starts for them, which inherits it), or None outside one."""
    return _CURRENT.get()
