"""The bandwidth limit (`--bwlimit`): one token bucket that every payload byte of a process
is charged to, uploads and downloads alike.

A shared uplink needs one number for the whole run, not one per request or per direction:
the bucket is shared by every request in flight, and the S3 layer charges it chunk by chunk
as request bodies are written and response bodies read (`s3.bandwidth`). Headers, TLS and
TCP overhead are not counted, so the wire carries a few percent more than RATE.

The arithmetic is the generic cell rate algorithm, which is a token bucket written as one
number: the time (`_tat`) at which the bytes already granted will have drained at RATE. A
charge of n bytes moves it n / RATE later and may go ahead once it is less than one burst
ahead of now. So:

- over any span of grants, the bytes granted exceed RATE x the span by at most one burst
  (or the first charge, when that is larger): the long-run rate never exceeds RATE;
- a charge larger than the burst is not refused, it waits longer (no deadlock on big reads);
- waiters are served in the order they asked, each sleeping once for exactly its own wait:
  no polling, no lock held while sleeping, fair among any number of tasks;
- an idle bucket refills to one burst, no more.

The reservation is taken under a thread lock, so the engines of several threads in one
process (a Dask worker with several threads) can share a bucket; each waits on its own
event loop. A wait that is cancelled keeps its charge: the limit errs on the slow side.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable

import anyio

KiB = 1024
# Chunks charged at once: about 1/16 s of the rate, within these bounds. Small enough that
# many requests sharing a slow link each move every fraction of a second (a server drops a
# connection that stays silent too long); large enough that the cost per chunk (one sleep,
# one write) stays negligible at high rates.
MIN_CHUNK = 4 * KiB
MAX_CHUNK = 256 * KiB
CHUNKS_PER_SECOND = 16
# Below this a single chunk takes seconds and connections shared by several requests sit
# idle long enough for servers to drop them; the command line refuses it.
MIN_RATE = 1 * KiB


def chunk_for(rate: float) -> int:
    """Bytes charged (and sent or read) at a time under a limit of `rate` bytes/s."""
    return int(min(MAX_CHUNK, max(MIN_CHUNK, rate / CHUNKS_PER_SECOND)))


class TokenBucket:
    """`rate` bytes per second, with a burst of about one chunk (or 1/16 s of the rate when
    that is more, so that the sleeps' own jitter does not eat into the rate).

    `clock` (seconds, monotonic, shared by every thread using the bucket) and `sleep` are
    injectable for tests."""

    def __init__(
        self,
        rate: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"a bandwidth limit must be a positive number of bytes/s, not {rate}")
        self.rate = float(rate)
        self.chunk = chunk_for(rate)
        self.burst = burst if burst is not None else max(self.chunk, int(rate / CHUNKS_PER_SECOND))
        if self.burst < 1:
            raise ValueError("the burst must be at least one byte")
        self._tau = self.burst / self.rate  # how far ahead of now a grant may reach
        self._tat = -math.inf  # when everything granted so far will have drained at `rate`
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    def reserve(self, n: int) -> float:
        """Charge `n` bytes now; return how many seconds to wait before moving them."""
        with self._lock:
            now = self._clock()
            self._tat = max(self._tat, now) + n / self.rate
            return max(0.0, self._tat - self._tau - now)

    async def consume(self, n: int) -> None:
        """Wait until `n` more bytes may move (at once when the bucket holds them)."""
        delay = self.reserve(n)
        if delay > 0:
            await self._sleep(delay)
