"""Request bodies: seekable file-likes for botocore, sliced aiohttp payloads for the wire.

botocore measures a body with `len()`, reads it, and on a retry rewinds it with `seek(0)` and
sends it again: the bytes must be the same each time. aiohttp writes the payload to the TLS
transport; these payloads hand it at most one slice at a time, so a part in flight never costs
its whole size twice. The classes are tested directly, whatever registers them with aiohttp.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.abc import AbstractStreamWriter
from botocore.awsrequest import AWSPreparedRequest
from botocore.utils import determine_content_length

from ssec_transfer.s3.bodies import (
    FILE_SLICE,
    SLICE,
    FilePartBody,
    FilePartPayload,
    PartBody,
    PartPayload,
)

DATA = os.urandom(2 * SLICE + 12345)


class RecordingWriter:
    """Stands in for aiohttp's StreamWriter: keeps every chunk handed to `write`."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        self.chunks.append(bytes(chunk))

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    def as_writer(self) -> AbstractStreamWriter:
        return cast(AbstractStreamWriter, self)


@pytest.fixture
def source_file(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    """An open file of 3 file slices and a bit, and its content."""
    content = os.urandom(3 * FILE_SLICE + 777)
    path = tmp_path / "source.bin"
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    yield fd, content
    os.close(fd)


OFFSET = 1000
LENGTH = FILE_SLICE + 4321  # two slices, the second one short; ends before the end of the file


def file_body(fd: int) -> FilePartBody:
    return FilePartBody(fd, OFFSET, LENGTH)


# -- the file-like side: what botocore sees ----------------------------------------------------


# (start position, offset, whence, expected position) over a body of 100 bytes
SEEKS = [
    pytest.param(0, 10, io.SEEK_SET, 10, id="SET"),
    pytest.param(40, 0, io.SEEK_SET, 0, id="SET 0 rewinds"),
    pytest.param(40, 10, io.SEEK_CUR, 50, id="CUR forward"),
    pytest.param(40, -15, io.SEEK_CUR, 25, id="CUR back"),
    pytest.param(40, 0, io.SEEK_CUR, 40, id="CUR 0 is tell"),
    pytest.param(0, 0, io.SEEK_END, 100, id="END"),
    pytest.param(0, -30, io.SEEK_END, 70, id="END back"),
    pytest.param(0, -5, io.SEEK_SET, 0, id="SET negative clamps at 0"),
    pytest.param(40, -41, io.SEEK_CUR, 0, id="CUR before start clamps at 0"),
    pytest.param(0, -500, io.SEEK_END, 0, id="END before start clamps at 0"),
    pytest.param(0, 20, io.SEEK_END, 120, id="END past the end"),
]


@pytest.mark.parametrize(("start", "offset", "whence", "expected"), SEEKS)
def test_part_body_seek(start: int, offset: int, whence: int, expected: int) -> None:
    body = PartBody(DATA[:100])
    body.seek(start)
    assert body.seek(offset, whence) == expected
    assert body.tell() == expected
    assert body.read() == DATA[:100][expected:]


@pytest.mark.parametrize(("start", "offset", "whence", "expected"), SEEKS)
def test_file_part_body_seek(
    source_file: tuple[int, bytes], start: int, offset: int, whence: int, expected: int
) -> None:
    fd, content = source_file
    body = FilePartBody(fd, OFFSET, 100)
    body.seek(start)
    assert body.seek(offset, whence) == expected
    assert body.tell() == expected
    assert body.read() == content[OFFSET : OFFSET + 100][expected:]


def test_part_body_reads_in_order() -> None:
    body = PartBody(DATA)
    assert len(body) == len(DATA)
    assert body.readable()
    assert body.seekable()
    assert body.tell() == 0
    assert body.read(10) == DATA[:10]
    assert body.tell() == 10
    buffer = bytearray(20)
    assert body.readinto(buffer) == 20
    assert bytes(buffer) == DATA[10:30]
    assert body.tell() == 30
    assert bytes(body.remaining()) == DATA[30:]
    assert body.read() == DATA[30:]
    assert body.read(1) == b""
    assert body.readinto(bytearray(5)) == 0


def test_part_body_readinto_a_larger_buffer_fills_only_what_is_left() -> None:
    body = PartBody(DATA[:50])
    body.seek(45)
    buffer = bytearray(b"\xff" * 16)
    assert body.readinto(memoryview(buffer)) == 5
    assert bytes(buffer[:5]) == DATA[45:50]
    assert bytes(buffer[5:]) == b"\xff" * 11


def test_file_part_body_reads_only_its_range(source_file: tuple[int, bytes]) -> None:
    fd, content = source_file
    part = content[OFFSET : OFFSET + LENGTH]
    body = file_body(fd)
    assert len(body) == LENGTH
    assert body.readable()
    assert body.seekable()
    assert body.read(10) == part[:10]
    buffer = bytearray(20)
    assert body.readinto(buffer) == 20
    assert bytes(buffer) == part[10:30]
    assert body.tell() == 30
    assert body.read() == part[30:]  # stops at the range's end, though the file goes on
    assert body.tell() == LENGTH
    assert body.read(1) == b""
    body.seek(5, io.SEEK_END)
    assert body.readinto(bytearray(8)) == 0


def test_empty_bodies() -> None:
    body = PartBody(b"")
    assert len(body) == 0
    assert body.read() == b""
    assert determine_content_length(body) == 0


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_rewind_and_reread_gives_identical_bytes(source_file: tuple[int, bytes], kind: str) -> None:
    """What botocore does on a retry: measure, read (maybe partly), rewind, read again."""
    fd, content = source_file
    body: PartBody | FilePartBody = PartBody(DATA) if kind == "memory" else file_body(fd)
    expected = DATA if kind == "memory" else content[OFFSET : OFFSET + LENGTH]
    assert determine_content_length(body) == len(expected)
    first = body.read()
    request = AWSPreparedRequest("PUT", "https://s3.example.test/b/k", {}, body, False)
    body.seek(777)  # a broken first attempt stopped somewhere in the middle
    request.reset_stream()  # botocore's rewind before it sends again
    assert body.tell() == 0
    again = body.read()
    assert first == again == expected


def test_read_slice_raises_when_the_file_shrank(
    source_file: tuple[int, bytes], tmp_path: Path
) -> None:
    fd, content = source_file
    body = file_body(fd)
    assert body.read_slice(0, 100) == content[OFFSET : OFFSET + 100]
    os.truncate(tmp_path / "source.bin", OFFSET + 500)
    assert body.read_slice(0, 500) == content[OFFSET : OFFSET + 500]
    with pytest.raises(OSError, match="shrank"):
        body.read_slice(400, 200)


# -- the payload side: what aiohttp writes -----------------------------------------------------


@pytest.mark.anyio
async def test_part_payload_writes_slices_of_at_most_slice_bytes() -> None:
    payload = PartPayload(PartBody(DATA))
    assert payload.size == len(DATA)
    writer = RecordingWriter()
    await payload.write(writer.as_writer())
    assert writer.data == DATA
    assert max(len(c) for c in writer.chunks) <= SLICE
    assert len(writer.chunks) == -(-len(DATA) // SLICE)


@pytest.mark.anyio
async def test_part_payload_starts_at_the_current_position() -> None:
    body = PartBody(DATA)
    body.seek(SLICE + 3)
    payload = PartPayload(body)
    assert payload.size == len(DATA) - SLICE - 3
    writer = RecordingWriter()
    await payload.write(writer.as_writer())
    assert writer.data == DATA[SLICE + 3 :]
    assert all(len(c) <= SLICE for c in writer.chunks)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_length",
    [0, 1, SLICE - 1, SLICE, SLICE + 1, 2 * SLICE + 7, len(DATA), len(DATA) + 1000],
)
async def test_part_payload_honours_content_length(content_length: int) -> None:
    body = PartBody(DATA)
    body.seek(5)
    writer = RecordingWriter()
    await PartPayload(body).write_with_length(writer.as_writer(), content_length)
    assert writer.data == DATA[5 : 5 + content_length]
    assert all(0 < len(c) <= SLICE for c in writer.chunks)


@pytest.mark.anyio
async def test_part_payload_unwraps_aiobotocores_proxy() -> None:
    """aiobotocore hands aiohttp an `_IOBaseWrapper` around IOBase bodies."""
    from aiobotocore._endpoint_helpers import _IOBaseWrapper

    body = PartBody(DATA)
    body.seek(10)
    payload = PartPayload(_IOBaseWrapper(body))
    assert payload.size == len(DATA) - 10
    writer = RecordingWriter()
    await payload.write(writer.as_writer())
    assert writer.data == DATA[10:]


@pytest.mark.anyio
async def test_part_payload_resent_after_rewind_is_identical() -> None:
    body = PartBody(DATA)
    first, second = RecordingWriter(), RecordingWriter()
    await PartPayload(body).write(first.as_writer())
    body.seek(0)
    await PartPayload(body).write(second.as_writer())
    assert first.chunks == second.chunks
    assert first.data == DATA


def test_part_payload_decodes_what_is_left() -> None:
    body = PartBody(b"hello, world")
    body.seek(7)
    assert PartPayload(body).decode() == "world"


@pytest.mark.anyio
async def test_file_payload_writes_its_range_in_file_slices(
    source_file: tuple[int, bytes],
) -> None:
    fd, content = source_file
    payload = FilePartPayload(file_body(fd))
    assert payload.size == LENGTH
    writer = RecordingWriter()
    await payload.write(writer.as_writer())
    assert writer.data == content[OFFSET : OFFSET + LENGTH]
    assert [len(c) for c in writer.chunks] == [FILE_SLICE, LENGTH - FILE_SLICE]


@pytest.mark.anyio
async def test_file_payload_starts_at_the_current_position(
    source_file: tuple[int, bytes],
) -> None:
    fd, content = source_file
    body = file_body(fd)
    body.seek(1234)
    payload = FilePartPayload(body)
    assert payload.size == LENGTH - 1234
    writer = RecordingWriter()
    await payload.write(writer.as_writer())
    assert writer.data == content[OFFSET + 1234 : OFFSET + LENGTH]
    assert all(len(c) <= FILE_SLICE for c in writer.chunks)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_length", [0, 1, FILE_SLICE - 1, FILE_SLICE, FILE_SLICE + 1, LENGTH, LENGTH + 99]
)
async def test_file_payload_honours_content_length(
    source_file: tuple[int, bytes], content_length: int
) -> None:
    fd, content = source_file
    body = file_body(fd)
    body.seek(3)
    writer = RecordingWriter()
    await FilePartPayload(body).write_with_length(writer.as_writer(), content_length)
    part = content[OFFSET : OFFSET + LENGTH]
    assert writer.data == part[3 : 3 + content_length]
    assert all(0 < len(c) <= FILE_SLICE for c in writer.chunks)


@pytest.mark.anyio
async def test_file_payload_resent_after_rewind_is_identical(
    source_file: tuple[int, bytes],
) -> None:
    fd, _ = source_file
    body = file_body(fd)
    first, second = RecordingWriter(), RecordingWriter()
    await FilePartPayload(body).write(first.as_writer())
    body.read(100)
    body.seek(0)
    await FilePartPayload(body).write(second.as_writer())
    assert first.chunks == second.chunks


@pytest.mark.anyio
async def test_file_payload_fails_when_the_file_shrank(
    source_file: tuple[int, bytes], tmp_path: Path
) -> None:
    """A file cut short mid-upload must fail the request, never send fewer bytes than the
    Content-Length announced."""
    fd, content = source_file
    payload = FilePartPayload(file_body(fd))
    os.truncate(tmp_path / "source.bin", OFFSET + FILE_SLICE + 10)
    writer = RecordingWriter()
    with pytest.raises(OSError, match="shrank"):
        await payload.write(writer.as_writer())
    assert writer.data == content[OFFSET : OFFSET + FILE_SLICE]  # the first slice went out


@pytest.mark.anyio
async def test_empty_payloads_write_nothing(source_file: tuple[int, bytes]) -> None:
    fd, _ = source_file
    writer = RecordingWriter()
    memory = PartPayload(PartBody(b""))
    on_disk = FilePartPayload(FilePartBody(fd, OFFSET, 0))
    assert memory.size == on_disk.size == 0
    await memory.write(writer.as_writer())
    await on_disk.write(writer.as_writer())
    assert writer.chunks == []


def test_file_payload_is_binary(source_file: tuple[int, bytes]) -> None:
    fd, _ = source_file
    with pytest.raises(TypeError):
        FilePartPayload(file_body(fd)).decode()


def test_payloads_are_octet_streams(source_file: tuple[int, bytes]) -> None:
    fd, _ = source_file
    payloads: list[Any] = [PartPayload(PartBody(DATA)), FilePartPayload(file_body(fd))]
    for payload in payloads:
        assert payload.content_type == "application/octet-stream"
