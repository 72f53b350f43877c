"""The public engine: one S3 client, one concurrency limit and one memory budget per engine.

async with TransferEngine(endpoint_url="https://s3.example.com") as engine:
    key = SSECustomerKey.from_file("sse-c.key")
    await engine.upload("big.nc", "bucket", "products/big.nc", sse_key=key)
    await engine.download("bucket", "products/big.nc", "copy.nc", sse_key=key)
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Self, TypeVar

import anyio
import botocore.exceptions as bx

from ssec_transfer.core.bandwidth import TokenBucket
from ssec_transfer.core.checksums import ChecksumPolicy
from ssec_transfer.core.config import TransferConfig as TransferConfig
from ssec_transfer.core.errors import (
    ChecksumUnsupportedError,
    ErrorContext,
    NoSuchBucketError,
    SSECTransferError,
    UsageError,
)
from ssec_transfer.core.groupcommit import GroupCommit
from ssec_transfer.core.results import ObjectInfo, ProgressCallback, TransferResult
from ssec_transfer.core.retry import RetryPolicy
from ssec_transfer.core.scheduler import Scheduler
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.capabilities import load_cached, server_verifies_checksum
from ssec_transfer.s3.client import ConnectionSettings, open_client, refuse_plain_http
from ssec_transfer.s3.errors import translate
from ssec_transfer.s3.listing import (
    ListedBucket,
    ListedObject,
    ListedPrefix,
    list_buckets,
    list_level,
    list_objects,
)
from ssec_transfer.s3.requests import ObjectRef, head_object, require_absent
from ssec_transfer.state.journal import Journal, Resumable
from ssec_transfer.state.journal import default_path as default_journal_path
from ssec_transfer.state.ledger import Ledger
from ssec_transfer.state.ledger import default_path as default_ledger_path
from ssec_transfer.transfer.attributes import ObjectAttributes
from ssec_transfer.transfer.destination import (
    open_stream,
    plan_destination,
    remove_stale_temp_files,
)
from ssec_transfer.transfer.download import (
    DownloadOptions,
    Sighted,
    download_file,
    download_small,
    stored_digest,
)
from ssec_transfer.transfer.upload import UploadOptions, check_source, upload_file

if TYPE_CHECKING:
    # Imported where used: a put or get does not load the copy family or the stream paths.
    from ssec_transfer.transfer.copy import (
        CopyOptions,
        CopyOutcome,
        CopyResult,
        RotationProof,
        Via,
    )

log = logging.getLogger(__name__)


_Store = TypeVar("_Store", Ledger, Journal)


async def _open_store(
    choice: _Store | Path | Literal["default"] | None,
    kind: Callable[[Path], _Store],
    default_path: Callable[[], Path],
    unavailable: Callable[[Path, Exception], None],
) -> _Store | None:
    """The ledger or journal the engine was given, or the one it opens (in a worker thread);
    `unavailable` decides what a file that cannot be opened means (it may raise)."""
    if choice is None or not isinstance(choice, str | os.PathLike):
        return choice  # given ready-made, or turned off
    path = default_path() if choice == "default" else Path(choice)
    try:
        return await anyio.to_thread.run_sync(kind, path)
    except (OSError, sqlite3.Error) as exc:
        unavailable(path, exc)
        return None


class TransferEngine:
    """Async S3 transfers with SSE-C. Use as `async with`; all work ends when the block does."""

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
        region: str | None = None,
        ca_bundle: str | None = None,
        config: TransferConfig | None = None,
        settings: ConnectionSettings | None = None,
        ledger: Ledger | Path | Literal["default"] | None = "default",
        journal: Journal | Path | Literal["default"] | None = "default",
        resume: bool = False,
        attributes: ObjectAttributes | None = None,
        no_clobber: bool = False,
        bandwidth: TokenBucket | None = None,
    ) -> None:
        base = settings or ConnectionSettings()
        self.settings = replace(
            base,
            endpoint_url=endpoint_url or base.endpoint_url,
            profile=profile or base.profile,
            region=region or base.region,
            ca_bundle=ca_bundle or base.ca_bundle,
        )
        self.config = config or TransferConfig()
        self.config.validate()
        # `config.bwlimit` as one token bucket that every payload byte of this engine, up or
        # down, is charged to; `bandwidth` shares one with other engines (a Dask worker's).
        self.bandwidth = bandwidth
        if bandwidth is None and self.config.bwlimit is not None:
            self.bandwidth = TokenBucket(self.config.bwlimit)
        # Every successful transfer is recorded (never the key): which key protects which
        # object. None turns that off (`--no-ledger`).
        self._ledger_choice = ledger
        self.ledger: Ledger | None = None
        # Multipart progress is journaled so an interrupted run can be resumed (`resume=True`
        # continues a matching one and keeps finished parts when interrupted again).
        self._journal_choice = journal
        self.journal: Journal | None = None
        self.resume = resume
        # What every upload sets besides the bytes (content type, metadata, storage class),
        # and `no_clobber`: never replace an object that exists (HEAD, then If-None-Match).
        self.attributes = attributes or ObjectAttributes()
        self.no_clobber = no_clobber
        self.scheduler = Scheduler(
            max_requests=self.config.concurrency, max_memory=self.config.max_memory
        )
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._checksum = ChecksumPolicy.from_mode(self.config.checksum)
        self._verified_buckets: set[str] = set()  # where the server proved it checks checksums
        self.retry_policy = RetryPolicy(
            max_attempts=self.settings.max_attempts,
            request_timeout=self.settings.request_timeout,
        )
        self._disrupted = False  # a transfer failed or was cancelled mid-request
        self._copy_caps: dict[str, str] | None = None  # what copies learned about the server
        self._swept_folders: set[Path] = set()  # stale temporary files removed here already
        self._ledger_writes: GroupCommit[tuple[str, TransferResult]] | None = None
        self._known_buckets: set[str] = set()  # proven to exist (or not refused) this run
        self._bucket_check = anyio.Lock()

    async def __aenter__(self) -> Self:
        self.ledger = await self._open_ledger()
        # Rows of transfers that finish together share one transaction.
        self._ledger_writes = GroupCommit(self.ledger.record_many) if self.ledger else None
        self.journal = await self._open_journal()
        stack = AsyncExitStack()
        try:
            self._client = await open_client(
                stack,
                self.settings,
                pool_size=self.config.concurrency + 2,
                bandwidth=self.bandwidth,
            )
        except (bx.BotoCoreError, bx.ClientError) as exc:
            await stack.aclose()
            raise translate(exc, ErrorContext("connect"), key_sent=False) from exc
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def _open_ledger(self) -> Ledger | None:
        def unavailable(path: Path, exc: Exception) -> None:
            log.warning("cannot open the ledger %s (%s): transfers will not be recorded; "
                        "choose another with --ledger PATH", path, exc)  # fmt: skip

        return await _open_store(self._ledger_choice, Ledger, default_ledger_path, unavailable)

    async def _open_journal(self) -> Journal | None:
        def unavailable(path: Path, exc: Exception) -> None:
            if self.resume:  # the user asked for what cannot be had: say so, do not degrade
                raise UsageError(f"cannot open the resume journal {path}: {exc}") from exc
            log.warning("cannot open the resume journal %s (%s): uploads cannot be resumed",
                        path, exc)  # fmt: skip

        return await _open_store(self._journal_choice, Journal, default_journal_path, unavailable)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stack is not None:
            with anyio.CancelScope(shield=True):
                await self._stack.aclose()
                # asyncio closes TLS transports after close() returns (aiohttp issue 1115);
                # connections torn down mid-request need a moment longer for the TLS
                # shutdown. Waiting here means no socket outlives the engine.
                await anyio.sleep(0.05 if self._disrupted or exc is not None else 0)
        self._stack = None
        self._client = None
        if self.journal is not None and not isinstance(self._journal_choice, Journal):
            self.journal.close()  # opened by this engine
        if self.ledger is not None and not isinstance(self._ledger_choice, Ledger):
            self.ledger.close()

    @property
    def endpoint_url(self) -> str:
        return str(self._require_client().meta.endpoint_url)

    @property
    def client(self) -> Any:
        """The underlying aiobotocore S3 client (HTTPS guard installed)."""
        return self._require_client()

    def _require_client(self) -> Any:
        if self._client is None:
            raise RuntimeError("use the engine inside `async with TransferEngine(...)`")
        return self._client

    @contextmanager
    def _note_disruption(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self._disrupted = True
            raise

    def _guard(self, key: SSECustomerKey | None) -> Any:
        client = self._require_client()
        if key is not None:
            refuse_plain_http(str(client.meta.endpoint_url))
        return client

    async def upload(
        self,
        source: str | os.PathLike[str],
        bucket: str,
        key: str,
        *,
        sse_key: SSECustomerKey,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Upload a file under `sse_key`: one PutObject or a parallel multipart upload."""
        client = self._guard(sse_key)
        await anyio.to_thread.run_sync(check_source, Path(source))  # a usage error comes first
        await self._require_bucket(bucket)
        await self._require_absent(bucket, key)
        await self._require_checksum_support(bucket, sse_key)
        options = self._upload_options(self._resumable())
        with self._note_disruption():
            result = await upload_file(
                client,
                Path(source),
                bucket,
                key,
                ssec=sse_key,
                options=options,
                scheduler=self.scheduler,
                progress=progress,
            )
        await self._record(result)
        return result

    async def recorded_digest(self, bucket: str, key: str) -> Callable[[ObjectInfo], str | None]:
        """What the ledger says this object's digest is, if it recorded this very version."""
        entry = None
        if self.ledger is not None:
            entry = await anyio.to_thread.run_sync(
                self.ledger.latest, self.endpoint_url, bucket, key
            )

        def expected(info: ObjectInfo) -> str | None:
            if entry is None or entry.etag != info.etag or entry.size != info.size:
                return None
            if entry.version_id and info.version_id and entry.version_id != info.version_id:
                return None
            return entry.checksum

        return expected

    def _upload_options(self, resumable: Resumable | None) -> UploadOptions:
        cfg = self.config
        return UploadOptions(
            concurrency=cfg.concurrency,
            multipart_threshold=cfg.multipart_threshold,
            preferred_part_size=cfg.part_size or cfg.preferred_part_size,
            part_size=cfg.part_size,
            checksum=self._checksum,
            retry=self.retry_policy,
            resumable=resumable,
            attributes=self.attributes,
            no_clobber=self.no_clobber,
        )

    def _download_options(self, resumable: Resumable | None) -> DownloadOptions:
        cfg = self.config
        return DownloadOptions(
            concurrency=cfg.concurrency,
            part_size=cfg.part_size or cfg.preferred_part_size,
            multipart_threshold=cfg.multipart_threshold,
            retry=self.retry_policy,
            resumable=resumable,
        )

    def _resumable(self) -> Resumable | None:
        if self.journal is None:
            return None
        return Resumable(self.journal, self.endpoint_url, self.resume)

    async def _record(self, result: TransferResult) -> None:
        if self._ledger_writes is None:
            return
        with anyio.CancelScope(shield=True):  # the object exists now: always note its key
            await self._ledger_writes.add((self.endpoint_url, result))

    async def require_bucket(self, bucket: str) -> None:
        """The bucket check of every write (`_require_bucket`), for what lets others write
        to it (`grant`): a grant for a bucket that does not exist is refused at once."""
        await self._require_bucket(bucket)

    async def _require_bucket(self, bucket: str) -> None:
        """Before the first write to `bucket`: it must exist. SeaweedFS would create a bucket
        on the first PutObject where AWS and Ceph answer NoSuchBucket, so a typo would pass
        in silence. One HEAD per bucket and run; a 403 (write-only credentials) proves
        nothing, so the write goes ahead and the server has the last word."""
        async with self._bucket_check:
            if bucket in self._known_buckets:
                return
            ctx = ErrorContext("HeadBucket", bucket)
            try:
                async with self.scheduler.request():
                    await self._require_client().head_bucket(Bucket=bucket)
            except bx.ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 404:
                    raise NoSuchBucketError(
                        f"bucket {bucket!r} does not exist; nothing was written",
                        hint="check the bucket name and the endpoint (buckets are not "
                        "created by uploads)",
                        context=ctx,
                    ) from None
                if status != 403:
                    raise translate(exc, ctx, key_sent=False) from exc
                log.info("HeadBucket %s refused (403): writing without checking it exists", bucket)
            except (bx.BotoCoreError, OSError) as exc:
                raise translate(exc, ctx, key_sent=False) from exc
            self._known_buckets.add(bucket)

    async def _require_absent(self, bucket: str, key: str) -> None:
        """With `no_clobber`, before any byte is sent: an object that exists raises
        ObjectExistsError (`requests.require_absent`)."""
        if not self.no_clobber:
            return
        async with self.scheduler.request():
            await require_absent(self._require_client(), ObjectRef(bucket, key))

    async def _require_checksum_support(self, bucket: str, sse_key: SSECustomerKey) -> None:
        """An explicitly requested checksum must really be verified, never silently dropped."""
        algorithm = self._checksum.algorithm
        if not self._checksum.required or algorithm is None or bucket in self._verified_buckets:
            return
        ctx = ErrorContext("checksum probe", bucket)
        known = load_cached(self.endpoint_url).get("flexible_checksums")
        try:
            verified = known == "verified" or (
                known != "ignored"
                and await server_verifies_checksum(self.client, bucket, algorithm, sse_key)
            )
        except Exception as exc:
            raise translate(exc, ctx, key_sent=True, writing=True) from exc
        if not verified:
            raise ChecksumUnsupportedError(
                f"the server accepted a write with a wrong {algorithm.name} checksum, so it "
                "does not verify flexible checksums; nothing was uploaded",
                hint="use --checksum auto (checksums where the server verifies them) or "
                "--checksum none; integrity in transit then rests on TLS",
                context=ctx,
            )
        self._verified_buckets.add(bucket)

    async def download(
        self,
        bucket: str,
        key: str,
        dest: str | os.PathLike[str],
        *,
        sse_key: SSECustomerKey | None = None,
        version_id: str | None = None,
        progress: ProgressCallback | None = None,
        size_hint: int | None = None,
    ) -> TransferResult:
        """Download to `dest` atomically; `dest` is untouched unless every byte arrived.

        The first request is a whole-object GET, whose answer says what a HEAD would: an
        object up to the multipart threshold is fetched with it alone, a larger one in ranges
        after it. `size_hint`, the size a listing gave, skips that GET for objects known to be
        large. Either way the data is checked against the stored checksum or the ledger's
        digest."""
        client = self._guard(sse_key)
        options = replace(
            self._download_options(self._resumable()),
            expected_digest=await self.recorded_digest(bucket, key),
        )
        target = await anyio.to_thread.run_sync(plan_destination, dest, key)
        if target.kind == "stream":  # a device or FIFO: written into, in order
            writer = await anyio.to_thread.run_sync(open_stream, target.path)
            try:
                result = await self.download_stream(
                    bucket, key, writer, sse_key=sse_key, version_id=version_id,
                    progress=progress,
                )  # fmt: skip
            finally:
                # Not shielded, and abandoned on cancellation: a reader that stopped reading
                # keeps a write (and so this close) blocked, and must not hold a stop signal.
                await anyio.to_thread.run_sync(writer.close, abandon_on_cancel=True)
            return replace(result, path=str(target.path))
        await self._sweep_stale_temp_files(target.folder)
        first: TransferResult | Sighted | None = None  # None: no GET came first
        if size_hint is None or size_hint <= options.multipart_threshold:
            with self._note_disruption():
                first = await download_small(
                    client, bucket, key, target, ssec=sse_key, version_id=version_id,
                    size_hint=size_hint, options=options, scheduler=self.scheduler,
                    progress=progress,
                )  # fmt: skip
        if isinstance(first, TransferResult):
            await self._record(first)
            return first
        with self._note_disruption():
            result = await download_file(
                client,
                bucket,
                key,
                target,
                ssec=sse_key,
                version_id=version_id,
                options=options,
                scheduler=self.scheduler,
                progress=progress,
                sighted=first,
            )
        await self._record(result)
        return result

    async def _sweep_stale_temp_files(self, folder: Path) -> None:
        """Once per folder and run: remove temporary files interrupted downloads left there
        (a live process's, and those a resume journal still needs, are spared)."""
        if folder in self._swept_folders:
            return
        self._swept_folders.add(folder)
        journaled: list[str] = []
        if self.journal is not None:
            journaled = [d.temp for d in await anyio.to_thread.run_sync(self.journal.downloads)]
        await anyio.to_thread.run_sync(remove_stale_temp_files, folder, journaled)

    # -- streams (transfer/streams) ---------------------------------------------------------

    async def upload_stream(
        self,
        reader: BinaryIO,
        bucket: str,
        key: str,
        *,
        sse_key: SSECustomerKey,
        expected_size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Upload a byte stream of unknown length (a pipe): parts in bounded buffers, one
        PutObject if it ends below the multipart threshold."""
        client = self._guard(sse_key)
        await self._require_bucket(bucket)
        await self._require_absent(bucket, key)
        await self._require_checksum_support(bucket, sse_key)
        options = self._upload_options(resumable=None)  # a stream cannot be resumed
        from ssec_transfer.transfer import streams

        with self._note_disruption():
            result = await streams.upload_stream(
                client, reader, bucket, key, ssec=sse_key, options=options,
                scheduler=self.scheduler, expected_size=expected_size, progress=progress,
            )  # fmt: skip
        await self._record(result)
        return result

    async def download_stream(
        self,
        bucket: str,
        key: str,
        writer: BinaryIO,
        *,
        sse_key: SSECustomerKey | None = None,
        version_id: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> TransferResult:
        """Write an object to a byte stream in order, from parallel ranged GETs through a
        bounded reorder window."""
        client = self._guard(sse_key)
        options = self._download_options(resumable=None)  # a stream cannot be resumed
        from ssec_transfer.transfer import streams

        with self._note_disruption():
            return await streams.download_to_stream(
                client, bucket, key, writer, ssec=sse_key, version_id=version_id,
                options=options, scheduler=self.scheduler, progress=progress,
            )  # fmt: skip

    # -- copies, rotation, listings (transfer/copy, s3/listing) -----------------------------

    def _copy_options(self) -> CopyOptions:
        from ssec_transfer.transfer.copy import CopyOptions

        if self._copy_caps is None:
            self._copy_caps = dict(load_cached(self.endpoint_url))
        cfg = self.config
        return CopyOptions(
            part_size=cfg.part_size or cfg.preferred_part_size,
            concurrency=cfg.concurrency,
            multipart_threshold=cfg.multipart_threshold,
            checksum=self._checksum,
            capabilities=self._copy_caps,
            retry=self.retry_policy,
        )

    async def _copy_guard(
        self, bucket: str, source_key: SSECustomerKey | None, target_key: SSECustomerKey | None
    ) -> Any:
        client = self._guard(source_key or target_key)
        await self._require_bucket(bucket)
        if target_key is not None:
            await self._require_checksum_support(bucket, target_key)
        return client

    async def _record_outcomes(self, outcomes: list[CopyOutcome]) -> list[CopyOutcome]:
        for outcome in outcomes:
            if outcome.result is not None:
                await self._record(outcome.result)
        return outcomes

    async def copy(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        *,
        source_key: SSECustomerKey | None = None,
        target_key: SSECustomerKey | None = None,
        version_id: str | None = None,
        via: Via = "auto",
        progress: ProgressCallback | None = None,
    ) -> CopyResult:
        """Server-side copy (or a streamed one where the server refuses), re-encrypting from
        `source_key` to `target_key`; returns only once the copy is read back and verified."""
        client = await self._copy_guard(dst_bucket, source_key, target_key)
        from ssec_transfer.transfer import copy as copies

        with self._note_disruption():
            result = await copies.copy_object(
                client, self.scheduler, src_bucket, src_key, dst_bucket, dst_key,
                source_key=source_key, target_key=target_key, version_id=version_id, via=via,
                options=self._copy_options(), progress=progress,
            )  # fmt: skip
        await self._record(result)
        return result

    async def copy_prefix(
        self,
        src_bucket: str,
        src_prefix: str,
        dst_bucket: str,
        dst_prefix: str,
        *,
        source_key: SSECustomerKey | None = None,
        target_key: SSECustomerKey | None = None,
        via: Via = "auto",
        on_outcome: Callable[[CopyOutcome], None] | None = None,
    ) -> list[CopyOutcome]:
        client = await self._copy_guard(dst_bucket, source_key, target_key)
        from ssec_transfer.transfer import copy as copies

        with self._note_disruption():
            outcomes = await copies.copy_prefix(
                client, self.scheduler, src_bucket, src_prefix, dst_bucket, dst_prefix,
                source_key=source_key, target_key=target_key, via=via,
                options=self._copy_options(), on_outcome=on_outcome,
            )  # fmt: skip
        return await self._record_outcomes(outcomes)

    async def rotate(
        self,
        bucket: str,
        key: str,
        *,
        old_key: SSECustomerKey,
        new_key: SSECustomerKey,
        version_id: str | None = None,
        via: Via = "auto",
        delete_old_versions: bool = False,
        progress: ProgressCallback | None = None,
    ) -> CopyResult:
        """Re-encrypt an object in place under `new_key`; the old object stays intact until
        the new one is verified (and, unless versioning keeps it, the old key then fails)."""
        client = await self._copy_guard(bucket, old_key, new_key)
        from ssec_transfer.transfer import copy as copies

        with self._note_disruption():
            result = await copies.rotate_object(
                client, self.scheduler, bucket, key, old_key=old_key, new_key=new_key,
                version_id=version_id, via=via, options=self._copy_options(),
                delete_old_versions=delete_old_versions, progress=progress,
            )  # fmt: skip
        await self._record(result)
        return result

    async def rotate_all_versions(
        self,
        bucket: str,
        key: str,
        *,
        old_key: SSECustomerKey,
        new_key: SSECustomerKey,
        via: Via = "auto",
        delete_old_versions: bool = False,
    ) -> list[CopyOutcome]:
        client = await self._copy_guard(bucket, old_key, new_key)
        from ssec_transfer.transfer import copy as copies

        with self._note_disruption():
            outcomes = await copies.rotate_all_versions(
                client, self.scheduler, bucket, key, old_key=old_key, new_key=new_key, via=via,
                options=self._copy_options(), delete_old_versions=delete_old_versions,
            )  # fmt: skip
        return await self._record_outcomes(outcomes)

    async def rotate_prefix(
        self,
        bucket: str,
        prefix: str,
        *,
        old_key: SSECustomerKey,
        new_key: SSECustomerKey,
        all_versions: bool = False,
        via: Via = "auto",
        delete_old_versions: bool = False,
        on_outcome: Callable[[CopyOutcome], None] | None = None,
    ) -> list[CopyOutcome]:
        client = await self._copy_guard(bucket, old_key, new_key)
        from ssec_transfer.transfer import copy as copies

        with self._note_disruption():
            outcomes = await copies.rotate_prefix(
                client, self.scheduler, bucket, prefix, old_key=old_key, new_key=new_key,
                all_versions=all_versions, via=via, options=self._copy_options(),
                delete_old_versions=delete_old_versions, on_outcome=on_outcome,
                proven=self._rotation_proof(new_key),
            )  # fmt: skip
        return await self._record_outcomes(outcomes)

    def _rotation_proof(self, new_key: SSECustomerKey) -> RotationProof | None:
        """How a rotation re-run knows an object already under `new_key` was verified: the
        ledger's newest row of it (on a Dask worker, the client's rows it was sent)."""
        ledger = self.ledger
        if ledger is None:
            return None
        from ssec_transfer.transfer.copy import ledger_proves_rotation

        endpoint = self.endpoint_url

        async def proven(info: ObjectInfo) -> bool:
            entry = await anyio.to_thread.run_sync(ledger.latest, endpoint, info.bucket, info.key)
            return ledger_proves_rotation(entry, info, new_key.fingerprint)

        return proven

    async def prepare_copies(
        self, bucket: str, source_key: SSECustomerKey | None, target_key: SSECustomerKey | None
    ) -> None:
        """What `copy_prefix`/`rotate_prefix` check before their first copy into `bucket`
        (it exists; the server verifies checksums under `target_key`), for runs whose copies
        happen elsewhere (Dask workers): a wrong bucket fails the command, not each object."""
        await self._copy_guard(bucket, source_key, target_key)

    async def copy_one(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        *,
        source_key: SSECustomerKey | None = None,
        target_key: SSECustomerKey | None = None,
        via: Via = "auto",
        progress: ProgressCallback | None = None,
    ) -> CopyOutcome:
        """One object of a `cp --recursive` planned elsewhere (a Dask batch): its outcome,
        failures included, as `copy_prefix` reports it."""
        from ssec_transfer.transfer import copy as copies

        try:
            client = await self._copy_guard(dst_bucket, source_key, target_key)
        except SSECTransferError as exc:
            return copies.CopyOutcome(
                copies.object_url(src_bucket, src_key), copies.object_url(dst_bucket, dst_key),
                None, "failed", error=exc, bucket=dst_bucket, key=dst_key,
            )  # fmt: skip
        with self._note_disruption():
            outcome = await copies.copy_one(
                client, self.scheduler, src_bucket, src_key, dst_bucket, dst_key,
                source_key=source_key, target_key=target_key, via=via,
                options=self._copy_options(), progress=progress,
            )  # fmt: skip
        return (await self._record_outcomes([outcome]))[0]

    async def rotate_key(
        self,
        bucket: str,
        key: str,
        *,
        old_key: SSECustomerKey,
        new_key: SSECustomerKey,
        all_versions: bool = False,
        via: Via = "auto",
        delete_old_versions: bool = False,
        progress: ProgressCallback | None = None,
    ) -> list[CopyOutcome]:
        """One object of a `rotate --recursive` planned elsewhere (a Dask batch): its
        outcomes as `rotate_prefix` reports them (skipped when already under `new_key`)."""
        from ssec_transfer.transfer import copy as copies

        try:
            client = await self._copy_guard(bucket, old_key, new_key)
        except SSECTransferError as exc:
            return [copies.failed_rotation(bucket, key, None, exc)]
        with self._note_disruption():
            outcomes = await copies.rotate_key(
                client, self.scheduler, bucket, key, old_key=old_key, new_key=new_key,
                all_versions=all_versions, via=via, options=self._copy_options(),
                delete_old_versions=delete_old_versions, progress=progress,
                proven=self._rotation_proof(new_key),
            )  # fmt: skip
        return await self._record_outcomes(outcomes)

    def ls(
        self, bucket: str, prefix: str = "", *, versions: bool = False
    ) -> AsyncIterator[ListedObject]:
        """Objects (or every version) under `prefix`, with key fingerprints the ledger knows."""
        return list_objects(
            self._require_client(), bucket, prefix, versions=versions, ledger=self.ledger,
            endpoint=self.endpoint_url,
        )  # fmt: skip

    def ls_level(
        self, bucket: str, prefix: str = "", *, versions: bool = False
    ) -> AsyncIterator[ListedObject | ListedPrefix]:
        """One level under `prefix`, like `aws s3 ls`: objects (or versions) whose key has no
        further "/", and a `ListedPrefix` per "folder"; fingerprints as in `ls`."""
        return list_level(
            self._require_client(), bucket, prefix, versions=versions, ledger=self.ledger,
            endpoint=self.endpoint_url,
        )  # fmt: skip

    async def list_buckets(self) -> list[ListedBucket]:
        """The buckets these credentials own."""
        async with self.scheduler.request():
            return await list_buckets(self._require_client())

    async def inspect(
        self,
        bucket: str,
        key: str,
        *,
        sse_key: SSECustomerKey | None = None,
        version_id: str | None = None,
    ) -> tuple[ObjectInfo, str | None]:
        """A HEAD that also asks for the stored checksum: the object's info (with its sealed
        source facts) and the server's full-object CRC32C, where it keeps one."""
        client = self._guard(sse_key)
        async with self.scheduler.request():
            info, answer = await head_object(
                client, ObjectRef(bucket, key, sse_key), version_id=version_id, checksums=True
            )
        return info, stored_digest(answer)

    async def head(
        self,
        bucket: str,
        key: str,
        *,
        sse_key: SSECustomerKey | None = None,
        version_id: str | None = None,
    ) -> ObjectInfo:
        """Size, ETag, version and the fingerprint of the key the server says protects it."""
        client = self._guard(sse_key)
        async with self.scheduler.request():
            info, _ = await head_object(
                client, ObjectRef(bucket, key, sse_key), version_id=version_id
            )
        return info
