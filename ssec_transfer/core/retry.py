"""Part-level retries: the second level under botocore's request retries.

botocore retries a request until its response headers arrive. A body that breaks afterwards
(connection reset, read timeout, short read) or a part the server rejects as corrupted
(BadDigest) is retried here, for that part only, with exponential backoff and full jitter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import aiohttp
import botocore.exceptions as bx

# What a response body (or a request body on its way) can fail with after the headers.
BODY_ERRORS: tuple[type[BaseException], ...] = (
    bx.ResponseStreamingError,
    bx.ReadTimeoutError,
    bx.IncompleteReadError,
    bx.ConnectionClosedError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientConnectionError,
    TimeoutError,
    ConnectionError,
)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # per part, including the first
    base_delay: float = 0.25
    max_delay: float = 10.0

    def delay(self, attempt: int) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^attempt)]."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))  # noqa: S311 - jitter, not security


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
