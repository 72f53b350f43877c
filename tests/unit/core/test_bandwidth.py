"""The token bucket behind --bwlimit: never faster than RATE beyond one burst, never slower
than it needs to be, first come first served, one sleep per charge."""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssec_transfer.core.bandwidth import MAX_CHUNK, MIN_CHUNK, TokenBucket, chunk_for

MiB = 1024 * 1024
EPS = 1e-6


class FakeTime:
    """A clock that only moves when a sleeper sleeps (one task at a time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _bucket(rate: float, burst: int | None = None) -> tuple[TokenBucket, FakeTime]:
    fake = FakeTime()
    return TokenBucket(rate, burst=burst, clock=fake.clock, sleep=fake.sleep), fake


def test_a_charge_within_the_burst_goes_at_once() -> None:
    bucket, fake = _bucket(1 * MiB, burst=64 * 1024)
    anyio.run(bucket.consume, 64 * 1024)
    assert fake.sleeps == []


def test_back_to_back_charges_drain_at_the_rate() -> None:
    """6 MiB at 2 MiB/s with a 128 KiB burst: (6 MiB - 128 KiB) / 2 MiB/s of waiting."""
    bucket, fake = _bucket(2 * MiB, burst=128 * 1024)
    start = fake.now

    async def run() -> None:
        for _ in range(48):
            await bucket.consume(128 * 1024)

    anyio.run(run)
    assert fake.now - start == pytest.approx((6 * MiB - 128 * 1024) / (2 * MiB))


def test_an_idle_bucket_refills_to_one_burst_only() -> None:
    bucket, fake = _bucket(1 * MiB, burst=100_000)
    anyio.run(bucket.consume, 100_000)
    fake.now += 3600  # an hour idle banks no more than one burst
    anyio.run(bucket.consume, 100_000)
    assert fake.sleeps == []
    anyio.run(bucket.consume, 100_000)
    assert fake.sleeps == [pytest.approx(100_000 / MiB)]


def test_a_charge_larger_than_the_burst_waits_for_the_excess() -> None:
    """A whole small object read at once is not refused, it waits its share."""
    bucket, fake = _bucket(1 * MiB, burst=256 * 1024)
    anyio.run(bucket.consume, 8 * MiB)
    assert fake.sleeps == [pytest.approx((8 * MiB - 256 * 1024) / MiB)]


def test_concurrent_waiters_are_served_in_the_order_they_asked() -> None:
    """Frozen clock: each of ten tasks sleeps once, for exactly its place in the queue."""
    bucket, _ = _bucket(1000, burst=100)
    waits: list[tuple[int, float]] = []

    async def record(seconds: float) -> None:
        waits.append((len(waits), seconds))

    bucket._sleep = record

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(bucket.consume, 100)

    anyio.run(run)
    # the first goes from the burst; the k-th waits for the k-1 before it
    assert [w for _, w in waits] == [pytest.approx(k * 0.1) for k in range(1, 10)]


def test_threads_sharing_a_bucket_lose_no_charge() -> None:
    """A Dask worker's threads share one bucket: every reservation counts exactly once."""
    now = [0.0]
    bucket = TokenBucket(1_000_000, burst=1, clock=lambda: now[0])

    def charge() -> None:
        for _ in range(1000):
            bucket.reserve(10)

    threads = [threading.Thread(target=charge) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 8 x 1000 x 10 bytes at 1 MB/s: the last grant is 80 ms out, minus the 1-byte burst
    assert bucket.reserve(0) == pytest.approx(0.08 - 1e-6)


def test_real_time_lower_bound() -> None:
    """Eight tasks moving 1 MiB through a 2 MiB/s bucket take at least (1 MiB - burst)/rate
    (a lower bound only: this machine is shared and slow)."""
    bucket = TokenBucket(2 * MiB)

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                for _ in range(4):
                    tg.start_soon(bucket.consume, 32 * 1024)

    started = time.monotonic()
    anyio.run(run)
    assert time.monotonic() - started >= (1 * MiB - bucket.burst) / (2 * MiB) - 0.01


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_a_rate_must_be_positive_and_finite(rate: float) -> None:
    with pytest.raises(ValueError, match="positive number of bytes/s"):
        TokenBucket(rate)


def test_chunks_are_a_sixteenth_of_a_second_within_bounds() -> None:
    assert chunk_for(1024) == MIN_CHUNK
    assert chunk_for(2 * MiB) == 128 * 1024
    assert chunk_for(10 * 1024 * MiB) == MAX_CHUNK
    bucket = TokenBucket(1024 * MiB)  # fast links: a burst of 1/16 s, so sleeps' jitter is moot
    assert bucket.burst == 64 * MiB
    assert bucket.chunk == MAX_CHUNK


_steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=2, allow_nan=False),  # time since the previous ask
        st.integers(min_value=0, max_value=4 * MiB),  # bytes asked for
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(min_value=1024, max_value=1e9, allow_nan=False),
    burst=st.integers(min_value=1, max_value=8 * MiB),
    steps=_steps,
)
def test_no_span_of_grants_exceeds_the_rate_beyond_one_burst(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    """Asks at any times (callers in any number of tasks): between the grants of the i-th
    and j-th asks, bytes i..j are at most RATE x the span plus the larger of the burst and
    the i-th ask. Grants keep the order of the asks, and no ask waits longer than the queue
    ahead of it needs."""
    now = [0.0]
    bucket = TokenBucket(rate, burst=burst, clock=lambda: now[0])
    grants: list[float] = []
    sizes: list[int] = []
    for gap, n in steps:
        now[0] += gap
        grant = now[0] + bucket.reserve(n)
        previous = grants[-1] if grants else now[0]
        assert grant >= previous - EPS  # first come, first served
        assert grant <= max(now[0], previous) + n / rate + EPS  # never slower than needed
        grants.append(grant)
        sizes.append(n)
    for i in range(len(grants)):
        total = 0
        for j in range(i, len(grants)):
            total += sizes[j]
            slack = max(burst, sizes[i]) + rate * EPS * 10 + 1e-6 * total
            assert total <= rate * (grants[j] - grants[i]) + slack
