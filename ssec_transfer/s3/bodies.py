"""Request bodies that reach the TLS layer in slices, never a whole part at once.

Given a whole `bytes` part, aiohttp writes it to the TLS transport in one call; asyncio then
encrypts all of it into its own buffers, so each in-flight part costs twice its size or more.
Each body here is two things: a seekable file-like object for botocore (so retries can rewind
it), and an aiohttp payload that writes it slice by slice, draining after each, so what is in
flight per connection stays about one slice.

- `PartBody`: a part already in memory (single PUTs, streams); slices are zero-copy views.
- `FilePartBody`: a byte range of an open file, read slice by slice in a worker thread; a
  multipart upload of any size then holds only a few slices per connection in memory.

Each body is written under `s3.timeouts.bounded_body`: a server that stops taking data fails
the attempt after the read timeout (aiohttp itself has no write timeout), and every slice
taken counts as progress of its request. Under a bandwidth limit (`--bwlimit`) each slice is
written in the limit's chunks, each charged to it first (`s3.bandwidth`).

aiohttp finds the payloads through its global registry once `register_payloads()` has run,
which `s3.client.open_client` does.
"""

from __future__ import annotations

import io
import os
import threading
from typing import Any

import anyio
from aiohttp import payload
from aiohttp.abc import AbstractStreamWriter

from ssec_transfer.core.bandwidth import TokenBucket
from ssec_transfer.s3.bandwidth import write_charged
from ssec_transfer.s3.timeouts import bounded_body

SLICE = 256 * 1024
FILE_SLICE = 512 * 1024  # memory per request in flight vs thread hand-offs per GiB


class _SeekableBody(io.RawIOBase):
    """A read-only body of `len(self)` bytes with a position botocore can rewind."""

    # The bandwidth limit its bytes are charged to as they are written (`s3.bandwidth`), set
    # by the client that sends it (`s3.client.S3Client`); None: no limit.
    bandwidth: TokenBucket | None = None

    def __init__(self) -> None:
        super().__init__()
        self._pos = 0

    def __len__(self) -> int:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self)}[whence]
        self._pos = max(0, base + offset)
        return self._pos


class PartBody(_SeekableBody):
    """A read-only, seekable view of bytes that are already in memory."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._view = memoryview(data)

    def __len__(self) -> int:
        return len(self._view)

    def readinto(self, buffer: Any) -> int:
        chunk = self._view[self._pos : self._pos + len(buffer)]
        n = len(chunk)
        buffer[:n] = chunk
        self._pos += n
        return n

    def remaining(self) -> memoryview:
        return self._view[self._pos :]


class PartPayload(payload.Payload):
    _value: PartBody

    def __init__(self, value: Any, *args: Any, **kwargs: Any) -> None:
        body = getattr(value, "__wrapped__", value)  # aiobotocore wraps IOBase bodies
        kwargs.setdefault("content_type", "application/octet-stream")
        super().__init__(body, *args, **kwargs)
        self._size = len(body.remaining())

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self._value.remaining()).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        view = self._value.remaining()
        base = self._value.tell()  # bytes taken are counted from the start of the body
        if content_length is not None:
            view = view[:content_length]
        bucket = self._value.bandwidth
        with bounded_body() as taken:
            if bucket is not None:  # in the limit's chunks, which are at most a slice
                await write_charged(writer, view, bucket, taken, base)
                return
            for start in range(0, len(view), SLICE):
                await writer.write(view[start : start + SLICE])
                taken(base + min(start + SLICE, len(view)))


class FilePartBody(_SeekableBody):
    """The byte range [offset, offset + length) of an open file descriptor."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        super().__init__()
        self.fd, self.offset, self.length = fd, offset, length

    def __len__(self) -> int:
        return self.length

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.length - self._pos)
        if want <= 0:
            return 0
        data = os.pread(self.fd, want, self.offset + self._pos)
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n

    def read_slice(self, start: int, size: int) -> bytes:
        data = os.pread(self.fd, size, self.offset + start)
        if len(data) != size:
            raise OSError(f"the file shrank while being uploaded (short read at {start})")
        return data


class FilePartPayload(payload.Payload):
    _value: FilePartBody

    def __init__(self, value: Any, *args: Any, **kwargs: Any) -> None:
        body = getattr(value, "__wrapped__", value)
        kwargs.setdefault("content_type", "application/octet-stream")
        super().__init__(body, *args, **kwargs)
        self._size = body.length - body.tell()

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a file part is binary data")

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        body = self._value
        position = body.tell()
        end = body.length if content_length is None else min(body.length, position + content_length)
        with bounded_body() as taken:
            while position < end:
                size = min(FILE_SLICE, end - position)
                data = await anyio.to_thread.run_sync(body.read_slice, position, size)
                taken(position)  # nothing new taken; a slow disk is not the server's silence
                if body.bandwidth is not None:
                    await write_charged(writer, data, body.bandwidth, taken, position)
                else:
                    await writer.write(data)
                position += size
                taken(position)


_registered = False
_register_lock = threading.Lock()


def register_payloads() -> None:
    """Teach aiohttp to send `PartBody` and `FilePartBody` slice by slice (idempotent).

    aiohttp picks a request body's payload class from one process-wide registry, so this
    changes every aiohttp user in the process; it is called where the S3 client is created
    (`s3.client.open_client`) rather than on import, so importing this module changes nothing
    by itself. The registry appends on every call, hence the guard: once per process.
    Without it the bodies still work, only as whole-part writes (the memory this avoids).
    """
    global _registered
    with _register_lock:
        if _registered:
            return
        first = payload.Order.try_first
        payload.PAYLOAD_REGISTRY.register(PartPayload, PartBody, order=first)
        payload.PAYLOAD_REGISTRY.register(FilePartPayload, FilePartBody, order=first)
        _registered = True
