"""Where the bandwidth limit (`core.bandwidth.TokenBucket`) is charged: at the two ends of
every payload byte's trip through the client.

- Request bodies (PutObject, UploadPart, from files, streams or a streamed copy) are charged
  by their aiohttp payloads (`s3.bodies`) before each chunk is written: `write_charged`.
- Response bodies (GetObject: downloads, streams, a streamed copy's reads, verification
  reads) are charged after each chunk is read: `ChargedBody`, which reads at most one chunk
  at a time, so the sleep between reads lets TCP push back on the server.

`s3.client.S3Client` attaches the bucket to both, for requests sent by the data plane and by
aiobotocore alike; nothing is charged without a limit, and those paths are then unchanged.
Server-side copies (CopyObject, UploadPartCopy) move no byte through the client and are not
charged; a copy streamed through the client is charged twice, once each way, as its bytes
cross the link twice. Only payload is counted, not headers or TLS; bytes a retry sends or
reads again are counted again, as they cross the link again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from aiohttp.abc import AbstractStreamWriter

from ssec_transfer.core.bandwidth import TokenBucket
from ssec_transfer.s3.timeouts import BodyWatch


async def write_charged(
    writer: AbstractStreamWriter,
    data: bytes | memoryview,
    bucket: TokenBucket,
    watch: BodyWatch,
    done: int,
) -> None:
    """Write `data`, which follows the first `done` bytes of a request body, one chunk at a
    time, each after the bucket grants it; the wait is ours, not the server's silence."""
    view = memoryview(data)
    chunk = bucket.chunk
    for start in range(0, len(view), chunk):
        piece = view[start : start + chunk]
        watch.hold()
        await bucket.consume(len(piece))
        watch(done + start)
        await writer.write(piece)
        watch(done + start + len(piece))


class ChargedBody:
    """A GetObject body (aiobotocore's `AioStreamingBody`) whose reads are charged to a bucket.
    It reads as the body does (`read(n)` may return fewer than n bytes; `read()` reads to the
    end) and checks the length the same way, since every read goes through the body's own."""

    def __init__(self, body: Any, bucket: TokenBucket) -> None:
        self._body = body
        self._bucket = bucket

    async def read(self, amt: int | None = None) -> bytes:
        if amt is None or amt < 0:  # to the end, charged chunk by chunk
            pieces: list[bytes] = []
            while piece := await self.read(self._bucket.chunk):
                pieces.append(piece)
            return b"".join(pieces)
        if amt == 0:
            return b""
        data: bytes = await self._body.read(min(amt, self._bucket.chunk))
        if data:
            await self._bucket.consume(len(data))
        return data

    async def iter_chunks(self, chunk_size: int = 1024) -> AsyncIterator[bytes]:
        while chunk := await self.read(chunk_size):
            yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.iter_chunks()

    async def __aenter__(self) -> ChargedBody:
        await self._body.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._body.__aexit__(exc_type, exc, tb)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body, name)  # close(), raw_stream, tell() ...
