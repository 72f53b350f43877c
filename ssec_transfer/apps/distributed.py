"""Bulk transfers across a Dask cluster: many machines, one run, one ledger.

One machine's network card and CPUs cap a migration of hundreds of terabytes, and a key
rotation of millions of objects on a server that refuses server-side copies from SSE-C
sources streams every byte through the client. With `--dask ADDRESS` (a running scheduler)
or `--dask-local N` (N worker processes on this machine) the bulk commands -- put and get
(--recursive, --manifest), cp and rotate --recursive (`apps.copy_jobs`), sync -- split their
list into size-balanced batches (`apps.distributed_batches`) and run each batch on a
Dask worker, with the *same* async engine as a local run (its own request limit and memory
budget per batch). Outcomes stream back as objects finish; this machine (the client) prints
the JSON lines and the progress, writes the ledger and the summary. Install with
`pip install 'ssec-transfer[dask]'`.

Starting a cluster (every worker needs ssec-transfer installed, the S3 credentials and
endpoint settings in its environment or ~/.aws, and read access to the files it uploads or
write access to the folders it downloads to -- shared storage, as on an HPC or Pangeo site)::

    dask scheduler --host 10.0.0.1 --port 8786                        # one machine
    dask worker tcp://10.0.0.1:8786 --nworkers 1 --nthreads 1         # each transfer machine
    ssec-transfer put /archive s3://bucket/archive/ --recursive \\
        --key-file /shared/keys/archive.key --dask tcp://10.0.0.1:8786

One thread per worker process is the right shape: a batch's engine already keeps
`--concurrency` requests in flight; more threads run more batches side by side, each with its
own `--max-memory` budget.

Keys never cross the cluster in clear. Two ways to give the workers the key:

1. A key file (`--key-file`, a manifest's `key_file`) or an environment variable
   (`--key-env`) that exists under the same path or name on every worker. Only the path or
   the variable's name and the key's fingerprint travel; each worker loads the key itself and
   a worker whose file holds another key fails those objects with a clear error (exit 2).
2. A key that exists only on the client (a keyring key, a derived key) travels inside the
   task, so it is sent only over an encrypted connection. This is how `--keyring` works with
   Dask: the client resolves each object's key (ledger, then HEAD) before dispatch, and only
   those keys travel, never the keyring file or its passphrase -- the same rule as any other
   client-only key, rather than a second way to get keys onto workers. It is sent only over
   a `tls://` scheduler or an in-process `inproc://` cluster. `--dask-local` clusters always
   use TLS with throwaway certificates. Over a plain `tcp://` scheduler such a key is
   refused before anything is sent (exit 2). A TLS cluster, with certificates from your own CA::

       dask scheduler --protocol tls --tls-ca-file ca.pem --tls-cert s.pem --tls-key s.key
       dask worker tls://10.0.0.1:8786 --tls-ca-file ca.pem --tls-cert w.pem --tls-key w.key

   and on the client the same CA and a client certificate in the Dask config
   (`distributed.comm.tls.ca-file`, `.client.cert`, `.client.key`, or the variables
   `DASK_DISTRIBUTED__COMM__TLS__CA_FILE`, `..._CLIENT__CERT`, `..._CLIENT__KEY`).
   The key then sits in the scheduler's memory while its batches run: run the scheduler
   where you would keep the key.

Sizing batches: the run is cut into 4 batches per worker thread (fewer for small runs: no
batch under 64 MiB unless each thread needs one), by a greedy largest-first assignment of
file sizes (plus a per-file overhead, so thousands of small files spread too), and no batch
holds more than `--dask-batch-size` bytes (4 GiB) or 2,000 files. More, smaller batches
balance better and lose less when a worker dies; each batch costs one task and one S3
client start (about 0.3 s).

Failures: an object's failure is reported exactly as in a local run. A worker that dies takes
its batch with it; Dask runs the batch again elsewhere. For rotations the re-run is safe by
construction: an object already under the new key is skipped (`transfer.copy.rotate_key`), and
one still under the old key was left intact, so either way it ends under one key. Each worker
reports every finished object to the scheduler as it goes (task metadata), and the re-run skips
those; objects that were in flight start again, and a multipart upload interrupted by the death
resumes from its finished parts when the re-run finds the dead worker's resume journal (same
machine, or a shared XDG_STATE_HOME). Otherwise the interrupted multipart upload stays on the
server until `ssec-transfer cleanup` or a bucket lifecycle rule removes it. A re-run batch
resumes like `--resume` (an upload failing in it keeps its finished parts). Ctrl-C or
`--fail-fast` stop the workers too: batches not started are dropped and running ones abort
their uploads, as a local run does.

From Python, `run_jobs_distributed` mirrors `bulk.run_jobs`; a script that starts a local
cluster needs the usual `if __name__ == "__main__":` guard (worker processes are spawned and
import the main module).

What scales: throughput grows with workers until the S3 server (or its network) saturates;
the server is the limit, not the client. The client does little per object (one ledger row,
one JSON line). With `--skip-existing` and for downloads the client reads the ledger once per
object before dispatching.

This module is the client's asynchronous side; `distributed_cluster` holds the cluster choice
and the blocking Dask client, `distributed_worker` what travels and what runs on a worker.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Self

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ssec_transfer.apps.bulk import JobOutcome, TransferJob
from ssec_transfer.apps.copy_jobs import CopySettings
from ssec_transfer.apps.distributed_batches import batch_count as batch_count
from ssec_transfer.apps.distributed_batches import plan_batches as plan_batches
from ssec_transfer.apps.distributed_cluster import DaskCluster as DaskCluster
from ssec_transfer.apps.distributed_cluster import DaskClusterError as DaskClusterError
from ssec_transfer.apps.distributed_cluster import Session
from ssec_transfer.apps.distributed_worker import BatchSpec, WireJob, import_distributed
from ssec_transfer.apps.distributed_worker import KeySource as KeySource
from ssec_transfer.core.config import TransferConfig
from ssec_transfer.core.errors import ErrorContext, SSECTransferError, UsageError
from ssec_transfer.core.results import TransferResult
from ssec_transfer.engine import TransferEngine
from ssec_transfer.state.ledger import Ledger, LedgerEntry
from ssec_transfer.transfer.copy_run import CopyResult

# -- on the client -------------------------------------------------------------------------


class _RemoteError(SSECTransferError):
    """An error raised on a worker whose class this client does not know."""


def _error_classes() -> dict[str, type[SSECTransferError]]:
    found: dict[str, type[SSECTransferError]] = {}
    todo: list[type[SSECTransferError]] = [SSECTransferError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return found


def rebuild_error(detail: dict[str, Any]) -> SSECTransferError:
    """The worker's error as this client would have raised it: same text, same exit code."""
    context = ErrorContext(
        operation=detail.get("operation"),
        bucket=detail.get("bucket"),
        key=detail.get("key"),
        part=detail.get("part"),
        status=detail.get("http_status"),
        request_id=detail.get("request_id"),
    )
    cls = _error_classes().get(str(detail.get("error")), _RemoteError)
    error = cls(str(detail.get("message")), hint=detail.get("hint"), context=context)
    if cls is _RemoteError:
        error.exit_code = int(detail.get("exit_code") or 1)
    return error


class DaskOutcomes:
    """The outcomes of a distributed run as they finish (`async for`), and the largest
    request and memory peaks any one batch reached (each batch has its own budget)."""

    def __init__(self, receive: ObjectReceiveStream[JobOutcome]) -> None:
        self._receive = receive
        self.peak_requests_in_flight = 0
        self.peak_bytes_reserved = 0
        self.workers = 0
        self.batches = 0

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> JobOutcome:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


def default_key_source(job: TransferJob) -> KeySource | None:
    """The key source of a planned job: its key's file or variable, else the key itself."""
    return KeySource.of(job.sse_key) if job.sse_key is not None else None


def _source_key_source(job: TransferJob) -> KeySource | None:
    """A copy's source key (a rotation's old key), described as `default_key_source` does."""
    return KeySource.of(job.source_sse_key) if job.source_sse_key is not None else None


def _refuse_travelling_keys(cluster: DaskCluster, travelling: list[TransferJob]) -> None:
    if not travelling or cluster.carries_secrets:
        return
    first = travelling[0]
    keys = [k for k in (first.sse_key, first.source_sse_key) if k is not None]
    source = next((k.source for k in keys if KeySource.of(k).travels), "a key")
    raise UsageError(
        f"refusing to send SSE-C key material to the Dask scheduler {cluster.address}: a "
        f"plain tcp:// connection carries it in clear; {len(travelling)} object(s) (e.g. "
        f"{first.destination}) use a key from {source}, which the workers cannot load "
        "themselves; nothing was sent",
        hint="give the key as --key-file/--key-env (or a manifest key_file) present under the "
        "same path or name on every worker, or use a tls:// scheduler (Dask TLS certificates)",
    )


def _ledger_rows(
    ledger: Ledger, endpoint: str, jobs: Iterable[tuple[int, TransferJob]]
) -> dict[int, LedgerEntry]:
    rows: dict[int, LedgerEntry] = {}
    for index, job in jobs:
        entry = ledger.latest(endpoint, job.bucket, job.key)
        if entry is not None:
            rows[index] = entry
    return rows


def _ledger_row(endpoint: str, result: TransferResult, mtime_ns: int | None) -> LedgerEntry:
    return LedgerEntry(
        time.time(), result.operation, endpoint, result.bucket, result.key, result.version_id,
        result.etag, result.size, result.checksum, result.key_fingerprint, result.path,
        mtime_ns,
    )  # fmt: skip


def _result(data: dict[str, Any]) -> TransferResult:
    """A worker's result as this client would have it: a copy's or rotation's keeps its
    copy facts (`via`, `verified`...), so its JSON line is the local run's."""
    if "via" in data:
        return CopyResult(**{**data, "attempts": tuple(data.get("attempts") or ())})
    return TransferResult(**data)


@asynccontextmanager
async def run_jobs_distributed(
    engine: TransferEngine,
    jobs: Iterable[TransferJob],
    *,
    cluster: DaskCluster,
    key_source_for: Callable[[TransferJob], KeySource | None] = default_key_source,
    fail_fast: bool = False,
    skip_existing: bool = False,
    max_files: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
    copying: CopySettings | None = None,
) -> AsyncIterator[DaskOutcomes]:
    """`bulk.run_jobs`, on a Dask cluster; iterate the outcomes as they finish.

        async with run_jobs_distributed(engine, jobs, cluster=DaskCluster(local_workers=2))
                as outcomes:
            async for outcome in outcomes:
                ...

    `engine` is the client's open engine: its endpoint, connection settings, tuning and
    `resume` go to every worker (each batch opens its own engine), and its ledger receives
    every finished transfer here, on the client. Key material that would travel over plain
    tcp:// is refused (UsageError) before anything is sent. Copy and rotation jobs
    (`apps.copy_jobs`) run with `copying`; a rotation of every version comes back as one
    outcome per version, its job naming that version.
    """
    planned = list(jobs)
    dist = import_distributed()
    early: list[JobOutcome] = []  # problems found while planning fail at once, as locally
    todo: list[tuple[int, TransferJob, KeySource | None, KeySource | None]] = []
    for index, job in enumerate(planned):
        if job.problem is not None:
            early.append(JobOutcome(job, "failed", error=job.problem))
        else:
            source = key_source_for(job) if job.sse_key else None
            todo.append((index, job, source, _source_key_source(job)))
    _refuse_travelling_keys(
        cluster, [job for _, job, *keys in todo if any(k is not None and k.travels for k in keys)]
    )
    wire = await _wire_jobs(engine, todo, skip_existing=skip_existing)

    send, receive = anyio.create_memory_object_stream[JobOutcome](math.inf)
    outcomes = DaskOutcomes(receive)
    session: Session | None = None
    try:
        specs: list[BatchSpec] = []
        if wire:
            session = await anyio.to_thread.run_sync(Session, dist, cluster)
            workers, threads = await anyio.to_thread.run_sync(session.threads)
            specs = _batch_specs(
                engine, wire, cluster, threads, skip_existing=skip_existing,
                fail_fast=fail_fast, max_files=max_files, copying=copying or CopySettings(),
            )  # fmt: skip
            outcomes.workers, outcomes.batches = workers, len(specs)
            await anyio.to_thread.run_sync(session.submit, specs)
        pump = _Pump(engine, planned, specs, send, outcomes, fail_fast=fail_fast)
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump.run, session, early, on_bytes)
            try:
                async with receive:
                    yield outcomes
            finally:
                tg.cancel_scope.cancel()
    finally:
        send.close()
        receive.close()
        if session is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(session.close)


async def _wire_jobs(
    engine: TransferEngine,
    todo: list[tuple[int, TransferJob, KeySource | None, KeySource | None]],
    *,
    skip_existing: bool,
) -> list[WireJob]:
    """The jobs as they travel: no keys, and the client's ledger rows the checks need
    (--skip-existing, download digests, and a rotation's proof that an object already under
    the new key was verified)."""
    rows: dict[int, LedgerEntry] = {}
    checked = ("download", "rotate")
    if engine.ledger is not None and (
        skip_existing or any(job.operation in checked for _, job, _, _ in todo)
    ):
        rows = await anyio.to_thread.run_sync(
            _ledger_rows, engine.ledger, engine.endpoint_url, [(i, job) for i, job, _, _ in todo]
        )
    return [
        WireJob(
            index=i,
            operation=job.operation,
            path=str(job.path),
            bucket=job.bucket,
            key=job.key,
            version_id=job.version_id,
            size=job.size,
            key_source=source,
            ledger_entry=rows.get(i),
            source_bucket=job.source_bucket,
            source_key=job.source_key,
            source_key_source=old,
        )
        for i, job, source, old in todo
    ]


def _batch_specs(
    engine: TransferEngine,
    wire: list[WireJob],
    cluster: DaskCluster,
    threads: int,
    *,
    skip_existing: bool,
    fail_fast: bool,
    max_files: int | None,
    copying: CopySettings,
) -> list[BatchSpec]:
    """The run cut into size-balanced batches for the cluster's `threads` worker threads."""
    sizes = [w.size for w in wire]
    groups = plan_batches(
        sizes, batch_count(sizes, max(1, threads), cluster.batches_per_worker),
        max_batch_bytes=cluster.max_batch_bytes, max_batch_files=cluster.max_batch_files,
    )  # fmt: skip
    run_id = uuid.uuid4().hex[:12]
    settings = replace(engine.settings, endpoint_url=engine.endpoint_url)
    config = worker_config(engine.config, cluster)
    return [
        BatchSpec(
            task_key=f"ssec-transfer-{run_id}-batch-{b}",
            queue=f"ssec-transfer-{run_id}",
            stop_event=f"ssec-transfer-{run_id}-stop",
            batch=b,
            jobs=tuple(wire[i] for i in group),
            settings=settings,
            config=config,
            skip_existing=skip_existing,
            fail_fast=fail_fast,
            resume=engine.resume,
            max_files=max_files,
            attributes=engine.attributes,
            no_clobber=engine.no_clobber,
            copying=copying,
        )
        for b, group in enumerate(groups)
    ]


def worker_config(config: TransferConfig, cluster: DaskCluster) -> TransferConfig:
    """The engine settings each worker process runs with. `--bwlimit` is per process; the N
    processes of `--dask-local N` all share this machine's link, so each gets RATE/N (whole
    bytes/s). Workers of a cluster at an address may sit on machines of their own, and come
    and go: there the limit stays per worker process (the cluster may move workers x RATE)."""
    if config.bwlimit is None or not cluster.local_workers:
        return config
    return replace(config, bwlimit=max(1, config.bwlimit // cluster.local_workers))


class _Pump:
    """Turns the cluster's news into outcomes, in the order objects finish; writes the ledger.
    Each object is reported once, whichever way (queue, batch result, lost batch) it came."""

    def __init__(
        self,
        engine: TransferEngine,
        planned: list[TransferJob],
        specs: list[BatchSpec],
        send: ObjectSendStream[JobOutcome],
        outcomes: DaskOutcomes,
        *,
        fail_fast: bool,
    ) -> None:
        self.engine = engine
        self.planned = planned
        self.specs = specs
        self.send = send
        self.outcomes = outcomes
        self.fail_fast = fail_fast
        self.seen: set[int] = set()

    async def run(
        self,
        session: Session | None,
        early: list[JobOutcome],
        on_bytes: Callable[[int], None] | None,
    ) -> None:
        async with self.send:
            for outcome in early:
                if await self.emit(outcome):
                    return
            if session is not None and await self._follow(session, on_bytes):
                await anyio.to_thread.run_sync(session.cancel)

    async def _follow(self, session: Session, on_bytes: Callable[[int], None] | None) -> bool:
        """Report until every batch settled; True when the run must stop (--fail-fast)."""
        unsettled = set(range(len(self.specs)))
        while unsettled:
            try:
                messages, settled = await anyio.to_thread.run_sync(
                    session.poll, abandon_on_cancel=True
                )
            except Exception as exc:  # the scheduler is gone: report what never came back
                lost = DaskClusterError(
                    f"lost the Dask cluster: {type(exc).__name__}: {exc}",
                    hint="transfers reported before are in the ledger; run the rest again",
                )
                await self.fail_unseen(unsettled, lost)
                return False
            for message in messages:
                if on_bytes is not None and message.get("bytes"):
                    on_bytes(int(message["bytes"]))
            news = [data for message in messages for data in message.get("outcomes", ())]
            if await self.emit_dicts(news):
                return True
            for batch, result, failure in settled:
                unsettled.discard(batch)
                if await self._settle(batch, result, failure):
                    return True
        return False

    async def _settle(
        self, batch: int, result: dict[str, Any] | None, failure: BaseException | None
    ) -> bool:
        """A batch finished (its outcomes not yet reported are reported now) or failed."""
        if result is None:
            error = DaskClusterError(
                f"batch {batch} failed on the Dask cluster: {type(failure).__name__}: {failure}",
                hint="see the workers' logs; run the failed objects again",
            )
            return await self.fail_unseen([batch], error)
        stats = self.outcomes
        stats.peak_requests_in_flight = max(
            stats.peak_requests_in_flight, int(result["peak_requests_in_flight"])
        )
        stats.peak_bytes_reserved = max(
            stats.peak_bytes_reserved, int(result["peak_bytes_reserved"])
        )
        return await self.emit_dicts(result["outcomes"])

    async def emit(self, outcome: JobOutcome) -> bool:
        await self.send.send(outcome)
        return self.fail_fast and outcome.status == "failed"

    async def emit_dicts(self, items: Iterable[dict[str, Any]]) -> bool:
        """Report the workers' outcomes, after writing the ledger rows of all of them in one
        transaction (one fsync per poll, not per object: a rotation of millions of objects
        finishes hundreds a second). A row is written before its line is printed, so nothing
        reported is missing from the ledger after a crash."""
        outcomes: list[JobOutcome] = []
        rows: list[LedgerEntry] = []
        for data in items:
            self._parse(data, outcomes, rows)
        ledger = self.engine.ledger
        if rows and ledger is not None:
            with anyio.CancelScope(shield=True):  # the objects exist now: note their keys
                await anyio.to_thread.run_sync(ledger.add_many, rows)
        for outcome in outcomes:
            if await self.emit(outcome):
                return True
        return False

    def _parse(
        self, data: dict[str, Any], outcomes: list[JobOutcome], rows: list[LedgerEntry]
    ) -> None:
        """One object's news as outcomes (several for a rotation of every version) and the
        ledger rows of what it wrote; nothing for an object reported before."""
        index = int(data["index"])
        if index in self.seen:
            return
        self.seen.add(index)
        job = self.planned[index]
        for part in data.get("copies") or (data,):  # a rotation of every version: several
            if part is not data and part.get("version_id") != job.version_id:
                which = replace(job, version_id=part.get("version_id"))
            else:
                which = job  # the planned job itself: callers may know it by identity
            result = _result(part["result"]) if part.get("result") else None
            error = rebuild_error(part["error_detail"]) if part.get("error_detail") else None
            outcomes.append(
                JobOutcome(
                    which, part["status"], result, error, float(part["seconds"]),
                    why=part.get("reason"),
                )
            )  # fmt: skip
            if result is not None:
                endpoint = self.engine.endpoint_url
                rows.append(_ledger_row(endpoint, result, part.get("local_mtime_ns")))

    async def fail_unseen(self, batches: Iterable[int], error: SSECTransferError) -> bool:
        for batch in sorted(batches):
            for wire in self.specs[batch].jobs:
                if wire.index not in self.seen:
                    self.seen.add(wire.index)
                    if await self.emit(JobOutcome(self.planned[wire.index], "failed", error=error)):
                        return True
        return False
