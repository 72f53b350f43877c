"""Streams: a pipe of unknown length -> object -> a pipe, byte-identical, memory-bounded.

The sources are real pipes (`os.pipe()` fed by a thread), read unbuffered so that reads come
back short as they do from stdin, or buffered as `sys.stdin.buffer` is; the sinks are pipes
drained by a thread, as stdout is by the next command of a pipeline.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, BinaryIO

import anyio
import pytest
from botocore.exceptions import ClientError

from ssec_transfer import SSECustomerKey, TransferConfig, TransferEngine
from ssec_transfer.core.errors import LocalIOError, PlanError, WrongKeyError
from ssec_transfer.core.plan import GiB, MiB
from ssec_transfer.core.results import TransferResult
from ssec_transfer.s3.sse import sse_params
from ssec_transfer.transfer.download import DownloadOptions
from ssec_transfer.transfer.streams import download_to_stream, stream_part_size, upload_stream
from ssec_transfer.transfer.upload import UploadOptions
from tests.support.helpers import make_key_file, run_cli_bytes

pytestmark = pytest.mark.integration

PART = 5 * MiB
OLD = b"the old object must survive"


# -- pipes ---------------------------------------------------------------------------------------


@contextmanager
def pipe_source(data: bytes, *, buffered: bool = False) -> Iterator[BinaryIO]:
    """A pipe whose other end a thread fills with `data` in uneven pieces, then closes."""
    r, w = os.pipe()

    def feed() -> None:
        view, sizes, i = memoryview(data), (65536, 1000, 300_000, 7), 0
        try:
            while view:
                n = os.write(w, view[: sizes[i % len(sizes)]])
                view, i = view[n:], i + 1
        except BrokenPipeError:
            pass  # the reader stopped early (a failing upload)
        finally:
            os.close(w)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    reader: BinaryIO = os.fdopen(r, "rb", buffering=-1 if buffered else 0)
    try:
        yield reader
    finally:
        reader.close()
        feeder.join(timeout=30)
        assert not feeder.is_alive()


class PipeSink:
    """A pipe whose other end a thread drains, keeping at most `keep` bytes, then closing."""

    def __init__(self, keep: int | None = None) -> None:
        r, self._w = os.pipe()
        self.received = bytearray()
        self._keep = keep
        self.writer: BinaryIO = os.fdopen(self._w, "wb")
        self._thread = threading.Thread(target=self._drain, args=(r,), daemon=True)
        self._thread.start()

    def _drain(self, r: int) -> None:
        try:
            while self._keep is None or len(self.received) < self._keep:
                piece = os.read(r, 1 << 20)
                if not piece:
                    break
                self.received += piece
        finally:
            os.close(r)  # with `keep`: the reader went away, like `| head -c N`

    def close(self) -> bytes:
        with suppress(BrokenPipeError):
            self.writer.close()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive()
        return bytes(self.received)


class FailingSource(io.RawIOBase):
    """Random bytes that fail with EIO after `fail_after` bytes, like a dying producer."""

    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.fail_after, self.given = fail_after, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.given >= self.fail_after:
            raise OSError(errno.EIO, "Input/output error")
        n = min(len(buffer), self.fail_after - self.given, 1 << 20)
        buffer[:n] = os.urandom(n)
        self.given += n
        return n


# -- engine plumbing, as TransferEngine.upload/download build their options ---------------------


def upload_options(engine: TransferEngine) -> UploadOptions:
    cfg = engine.config
    return UploadOptions(
        concurrency=cfg.concurrency,
        multipart_threshold=cfg.multipart_threshold,
        preferred_part_size=cfg.part_size or cfg.preferred_part_size,
        part_size=cfg.part_size,
        checksum=engine._checksum,
    )


def download_options(engine: TransferEngine) -> DownloadOptions:
    cfg = engine.config
    return DownloadOptions(
        concurrency=cfg.concurrency,
        part_size=cfg.part_size or cfg.preferred_part_size,
        multipart_threshold=cfg.multipart_threshold,
    )


async def put_stream(
    engine: TransferEngine,
    reader: BinaryIO,
    bucket: str,
    key: SSECustomerKey,
    *,
    expected_size: int | None = None,
    progress: Any = None,
) -> TransferResult:
    with engine._note_disruption():  # as the engine's methods do: a cut TLS needs time to close
        return await upload_stream(
            engine.client,
            reader,
            bucket,
            "obj",
            ssec=key,
            options=upload_options(engine),
            scheduler=engine.scheduler,
            expected_size=expected_size,
            progress=progress,
        )


async def get_stream(
    engine: TransferEngine, bucket: str, key: SSECustomerKey | None, writer: BinaryIO
) -> TransferResult:
    with engine._note_disruption():
        return await download_to_stream(
            engine.client,
            bucket,
            "obj",
            writer,
            ssec=key,
            version_id=None,
            options=download_options(engine),
            scheduler=engine.scheduler,
        )


def assert_idle(engine: TransferEngine) -> None:
    stats = engine.scheduler.stats()
    assert (stats.bytes_reserved, stats.requests_in_flight) == (0, 0)


def assert_no_uploads_and_old_object(admin, bucket: str, key: SSECustomerKey) -> None:  # type: ignore[no-untyped-def]
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    body = admin.get_object(Bucket=bucket, Key="obj", **sse_params(key))["Body"].read()
    assert body == OLD


async def let_cut_connections_close() -> None:
    """Wait for TLS connections cut mid-request to finish closing.

    Their TLS shutdown runs on after the engine has closed (up to ~1 s on SeaweedFS, more
    than the engine's 0.05 s); a test whose event loop ended first would see them collected
    unclosed (ResourceWarning, an error under `filterwarnings = error`).
    """
    with anyio.move_on_after(5):
        for _ in range(100):
            if not any(
                isinstance(o, asyncio.Transport) and not o.is_closing() for o in gc.get_objects()
            ):
                return
            await anyio.sleep(0.05)


def config(**overrides: Any) -> TransferConfig:
    settings: dict[str, Any] = {"part_size": PART, "multipart_threshold": PART, "concurrency": 4}
    settings.update(overrides)
    return TransferConfig(**settings)


# -- round trips ---------------------------------------------------------------------------------

SIZES = [0, 1, PART - 1, PART, PART + 1, 2 * PART, 2 * PART + 1]


@pytest.mark.anyio
@pytest.mark.parametrize("size", SIZES)
async def test_stream_round_trip_around_thresholds(
    size: int, bucket: str, engine_kwargs: dict[str, str], admin
) -> None:  # type: ignore[no-untyped-def]
    key = SSECustomerKey.generate()
    data = os.urandom(size)
    sink = PipeSink()
    async with TransferEngine(config=config(), **engine_kwargs) as engine:
        with pipe_source(data) as reader:
            up = await put_stream(engine, reader, bucket, key)
        try:
            down = await get_stream(engine, bucket, key, sink.writer)
        finally:
            received = sink.close()
        assert_idle(engine)
    assert received == data
    assert up.size == down.size == size
    assert up.parts == (1 if size < PART else -(-size // PART))
    assert down.parts == (1 if size <= PART else -(-size // PART))
    assert up.key_fingerprint == key.fingerprint
    assert up.etag  # also where CompleteMultipartUpload answers with an empty ETag (Ceph)
    assert down.etag == up.etag
    assert up.path == down.path == "-"
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ClientError) as refused:  # stored encrypted: no read without the key
        admin.get_object(Bucket=bucket, Key="obj")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.anyio
async def test_large_stream_stays_within_memory_budget(
    bucket: str, engine_kwargs: dict[str, str]
) -> None:
    """40 MiB in 5 MiB parts, 4 workers, a 20 MiB budget: never more than 4 parts held."""
    key = SSECustomerKey.generate()
    data = os.urandom(40 * MiB)
    budget = 20 * MiB
    seen: list[tuple[int, int]] = []
    async with TransferEngine(config=config(max_memory=budget), **engine_kwargs) as engine:
        with pipe_source(data, buffered=True) as reader:  # as sys.stdin.buffer reads
            up = await put_stream(
                engine, reader, bucket, key, progress=lambda d, t: seen.append((d, t))
            )
        stats = engine.scheduler.stats()
        assert stats.peak_bytes_reserved <= budget
        assert stats.peak_requests_in_flight <= 4
        assert_idle(engine)
    assert up.parts == 8
    assert sum(d for d, _ in seen) == len(data)
    assert seen[-1][1] == len(data)  # the total is known once the stream has ended

    # Downloading: the reorder window (4 ranges of 5 MiB) bounds memory, not the 64 MiB budget.
    sink = PipeSink()
    async with TransferEngine(config=config(max_memory=64 * MiB), **engine_kwargs) as engine:
        try:
            down = await get_stream(engine, bucket, key, sink.writer)
        finally:
            received = sink.close()
        stats = engine.scheduler.stats()
        assert stats.peak_bytes_reserved <= 4 * PART
        assert stats.peak_requests_in_flight <= 4
        assert_idle(engine)
    assert down.parts == 8
    assert received == data


@pytest.mark.anyio
async def test_expected_size_sizes_parts_for_huge_streams(
    bucket: str, engine_kwargs: dict[str, str]
) -> None:
    """60 GiB expected: 5 MiB parts would need 12,288 parts, so 7 MiB parts are chosen."""
    key = SSECustomerKey.generate()
    data = os.urandom(13 * MiB)
    sink = PipeSink()
    cfg = TransferConfig(preferred_part_size=PART, multipart_threshold=PART, concurrency=4)
    async with TransferEngine(config=cfg, **engine_kwargs) as engine:
        assert stream_part_size(60 * GiB, upload_options(engine)) == 7 * MiB
        with pipe_source(data) as reader:
            up = await put_stream(engine, reader, bucket, key, expected_size=60 * GiB)
        try:
            await get_stream(engine, bucket, key, sink.writer)
        finally:
            received = sink.close()
    assert up.parts == 2
    assert received == data


# -- failures ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_source_failing_mid_stream_aborts_multipart(
    bucket: str, engine_kwargs: dict[str, str], admin
) -> None:  # type: ignore[no-untyped-def]
    key = SSECustomerKey.generate()
    admin.put_object(Bucket=bucket, Key="obj", Body=OLD, **sse_params(key))
    async with TransferEngine(config=config(), **engine_kwargs) as engine:
        with pytest.raises(LocalIOError, match="cannot read the input stream"):
            await put_stream(engine, FailingSource(12 * MiB), bucket, key)  # type: ignore[arg-type]
        assert_idle(engine)
    await let_cut_connections_close()
    assert_no_uploads_and_old_object(admin, bucket, key)


@pytest.mark.anyio
async def test_cancelling_while_the_producer_stalls_aborts_multipart(
    bucket: str, engine_kwargs: dict[str, str], admin
) -> None:  # type: ignore[no-untyped-def]
    """A producer that stops writing must not delay the abort (Ctrl-C on `slow | put -`)."""
    key = SSECustomerKey.generate()
    admin.put_object(Bucket=bucket, Key="obj", Body=OLD, **sse_params(key))
    r, w = os.pipe()
    resume = threading.Event()

    def stall_after_12_mib() -> None:
        try:
            os.write(w, os.urandom(12 * MiB))
            resume.wait(60)
        finally:
            os.close(w)

    feeder = threading.Thread(target=stall_after_12_mib, daemon=True)
    feeder.start()
    sent = 0
    two_parts_sent = anyio.Event()

    def note(done: int, total: int) -> None:
        nonlocal sent
        sent += done
        if sent >= 2 * PART:
            two_parts_sent.set()

    with os.fdopen(r, "rb", buffering=0) as reader:
        async with TransferEngine(config=config(), **engine_kwargs) as engine:
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:

                    async def upload() -> None:
                        await put_stream(engine, reader, bucket, key, progress=note)

                    tg.start_soon(upload)
                    await two_parts_sent.wait()
                    await anyio.sleep(0.2)  # the reader is now blocked on the silent pipe
                    tg.cancel_scope.cancel()
            assert_idle(engine)
        await let_cut_connections_close()
        assert_no_uploads_and_old_object(admin, bucket, key)
        resume.set()  # the abandoned read returns with EOF
        feeder.join(timeout=30)


@pytest.mark.anyio
async def test_stream_needing_more_than_max_parts_fails_and_aborts(
    bucket: str, engine_kwargs: dict[str, str], admin, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """10,000 parts of 5 MiB are 49 GiB; the same logic is tested here with a limit of 2."""
    monkeypatch.setattr("ssec_transfer.transfer.streams.MAX_PARTS", 2)
    key = SSECustomerKey.generate()
    admin.put_object(Bucket=bucket, Key="obj", Body=OLD, **sse_params(key))
    async with TransferEngine(config=config(), **engine_kwargs) as engine:
        with (
            pipe_source(os.urandom(2 * PART + 1)) as reader,
            pytest.raises(PlanError, match="longer than 2 parts") as failed,
        ):
            await put_stream(engine, reader, bucket, key)
        assert "--expected-size" in str(failed.value)
        assert_idle(engine)
    await let_cut_connections_close()
    assert_no_uploads_and_old_object(admin, bucket, key)


@pytest.mark.anyio
async def test_download_with_wrong_key_writes_nothing(
    bucket: str, engine_kwargs: dict[str, str]
) -> None:
    key, wrong = SSECustomerKey.generate(), SSECustomerKey.generate()
    sink = PipeSink()
    async with TransferEngine(config=config(), **engine_kwargs) as engine:
        with pipe_source(os.urandom(PART + 1)) as reader:
            await put_stream(engine, reader, bucket, key)
        try:
            with pytest.raises(WrongKeyError):
                await get_stream(engine, bucket, wrong, sink.writer)
        finally:
            received = sink.close()
        assert_idle(engine)
    assert received == b""


@pytest.mark.anyio
async def test_reader_of_the_output_going_away_stops_the_download(
    bucket: str, engine_kwargs: dict[str, str]
) -> None:
    """`get s3://B/K - | head -c 1M`: a clear error, every fetch stopped, the budget returned."""
    key = SSECustomerKey.generate()
    data = os.urandom(40 * MiB)
    sink = PipeSink(keep=1 * MiB)
    async with TransferEngine(config=config(), **engine_kwargs) as engine:
        with pipe_source(data, buffered=True) as reader:
            await put_stream(engine, reader, bucket, key)
        try:
            with pytest.raises(LocalIOError, match="went away"):
                await get_stream(engine, bucket, key, sink.writer)
        finally:
            received = sink.close()
        assert_idle(engine)
    await let_cut_connections_close()
    assert data.startswith(received)


# -- the command line ----------------------------------------------------------------------------


def test_stdin_to_object_to_stdout_through_the_cli(
    tmp_path, bucket: str, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    """`producer | ssec-transfer put - s3://B/K` then `ssec-transfer get s3://B/K - | consumer`."""
    key_path, _ = key_file
    data = os.urandom(2 * PART + 123)
    tuning = ["--part-size", "5MiB", "--multipart-threshold", "5MiB", "--concurrency", "4"]
    up = run_cli_bytes(
        "put", "-", f"s3://{bucket}/piped.bin", "--key-file", key_path,
        "--expected-size", "1GiB", *tuning, env=server_env, input=data,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr.decode()
    down = run_cli_bytes(
        "get", f"s3://{bucket}/piped.bin", "-", "--key-file", key_path, *tuning, env=server_env
    )
    assert down.returncode == 0, down.stderr.decode()
    assert down.stdout == data  # nothing but the object's bytes on stdout

    other_path, _ = make_key_file(tmp_path)
    wrong = run_cli_bytes(
        "get", f"s3://{bucket}/piped.bin", "-", "--key-file", other_path, env=server_env
    )
    assert wrong.returncode == 3
    assert wrong.stdout == b""
