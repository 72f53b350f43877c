"""Streams of unknown length: stdin to an object, and an object to stdout in order.

Upload (`put - s3://B/K`): a pipe cannot be seeked or measured, so parts are read in order,
each into memory, by one reader; its bytes are reserved in the engine's byte budget *before*
the read, so what is in memory is the budget plus at most the part being read, whatever the
stream's length. A stream that ends below the multipart threshold becomes one PutObject;
otherwise the parts go through a bounded stream to N workers inside the multipart lifecycle
(`s3.multipart`), which aborts the upload on any failure or cancellation, so an existing
object of the same name stays untouched.

Download (`get s3://B/K -`): ranged GETs run in parallel, pinned to the version the HEAD saw,
but a pipe must be written in order. A reorder window lets at most `concurrency` ranges be
fetched ahead of the write position, each held in memory (and in the byte budget) until it is
its turn; memory is then window x part size, whatever the object size.
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, BinaryIO

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskGroup

from ssec_transfer.core.buffers import ByteBudget
from ssec_transfer.core.checksums import ChecksumAlgorithm
from ssec_transfer.core.errors import LocalIOError, PlanError, SSECTransferError
from ssec_transfer.core.plan import (
    MAX_PARTS,
    MAX_SINGLE_PUT,
    Part,
    check_part_size,
    choose_part_size,
)
from ssec_transfer.core.results import ProgressCallback, TransferResult
from ssec_transfer.core.scheduler import Scheduler
from ssec_transfer.core.taskgroups import task_group
from ssec_transfer.core.units import format_size
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.bodies import PartBody
from ssec_transfer.s3.multipart import MultipartUpload, multipart_upload
from ssec_transfer.s3.requests import (
    NO_CLOBBER,
    ObjectRef,
    RangeRead,
    checksum_params,
    get_range,
    head_object,
    pinned_get,
    put_object,
    upload_part,
)
from ssec_transfer.transfer.download import DownloadOptions, download_result, plan_reads
from ssec_transfer.transfer.upload import UploadOptions

STREAM_PATH = "-"  # what TransferResult.path says for stdin/stdout, as on the command line
CONTENT_TYPE = "application/octet-stream"
READ_PIECE = 1024 * 1024  # GET bodies are read in pieces of this size


# -- upload -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StreamPart:
    """One part read from the stream, with its checksum computed in the reading thread."""

    part: Part
    data: bytes
    checksum: str | None


def _read_full(reader: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes; fewer only at end of stream. Pipes return short reads: loop."""
    try:
        first = reader.read(size)
        if not first or len(first) == size:  # buffered readers fill the whole request
            return first or b""
        pieces, have = [first], len(first)
        while have < size:
            piece = reader.read(size - have)
            if not piece:
                break
            pieces.append(piece)
            have += len(piece)
        return b"".join(pieces)
    except OSError as exc:
        raise LocalIOError(
            f"cannot read the input stream: {exc.strerror or exc}",
            hint="check the command that feeds the pipe; nothing was left on the server",
        ) from None


def _read_part(
    reader: BinaryIO, number: int, offset: int, size: int, algorithm: ChecksumAlgorithm | None
) -> _StreamPart:
    data = _read_full(reader, size)
    checksum = algorithm.of(data) if algorithm and data else None
    return _StreamPart(Part(number, offset, len(data)), data, checksum)


class _PartReader:
    """Reads the stream part by part, each part's bytes reserved in the budget beforehand.

    `held` counts what this upload holds in the shared budget (parts read but not yet sent,
    and the part being read); `release_all` returns it whatever happened.
    """

    def __init__(
        self,
        reader: BinaryIO,
        part_size: int,
        budget: ByteBudget,
        algorithm: ChecksumAlgorithm | None,
    ) -> None:
        self.reader = reader
        self.part_size = part_size
        self.budget = budget
        self.algorithm = algorithm
        self.held = 0
        self.offset = 0  # bytes read so far
        self.next_number = 1
        self.eof = False

    async def next(self) -> _StreamPart | None:
        """The next part, or None at end of stream. An empty stream yields one empty part."""
        if self.eof:
            return None
        await self.budget.acquire(self.part_size)
        self.held += self.part_size
        # The read is abandoned on cancellation: a stalled producer must not delay the abort
        # (the thread finishes on its own; its part is discarded).
        chunk = await anyio.to_thread.run_sync(
            _read_part,
            self.reader,
            self.next_number,
            self.offset,
            self.part_size,
            self.algorithm,
            abandon_on_cancel=True,
        )
        self._release(self.part_size - len(chunk.data))  # keep only what was read
        if len(chunk.data) < self.part_size:
            self.eof = True
        if not chunk.data and self.next_number > 1:
            return None
        if self.next_number > MAX_PARTS:
            self._release(len(chunk.data))
            raise PlanError(
                f"the stream is longer than {MAX_PARTS:,} parts of "
                f"{format_size(self.part_size)} ({format_size(self.offset)} read so far); "
                "S3 allows at most 10,000 parts",
                hint="pass --expected-size SIZE (an upper bound is fine) so the part size is "
                "chosen to fit, or a larger --part-size; the upload was aborted",
            )
        self.next_number += 1
        self.offset += len(chunk.data)
        return chunk

    def _release(self, size: int) -> None:
        if size:
            self.held -= size
            self.budget.release(size)

    def done_with(self, chunk: _StreamPart) -> None:
        self._release(len(chunk.data))

    def release_all(self) -> None:
        self._release(self.held)


def stream_part_size(expected_size: int | None, options: UploadOptions) -> int:
    """Like a file's plan: an explicit part size is checked, else one is chosen to fit.

    Without `expected_size` the length is unknown, so the preferred size is used and a stream
    longer than 10,000 parts fails (and is aborted) when it gets there.
    """
    size = expected_size or 0
    if options.part_size is not None:
        check_part_size(size, options.part_size)
        return options.part_size
    return choose_part_size(size, options.preferred_part_size)


async def upload_stream(
    client: Any,
    reader: BinaryIO,
    bucket: str,
    key: str,
    *,
    ssec: SSECustomerKey,
    options: UploadOptions,
    scheduler: Scheduler,
    expected_size: int | None = None,
    progress: ProgressCallback | None = None,
) -> TransferResult:
    """Upload a non-seekable byte stream of unknown length (e.g. `sys.stdin.buffer`).

    `expected_size` (an upper bound is fine) only sizes the parts so the stream fits in
    10,000 of them. Progress totals are `expected_size` (0: unknown) until the stream ends.
    """
    started = time.perf_counter()
    if expected_size is not None and expected_size < 0:
        raise PlanError(f"the expected size cannot be negative ({expected_size})")
    part_size = stream_part_size(expected_size, options)
    target = ObjectRef(bucket, key, ssec)
    parts = _PartReader(reader, part_size, scheduler.budget, options.checksum.algorithm)
    tracker = _Progress(progress, expected_size)
    try:
        # Read until the threshold is crossed or the stream ends: only then is it known
        # whether one PutObject suffices. Usually this is one part (threshold <= part size).
        head: list[_StreamPart] = []
        while parts.offset < options.multipart_threshold:
            chunk = await parts.next()
            if chunk is None:
                break
            head.append(chunk)
            if parts.eof:
                break
        job = _StreamUpload(client, target, parts, options, scheduler, tracker)
        if parts.eof and parts.offset < options.multipart_threshold:
            tracker.ended(parts.offset)
            etag, version_id = await job.put_single(head)
            n_parts = 1
        else:
            etag, version_id, n_parts = await job.put_multipart(head)
    finally:
        parts.release_all()
    return TransferResult(
        operation="upload",
        bucket=bucket,
        key=key,
        path=STREAM_PATH,
        size=parts.offset,
        etag=etag,
        version_id=version_id,
        key_fingerprint=ssec.fingerprint,
        parts=n_parts,
        seconds=time.perf_counter() - started,
    )


@dataclass
class _Progress:
    """Progress with a total that is only known once the stream has ended."""

    callback: ProgressCallback | None
    expected: int | None
    done: int = 0
    total: int | None = None  # known once the stream has ended

    def ended(self, size: int) -> None:
        self.total = size
        if self.callback:
            self.callback(0, size)

    def add(self, n: int) -> None:
        self.done += n
        if self.callback:
            total = self.total
            if total is None:
                total = self.expected if self.expected and self.done <= self.expected else 0
            self.callback(n, total)


@dataclass
class _StreamUpload:
    """One stream to one object: everything its requests need."""

    client: Any
    target: ObjectRef
    parts: _PartReader
    options: UploadOptions
    scheduler: Scheduler
    tracker: _Progress

    def object_params(self) -> dict[str, Any]:
        """A stream has no source facts to seal: its size is unknown when the request starts
        and it has no modification time, so `sync` treats it like another tool's object."""
        return self.options.attributes.params(default_type=CONTENT_TYPE, sealed={})

    async def put_single(self, head: list[_StreamPart]) -> tuple[str | None, str | None]:
        algorithm = self.options.checksum.algorithm
        size = self.parts.offset
        if size > MAX_SINGLE_PUT:  # only with a threshold above 5 GiB
            raise PlanError(
                f"{format_size(size)} is above the PutObject maximum of "
                f"{format_size(MAX_SINGLE_PUT)}",
                hint="use a --multipart-threshold of 5GiB or less",
            )
        if len(head) == 1:
            data, checksum = head[0].data, head[0].checksum
        else:  # a threshold above the part size: the parts read so far become one body
            data = b"".join(c.data for c in head)
            checksum = algorithm.of(data) if algorithm and data else None
            head.clear()
        condition = NO_CLOBBER if self.options.no_clobber else {}
        async with self.scheduler.request():
            resp = await put_object(
                self.client, self.target, PartBody(data), checksum_params(algorithm, checksum),
                {**self.object_params(), **condition},
            )  # fmt: skip
        self.tracker.add(size)
        return resp.get("ETag"), resp.get("VersionId")

    async def put_multipart(self, head: list[_StreamPart]) -> tuple[str | None, str | None, int]:
        algorithm = self.options.checksum.algorithm
        create_extra = self.object_params()
        if algorithm:
            create_extra["ChecksumAlgorithm"] = algorithm.name
        async with multipart_upload(
            self.client, self.scheduler, self.target, create_extra=create_extra
        ) as upload:
            await self._send_parts(upload, head)
            etag, version_id = await upload.complete(no_clobber=self.options.no_clobber)
        return etag, version_id, len(upload.parts)

    async def _send_parts(self, upload: MultipartUpload, head: list[_StreamPart]) -> None:
        """One reader feeds N senders.

        The stream between them is small; the byte budget is what bounds memory, since every
        part in the stream or in flight is reserved in it until its UploadPart has answered.
        """
        parts, tracker = self.parts, self.tracker
        algorithm = self.options.checksum.algorithm
        workers = max(1, self.options.concurrency)
        # One part of read-ahead smooths a bursty producer; more would only hold memory.
        send, receive = anyio.create_memory_object_stream[_StreamPart](max_buffer_size=1)

        async def read_parts(send: ObjectSendStream[_StreamPart]) -> None:
            async with send:
                while head:
                    await send.send(head.pop(0))
                while (chunk := await parts.next()) is not None:
                    await send.send(chunk)
                    del chunk  # the workers own it now; do not keep it alive while reading
                tracker.ended(parts.offset)

        async def send_parts(receive: ObjectReceiveStream[_StreamPart]) -> None:
            async with receive:
                async for chunk in receive:
                    number, length = chunk.part.number, chunk.part.length
                    checksum = checksum_params(algorithm, chunk.checksum)
                    body = partial(PartBody, chunk.data)
                    try:
                        resp = await upload_part(
                            self.client, self.target, upload.upload_id, number,
                            body, checksum, self.options.retry,
                            self.scheduler.request,
                        )  # fmt: skip
                    finally:
                        parts.done_with(chunk)
                        del chunk, body  # nothing keeps the bytes once the budget is released
                    upload.part_done(number, resp["ETag"], checksum)
                    tracker.add(length)

        async with task_group() as tg:
            tg.start_soon(read_parts, send)
            for _ in range(workers):
                tg.start_soon(send_parts, receive.clone())
            receive.close()


# -- download -----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Range:
    """One range in the reorder window: fetched by its own task, written by the writer."""

    part: Part
    ready: anyio.Event = field(default_factory=anyio.Event)
    pieces: list[bytes] = field(default_factory=list)


def _stream_name(writer: BinaryIO) -> str:
    return "stdout" if getattr(writer, "name", None) == "<stdout>" else "the output stream"


def _write_pieces(writer: BinaryIO, pieces: list[bytes]) -> None:
    for piece in pieces:
        writer.write(piece)


def _writer_error(exc: OSError, writer: BinaryIO) -> SSECTransferError:
    name = _stream_name(writer)
    if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
        return LocalIOError(
            f"the reader of {name} went away (broken pipe); the download stopped",
            hint="the command reading the output exited early; what it received is incomplete",
        )
    return LocalIOError(f"cannot write to {name}: {exc.strerror or exc}")


async def download_to_stream(
    client: Any,
    bucket: str,
    key: str,
    writer: BinaryIO,
    *,
    ssec: SSECustomerKey | None,
    version_id: str | None,
    options: DownloadOptions,
    scheduler: Scheduler,
    progress: ProgressCallback | None = None,
) -> TransferResult:
    """Write one object to `writer` (e.g. `sys.stdout.buffer`) in order, fetched in parallel.

    Unlike a file download nothing can be taken back: bytes already written stay written if
    a later range fails, so the caller must treat an error as "the output is incomplete".
    """
    started = time.perf_counter()
    async with scheduler.request():
        info, _ = await head_object(client, ObjectRef(bucket, key, ssec), version_id=version_id)
    parts = plan_reads(info.size, options)
    read = RangeRead(
        pinned_get(info, ssec), key_sent=ssec is not None, ranged=len(parts) > 1,
        chunk_size=READ_PIECE, retry=options.retry,
        hint="rerun the download; the output is incomplete",
    )  # fmt: skip
    await _stream_ranges(client, writer, parts, read, options, scheduler, progress)
    try:
        await anyio.to_thread.run_sync(writer.flush, abandon_on_cancel=True)
    except OSError as exc:
        raise _writer_error(exc, writer) from None
    return download_result(info, ssec, STREAM_PATH, parts=len(parts), started=started)


async def _stream_ranges(
    client: Any,
    writer: BinaryIO,
    parts: list[Part],
    read: RangeRead,
    options: DownloadOptions,
    scheduler: Scheduler,
    progress: ProgressCallback | None,
) -> None:
    """Fetch ranges ahead of the write position, at most `concurrency` of them, write in order.

    The dispatcher takes a window slot and reserves the range's bytes (in part order, so the
    range the writer waits for always gets its memory first), then starts its fetch; the
    writer waits for each range in turn, writes it, and gives both back.
    """
    total = parts[-1].end
    if progress:
        progress(0, total)
    budget = scheduler.budget
    window = anyio.Semaphore(max(1, options.concurrency))
    held = 0  # bytes of ranges fetched or being fetched, not yet written

    async def fetch(slot: _Range) -> None:
        pieces: list[bytes] = []

        async def keep(chunk: list[bytes], _at: int) -> None:
            pieces.extend(chunk)

        async with scheduler.request():
            await get_range(read, client, slot.part, keep)
        slot.pieces = pieces
        slot.ready.set()

    async def dispatch(tg: TaskGroup, send: ObjectSendStream[_Range]) -> None:
        nonlocal held
        async with send:
            for part in parts:
                await window.acquire()
                try:
                    await budget.acquire(part.length)
                except BaseException:
                    window.release()
                    raise
                held += part.length
                slot = _Range(part)
                tg.start_soon(fetch, slot)
                await send.send(slot)

    async def write(receive: ObjectReceiveStream[_Range]) -> None:
        nonlocal held
        async with receive:
            async for slot in receive:
                await slot.ready.wait()
                pieces, slot.pieces = slot.pieces, []
                try:
                    # Abandoned on cancellation: a reader that stopped reading must not keep
                    # a stop signal from ending the process.
                    await anyio.to_thread.run_sync(
                        _write_pieces, writer, pieces, abandon_on_cancel=True
                    )
                except OSError as exc:
                    raise _writer_error(exc, writer) from None
                del pieces
                held -= slot.part.length
                budget.release(slot.part.length)
                window.release()
                if progress:
                    progress(slot.part.length, total)

    send, receive = anyio.create_memory_object_stream[_Range](
        max_buffer_size=max(1, options.concurrency)
    )
    try:
        async with task_group() as tg:
            tg.start_soon(dispatch, tg, send)
            tg.start_soon(write, receive)
    finally:
        if held:  # ranges fetched (or in flight) but never written, after a failure
            budget.release(held)
