"""Where --bwlimit is charged: request bodies before each chunk is written, GET bodies after
each chunk is read. The bytes are unchanged; every one of them is charged exactly once per
crossing; without a limit nothing changes. (Real transfers: tests/integration/transfer/
test_bwlimit.py.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.abc import AbstractStreamWriter

from ssec_transfer.core.bandwidth import TokenBucket
from ssec_transfer.s3.bandwidth import ChargedBody
from ssec_transfer.s3.bodies import FilePartBody, FilePartPayload, PartBody, PartPayload

MiB = 1024 * 1024


class Ledger:
    """A bucket's clock and sleep that record what was charged, in order, and never wait."""

    def __init__(self, rate: float) -> None:
        self.charged: list[int] = []
        self.bucket = TokenBucket(rate, clock=lambda: 0.0, sleep=self._sleep)
        original = self.bucket.reserve

        def reserve(n: int) -> float:
            self.charged.append(n)
            return original(n)

        self.bucket.reserve = reserve  # type: ignore[method-assign]

    async def _sleep(self, seconds: float) -> None:
        return None


class RecordingWriter:
    def __init__(self, ledger: Ledger | None = None) -> None:
        self.chunks: list[bytes] = []
        self.ledger = ledger
        self.charged_before_write: list[bool] = []

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self.ledger is not None:  # the chunk was charged before it was handed over
            self.charged_before_write.append(
                sum(self.ledger.charged) >= sum(map(len, self.chunks)) + len(chunk)
            )
        self.chunks.append(bytes(chunk))

    def as_writer(self) -> AbstractStreamWriter:
        return cast(AbstractStreamWriter, self)


@pytest.mark.anyio
async def test_a_part_in_memory_is_written_in_charged_chunks() -> None:
    data = os.urandom(3 * MiB + 5)
    ledger = Ledger(2 * MiB)  # chunks of 128 KiB
    body = PartBody(data)
    body.bandwidth = ledger.bucket
    writer = RecordingWriter(ledger)
    await PartPayload(body).write(writer.as_writer())
    assert b"".join(writer.chunks) == data
    assert max(map(len, writer.chunks)) == 128 * 1024
    assert ledger.charged == [len(c) for c in writer.chunks]
    assert all(writer.charged_before_write)


@pytest.mark.anyio
async def test_a_file_part_is_written_in_charged_chunks(tmp_path: Path) -> None:
    content = os.urandom(2 * MiB + 777)
    path = tmp_path / "f"
    path.write_bytes(content)
    ledger = Ledger(1 * MiB)  # chunks of 64 KiB
    fd = os.open(path, os.O_RDONLY)
    try:
        body = FilePartBody(fd, 100, len(content) - 100)
        body.bandwidth = ledger.bucket
        writer = RecordingWriter(ledger)
        await FilePartPayload(body).write(writer.as_writer())
    finally:
        os.close(fd)
    assert b"".join(writer.chunks) == content[100:]
    assert sum(ledger.charged) == len(content) - 100
    assert max(map(len, writer.chunks)) == 64 * 1024
    assert all(writer.charged_before_write)


@pytest.mark.anyio
async def test_without_a_limit_slices_are_written_whole() -> None:
    data = os.urandom(MiB)
    writer = RecordingWriter()
    await PartPayload(PartBody(data)).write(writer.as_writer())
    assert [len(c) for c in writer.chunks] == [256 * 1024] * 4


class FakeStreamingBody:
    """aiobotocore's body as the read loops see it: read(n) gives up to n bytes (here at most
    100 KiB at a time, as a connection does), read() the rest; b"" at the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.entered = self.exited = False
        self.reads: list[int | None] = []

    async def read(self, amt: int | None = None) -> bytes:
        self.reads.append(amt)
        end = len(self.data) if amt is None or amt < 0 else self.pos + min(amt, 100 * 1024)
        piece = self.data[self.pos : end]
        self.pos += len(piece)
        return piece

    async def __aenter__(self) -> FakeStreamingBody:
        self.entered = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.exited = True

    def tell(self) -> int:
        return self.pos


@pytest.mark.anyio
async def test_a_get_body_is_read_and_charged_a_chunk_at_a_time() -> None:
    data = os.urandom(3 * MiB + 1)
    ledger = Ledger(1 * MiB)  # chunks of 64 KiB
    inner = FakeStreamingBody(data)
    got: list[bytes] = []
    async with ChargedBody(inner, ledger.bucket) as body:
        while piece := await body.read(8 * MiB):  # a caller asking for a lot at once
            got.append(piece)
        assert cast(Any, body).tell() == len(data)  # the rest of the body's API is its own
    assert b"".join(got) == data
    assert inner.entered
    assert inner.exited
    assert max(map(len, got)) == 64 * 1024
    assert ledger.charged == [len(p) for p in got]
    assert inner.reads[-1] == 64 * 1024  # the end is seen by a read of the body itself


@pytest.mark.anyio
async def test_reading_a_whole_get_body_is_charged_in_chunks_too() -> None:
    data = os.urandom(MiB + 3)
    ledger = Ledger(2 * MiB)
    body = ChargedBody(FakeStreamingBody(data), ledger.bucket)
    assert await body.read() == data
    assert await body.read(0) == b""
    assert sum(ledger.charged) == len(data)
    assert max(ledger.charged) <= 128 * 1024
    assert len(ledger.charged) > 1
    assert b"".join([c async for c in ChargedBody(FakeStreamingBody(data), ledger.bucket)]) == data
