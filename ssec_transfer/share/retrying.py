"""Retries for the requests made without S3 credentials (`post`, `get/put --url`).

botocore retries the tool's other requests; these go through aiohttp directly, so a reset
connection or a 503 from a busy gateway would otherwise fail a ground station's upload on the
first hiccup. An attempt marks what may succeed if repeated (`Retryable`); refusals (wrong
key, expired grant or URL, a file that changed) are raised at once. Backoff is the engine's
(`core.retry.RetryPolicy`: full jitter, 5 attempts).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from ssec_transfer.core.errors import SSECTransferError
from ssec_transfer.core.retry import RetryPolicy

T = TypeVar("T")
log = logging.getLogger("ssec_transfer")

# Answers a repeat may not get: throttling, a gateway or server that is busy or restarting.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class Retryable(Exception):
    """An attempt's failure that another attempt may not meet; `error` is what the user sees
    if none succeeds."""

    def __init__(self, error: SSECTransferError) -> None:
        super().__init__(str(error))
        self.error = error


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    policy: RetryPolicy | None = None,
    rewind: Callable[[], None] | None = None,
) -> T:
    """`attempt()` until it returns, raises anything but `Retryable`, or the attempts run out
    (then the last attempt's error). `rewind` undoes what a failed attempt reported (progress)."""
    policy = policy or RetryPolicy()
    for number in range(1, policy.max_attempts + 1):
        try:
            return await attempt()
        except Retryable as failed:
            if rewind is not None:
                rewind()
            if number >= policy.max_attempts:
                raise failed.error from None
            delay = policy.delay(number)
            log.warning(
                "%s: %s; attempt %d of %d in %.1f s",
                what, failed.error, number + 1, policy.max_attempts, delay,
            )  # fmt: skip
            await anyio.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")
