"""Bulk transfers across a Dask cluster: many machines, one run, one ledger.

One machine's network card and CPUs cap a migration of hundreds of terabytes. With `--dask
ADDRESS` (a running scheduler) or `--dask-local N` (N worker processes on this machine) the
bulk commands split their transfer list into size-balanced batches and run each batch on a
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
   task, so it is sent only over an encrypted connection: a `tls://` scheduler or an
   in-process `inproc://` cluster. `--dask-local` clusters always use TLS with throwaway
   certificates. Over a plain `tcp://` scheduler such a key is refused before anything is
   sent (exit 2). A TLS cluster, with certificates from your own CA::

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
its batch with it; Dask runs the batch again elsewhere. Each worker reports every finished
object to the scheduler as it goes (task metadata), and the re-run skips those; objects that
were in flight start again, and a multipart upload interrupted by the death resumes from its
finished parts when the re-run finds the dead worker's resume journal (same machine, or a
shared XDG_STATE_HOME). Otherwise the interrupted multipart upload stays on the server until
`ssec-transfer cleanup` or a bucket lifecycle rule removes it. A re-run batch resumes like
`--resume` (an upload failing in it keeps its finished parts). Ctrl-C or `--fail-fast` stop the
workers too: batches not started are dropped and running ones abort their uploads, as a local
run does.

From Python, `run_jobs_distributed` mirrors `bulk.run_jobs`; a script that starts a local
cluster needs the usual `if __name__ == "__main__":` guard (worker processes are spawned and
import the main module).

What scales: throughput grows with workers until the S3 server (or its network) saturates;
the server is the limit, not the client. The client does little per object (one ledger row,
one JSON line). With `--skip-existing` and for downloads the client reads the ledger once per
object before dispatching.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import importlib
import logging
import math
import os
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream

from ssec_transfer.apps.bulk import JobOutcome, TransferJob, run_jobs
from ssec_transfer.cli import argtypes
from ssec_transfer.core.errors import (
    ErrorContext,
    KeyFileError,
    SSECTransferError,
    TransferFailedError,
    UsageError,
)
from ssec_transfer.core.plan import MiB
from ssec_transfer.core.results import TransferResult
from ssec_transfer.engine import TransferConfig, TransferEngine
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.client import ConnectionSettings
from ssec_transfer.state.ledger import Ledger, LedgerEntry

log = logging.getLogger(__name__)

GiB = 1024 * MiB
INSTALL_HINT = "install the Dask extra: pip install 'ssec-transfer[dask]'"
# Transports on which key material may ride inside a task: encrypted, or never on a network.
_SECRET_SAFE_SCHEMES = ("tls", "inproc")
_POLL_SECONDS = 0.1  # how often the client looks for news from the cluster
_PUBLISH_SECONDS = 0.5  # longest a worker keeps progress bytes before reporting them
_STOP_GRACE_SECONDS = 15.0  # for running batches to abort their uploads when stopped


class DaskClusterError(TransferFailedError):
    """The Dask cluster could not be reached, or lost a batch for good."""


def _import_distributed() -> Any:
    """`distributed` is optional (and untyped here on purpose: Any at the boundary)."""
    try:
        return importlib.import_module("distributed")
    except ImportError:
        raise UsageError("--dask needs the `distributed` package", hint=INSTALL_HINT) from None


# -- where the cluster is ------------------------------------------------------------------


@dataclass(frozen=True)
class DaskCluster:
    """Which cluster to use, and how to cut the run into batches."""

    address: str | None = None  # a running scheduler, e.g. tcp://host:8786 or tls://host:8786
    local_workers: int | None = None  # else: start a LocalCluster of this many processes
    batches_per_worker: int = 4  # per worker thread
    max_batch_bytes: int = 4 * GiB
    max_batch_files: int = 2000
    connect_timeout: float = 30.0

    def __post_init__(self) -> None:
        if (self.address is None) == (self.local_workers is None):
            raise UsageError("give either a Dask scheduler address or a local worker count")
        if self.local_workers is not None and self.local_workers < 1:
            raise UsageError("--dask-local needs at least 1 worker")
        if self.batches_per_worker < 1 or self.max_batch_bytes < 1 or self.max_batch_files < 1:
            raise UsageError("Dask batches need room for at least one file")

    @property
    def carries_secrets(self) -> bool:
        """True where key material may travel: TLS, in-process, or our own TLS LocalCluster."""
        if self.address is None:
            return True
        return self.address.split("://", 1)[0].lower() in _SECRET_SAFE_SCHEMES


def add_arguments(group: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    """--dask ADDRESS | --dask-local N, and --dask-batch-size, for the bulk commands."""
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the transfers on this Dask scheduler's workers (tcp://HOST:8786, or "
        "tls://... to let client-only keys travel); needs ssec-transfer[dask]",
    )
    where.add_argument(
        "--dask-local",
        type=argtypes.positive_int,
        metavar="N",
        help="run the transfers on a Dask cluster of N worker processes on this machine",
    )
    group.add_argument(
        "--dask-batch-size",
        type=argtypes.size,
        metavar="SIZE",
        default=DaskCluster.max_batch_bytes,
        help="with --dask/--dask-local: at most this many bytes per batch (default 4GiB)",
    )


def cluster_from_args(args: argparse.Namespace) -> DaskCluster | None:
    """The cluster the command line asks for, or None for a local run."""
    address = getattr(args, "dask", None)
    local = getattr(args, "dask_local", None)
    if address is None and local is None:
        return None
    batch = getattr(args, "dask_batch_size", None) or DaskCluster.max_batch_bytes
    return DaskCluster(address=address, local_workers=local, max_batch_bytes=batch)


# -- keys ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySource:
    """Where a worker gets a job's key: a path or a variable name (the key stays put), or
    the base64 key itself (`material`, only over TLS). `fingerprint` is what the client
    planned with: a worker whose file holds another key fails that object."""

    path: str | None = None
    env: str | None = None
    material: str | None = field(default=None, repr=False)
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.path, self.env, self.material)) != 1:
            raise ValueError("a KeySource is exactly one of path, env or material")

    @classmethod
    def of(cls, key: SSECustomerKey) -> Self:
        """Describe a loaded key by where it came from (see `SSECustomerKey.source`)."""
        for prefix, name in (("key file ", "path"), ("environment variable ", "env")):
            if key.source.startswith(prefix):
                value = key.source[len(prefix) :]
                if name == "path":
                    value = os.path.abspath(value)
                return cls(**{name: value}, fingerprint=key.fingerprint)
        return cls(material=key.export_base64(), fingerprint=key.fingerprint)

    @property
    def travels(self) -> bool:
        return self.material is not None

    def describe(self) -> str:
        if self.path is not None:
            return f"key file {self.path}"
        if self.env is not None:
            return f"environment variable {self.env}"
        return "key sent by the client"

    def load(self, where: str = "this worker") -> SSECustomerKey:
        """Load the key here; refuse one that is not the key the client planned with."""
        if self.path is not None:
            key = SSECustomerKey.from_file(self.path)
        elif self.env is not None:
            key = SSECustomerKey.from_env(self.env)
        else:
            assert self.material is not None
            key = SSECustomerKey.from_base64(self.material, source=self.describe())
        if self.fingerprint is not None and key.fingerprint != self.fingerprint:
            raise KeyFileError(
                f"{self.describe()} on Dask worker {where} holds key {key.fingerprint}, not "
                f"{self.fingerprint} that the client planned this transfer with; nothing was sent",
                hint="every worker needs the same key under the same path (or variable name)",
            )
        return key


def default_key_source(job: TransferJob) -> KeySource | None:
    """The key source of a planned job: its key's file or variable, else the key itself."""
    return KeySource.of(job.sse_key) if job.sse_key is not None else None


# -- batches -------------------------------------------------------------------------------

_PER_FILE_WEIGHT = 256 * 1024  # a request's worth of time, so many small files spread too
_MIN_BATCH_WEIGHT = 64 * MiB  # below this a batch's start-up cost (an S3 client) dominates


def batch_count(sizes: Sequence[int | None], slots: int, per_slot: int) -> int:
    """How many batches to aim for: `per_slot` per worker thread for big runs, but no
    batch lighter than 64 MiB (or 256 small files) unless every thread needs one."""
    weight = sum((s or 0) + _PER_FILE_WEIGHT for s in sizes)
    return max(slots, min(slots * per_slot, math.ceil(weight / _MIN_BATCH_WEIGHT)))


def plan_batches(
    sizes: Sequence[int | None],
    batches: int,
    *,
    max_batch_bytes: int = DaskCluster.max_batch_bytes,
    max_batch_files: int = DaskCluster.max_batch_files,
) -> list[list[int]]:
    """Split job indices into size-balanced batches: largest first, each to the lightest
    batch that still has room (LPT). At least `batches` batches (fewer only with fewer jobs),
    more where `max_batch_bytes` or `max_batch_files` demand it; a file larger than
    `max_batch_bytes` gets a batch of its own. Indices keep their order inside a batch;
    batches come heaviest first, so the long ones start first."""
    if not sizes:
        return []
    nbytes = [s or 0 for s in sizes]
    weights = [n + _PER_FILE_WEIGHT for n in nbytes]
    wanted = max(
        batches,
        math.ceil(sum(nbytes) / max_batch_bytes),
        math.ceil(len(sizes) / max_batch_files),
    )
    count = max(1, min(len(sizes), wanted))
    members: list[list[int]] = [[] for _ in range(count)]
    loads = [0] * count
    filled = [0] * count
    heap = [(0, b) for b in range(count)]  # (weight, batch); full batches leave the heap
    for i in sorted(range(len(sizes)), key=lambda i: (-weights[i], i)):
        no_room: list[tuple[int, int]] = []
        while heap:
            load, b = heapq.heappop(heap)
            if len(members[b]) >= max_batch_files:
                continue  # full for good
            if members[b] and filled[b] + nbytes[i] > max_batch_bytes:
                no_room.append((load, b))  # a smaller file may still fit later
                continue
            break
        else:
            b = len(members)
            members.append([])
            loads.append(0)
            filled.append(0)
        members[b].append(i)
        loads[b] += weights[i]
        filled[b] += nbytes[i]
        heapq.heappush(heap, (loads[b], b))
        for entry in no_room:
            heapq.heappush(heap, entry)
    chosen = [b for b in range(len(members)) if members[b]]
    chosen.sort(key=lambda b: (-loads[b], b))
    return [sorted(members[b]) for b in chosen]


# -- what travels --------------------------------------------------------------------------


@dataclass(frozen=True)
class _WireJob:
    """A `TransferJob` without its key: what a worker needs, all of it picklable."""

    index: int
    operation: str
    path: str
    bucket: str
    key: str
    version_id: str | None
    size: int | None
    key_source: KeySource | None
    ledger_entry: LedgerEntry | None  # the client's newest ledger row, for checks


@dataclass(frozen=True)
class _BatchSpec:
    task_key: str  # also where the worker journals finished objects (task metadata)
    queue: str  # where the worker streams outcomes and progress
    stop_event: str  # set by the client when it gives up on the run (Ctrl-C, --fail-fast)
    batch: int
    jobs: tuple[_WireJob, ...]
    settings: ConnectionSettings
    config: TransferConfig
    skip_existing: bool
    fail_fast: bool
    resume: bool
    max_files: int | None


# -- on a worker ---------------------------------------------------------------------------


class _Channel:
    """The worker's line to the client: finished objects go into the batch's task metadata
    on the scheduler (so a re-run of the batch skips them) and then onto the run's queue (so
    the client prints them now); the run's stop event says the client has given up."""

    def __init__(self, dist: Any, spec: _BatchSpec) -> None:
        self.client = dist.get_client()
        self.spec = spec
        self.queue = dist.Queue(spec.queue, client=self.client)
        self.stop = dist.Event(spec.stop_event, client=self.client)
        self.attempt = 0
        self._chunks = 0
        self._warned = False

    def stopped(self) -> bool:
        return bool(self.stop.is_set())

    def start(self) -> dict[int, dict[str, Any]]:
        """Count this attempt; return the outcomes earlier attempts reported."""
        meta = self.client.get_metadata([self.spec.task_key], default=None) or {}
        self.attempt = int(meta.get("attempts", 0)) + 1
        self.client.set_metadata([self.spec.task_key, "attempts"], self.attempt)
        earlier: dict[int, dict[str, Any]] = {}
        for name, chunk in meta.items():
            if str(name).startswith("done-"):
                earlier.update((int(o["index"]), o) for o in chunk)
        return earlier

    def publish(self, outcomes: list[dict[str, Any]], nbytes: int) -> bool:
        """Report; True when the client asked the run to stop."""
        try:
            if outcomes:
                self._chunks += 1
                name = f"done-{self.attempt}-{self._chunks}"
                self.client.set_metadata([self.spec.task_key, name], outcomes)
            if outcomes or nbytes:
                self.queue.put({"batch": self.spec.batch, "outcomes": outcomes, "bytes": nbytes})
            return self.stopped()
        except Exception as exc:  # the run goes on; the batch's result still carries them
            if not self._warned:
                log.warning("cannot report progress to the Dask client: %s", exc)
                self._warned = True
            return False

    def close(self) -> None:
        with suppress(Exception):
            self.queue.close()


class _ByteCounter:
    def __init__(self) -> None:
        self.pending = 0

    def add(self, n: int) -> None:
        self.pending += n

    def take(self) -> int:
        n, self.pending = self.pending, 0
        return n


def _run_batch(spec: _BatchSpec) -> dict[str, Any]:
    """The Dask task: run one batch on this worker with the ordinary engine."""
    dist = _import_distributed()
    worker = dist.get_worker()
    channel = _Channel(dist, spec)
    try:
        earlier = channel.start()
        todo = [] if channel.stopped() else [j for j in spec.jobs if j.index not in earlier]
        resume = spec.resume or channel.attempt > 1
        outcomes, peaks = anyio.run(
            _run_batch_async, spec, todo, resume, channel, str(worker.address)
        )
    finally:
        channel.close()
    return {
        "batch": spec.batch,
        "outcomes": [*earlier.values(), *outcomes],
        "attempt": channel.attempt,
        "worker": str(worker.address),
        "peak_requests_in_flight": peaks[0],
        "peak_bytes_reserved": peaks[1],
    }


async def _publisher(
    receive: MemoryObjectReceiveStream[dict[str, Any]],
    channel: _Channel,
    counter: _ByteCounter,
    work: anyio.CancelScope,
) -> None:
    """Report finished objects as soon as possible (several at once when they pile up) and
    progress bytes every half second; cancel `work` when the client stops the run."""
    ended = False
    async with receive:
        while not ended:
            pending: list[dict[str, Any]] = []
            with anyio.move_on_after(_PUBLISH_SECONDS):
                try:
                    pending.append(await receive.receive())
                    while True:
                        pending.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    pass
                except anyio.EndOfStream:
                    ended = True
            if await anyio.to_thread.run_sync(channel.publish, pending, counter.take()):
                work.cancel()  # uploads in flight are aborted, as on Ctrl-C in a local run


async def _snapshot_ledger(folder: str, jobs: Sequence[_WireJob]) -> Ledger | None:
    """A throwaway ledger holding the client's rows for these objects, so the engine's own
    checks (--skip-existing, download digests) work on a worker unchanged. Workers never
    write the real ledger: the client does."""
    entries = [job.ledger_entry for job in jobs if job.ledger_entry is not None]
    if not entries:
        return None

    def build() -> Ledger:
        ledger = Ledger(Path(folder) / "ledger.sqlite")
        for entry in entries:
            ledger.add(entry)
        return ledger

    return await anyio.to_thread.run_sync(build)


def _local_jobs(jobs: Sequence[_WireJob], where: str) -> tuple[list[TransferJob], dict[int, int]]:
    """Rebuild the jobs with keys loaded here; a key that cannot be loaded fails its job."""
    loaded: dict[KeySource, SSECustomerKey | SSECTransferError] = {}
    built: list[TransferJob] = []
    index_of: dict[int, int] = {}
    for wire in jobs:
        key: SSECustomerKey | None = None
        problem: SSECTransferError | None = None
        source = wire.key_source
        if source is not None:
            if source not in loaded:
                try:
                    loaded[source] = source.load(where)
                except SSECTransferError as exc:
                    loaded[source] = exc
            found = loaded[source]
            if isinstance(found, SSECustomerKey):
                key = found
            else:
                problem = found
        job = TransferJob(
            "upload" if wire.operation == "upload" else "download",
            Path(wire.path), wire.bucket, wire.key, key, version_id=wire.version_id,
            size=wire.size, problem=problem,
        )  # fmt: skip
        built.append(job)
        index_of[id(job)] = wire.index
    return built, index_of


def _mtime_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


async def _outcome_dict(index: int, outcome: JobOutcome) -> dict[str, Any]:
    """The JSON line's fields, plus what the client needs to rebuild the outcome and write
    the ledger row. Plain data only: it travels through the scheduler."""
    data = outcome.to_dict()
    result = outcome.result
    data["index"] = index
    data["result"] = dataclasses.asdict(result) if result else None
    data["error_detail"] = outcome.error.to_dict() if outcome.error else None
    data["local_mtime_ns"] = (
        await anyio.to_thread.run_sync(_mtime_ns, result.path) if result else None
    )
    return data


async def _run_batch_async(
    spec: _BatchSpec, todo: list[_WireJob], resume: bool, channel: _Channel, where: str
) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    counter = _ByteCounter()
    results: list[dict[str, Any]] = []
    peaks = (0, 0)
    send, receive = anyio.create_memory_object_stream[dict[str, Any]](math.inf)

    async def report(index: int, outcome: JobOutcome) -> None:
        data = await _outcome_dict(index, outcome)
        results.append(data)
        send.send_nowait(data)

    async with anyio.create_task_group() as tg:
        work = anyio.CancelScope()
        tg.start_soon(_publisher, receive, channel, counter, work)
        with send, work, tempfile.TemporaryDirectory(prefix="ssec-transfer-batch-") as folder:
            jobs, index_of = await anyio.to_thread.run_sync(_local_jobs, todo, where)
            ledger = await _snapshot_ledger(folder, todo)
            try:
                async with TransferEngine(
                    settings=spec.settings, config=spec.config, ledger=ledger,
                    journal="default", resume=resume,
                ) as engine:  # fmt: skip
                    async with run_jobs(
                        engine, jobs, fail_fast=spec.fail_fast,
                        skip_existing=spec.skip_existing, max_files=spec.max_files,
                        on_bytes=counter.add,
                    ) as outcomes:  # fmt: skip
                        async for outcome in outcomes:
                            await report(index_of[id(outcome.job)], outcome)
                    stats = engine.scheduler.stats()
                    peaks = (stats.peak_requests_in_flight, stats.peak_bytes_reserved)
            except SSECTransferError as exc:  # this worker cannot reach S3 at all
                done = {d["index"] for d in results}
                for job in jobs:
                    if index_of[id(job)] not in done:
                        await report(index_of[id(job)], JobOutcome(job, "failed", error=exc))
    return results, peaks


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


def _ignore_interrupts(dist: Any) -> Any:
    """A worker plugin for our LocalCluster: Ctrl-C reaches the whole process group, and
    worker processes dying mid-upload would leave uploads behind. The client stops them
    instead (the run's stop event), so their transfers abort cleanly."""

    class IgnoreInterrupts(dist.WorkerPlugin):  # type: ignore[misc]
        name = "ssec-transfer-ignore-sigint"

        def setup(self, worker: Any) -> None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreInterrupts()


class _Session:
    """The blocking side: a Dask client (and our LocalCluster). Call from a worker thread."""

    def __init__(self, dist: Any, cluster: DaskCluster) -> None:
        self.dist = dist
        self.local: Any = None
        self.client: Any = None
        self.futures: list[Any] = []
        self.batch_of: dict[Any, int] = {}
        self.queue: Any = None
        self.stop: Any = None
        self.completed: Any = None
        try:
            if cluster.local_workers is not None:
                # TLS with throwaway certificates: loopback tcp:// is readable by every
                # local user, and client-only keys may have to travel.
                self.local = dist.LocalCluster(
                    n_workers=cluster.local_workers, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address="127.0.0.1:0", security=True,
                    silence_logs=logging.ERROR,
                )  # fmt: skip
                self.client = dist.Client(self.local, set_as_default=False)
                self.client.register_plugin(_ignore_interrupts(dist))
            else:
                self.client = dist.Client(
                    cluster.address, timeout=cluster.connect_timeout, set_as_default=False
                )
                self.client.wait_for_workers(1, timeout=cluster.connect_timeout)
        except SSECTransferError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            where = cluster.address or f"a local cluster of {cluster.local_workers} workers"
            hint = (
                "check the scheduler address and that workers are connected "
                "(`dask scheduler`, `dask worker ADDRESS`)"
            )
            if where.startswith("tls://"):
                hint += "; tls:// needs Dask's TLS settings (distributed.comm.tls.ca-file, "
                hint += ".client.cert, .client.key in the Dask config or DASK_* variables)"
            raise DaskClusterError(
                f"cannot use Dask on {where}: {type(exc).__name__}: {exc}", hint=hint
            ) from None

    def threads(self) -> tuple[int, int]:
        nthreads = self.client.nthreads()
        return len(nthreads), sum(int(n) for n in nthreads.values())

    def submit(self, specs: list[_BatchSpec]) -> None:
        self.queue = self.dist.Queue(specs[0].queue, client=self.client)
        self.stop = self.dist.Event(specs[0].stop_event, client=self.client)
        self.futures = [
            self.client.submit(_run_batch, spec, key=spec.task_key, pure=False, retries=2)
            for spec in specs
        ]
        self.batch_of = {
            future.key: spec.batch for future, spec in zip(self.futures, specs, strict=True)
        }
        self.completed = self.dist.as_completed(self.futures, loop=self.client.loop)

    def poll(self) -> tuple[list[dict[str, Any]], list[tuple[int, Any, BaseException | None]]]:
        """News since the last call: queue messages and finished batches. Waits a little
        when there is none, so the caller can loop on it."""
        messages = list(self.queue.get(batch=True))
        settled: list[tuple[int, Any, BaseException | None]] = []
        if self.completed.has_ready():
            for future in self.completed.next_batch(block=False):
                batch = self.batch_of[future.key]
                try:
                    settled.append((batch, future.result(), None))
                except BaseException as exc:  # erred, lost or cancelled
                    settled.append((batch, None, exc))
        if not messages and not settled:
            time.sleep(_POLL_SECONDS)
        return messages, settled

    def cancel(self) -> None:
        """Stop the run: running batches abort their transfers (as a local run does on
        Ctrl-C) and return within a grace period; queued batches are dropped."""
        pending = [future for future in self.futures if not future.done()]
        if not pending:
            return
        with suppress(Exception):
            self.stop.set()
            deadline = time.monotonic() + _STOP_GRACE_SECONDS
            while time.monotonic() < deadline and not all(f.done() for f in pending):
                time.sleep(_POLL_SECONDS)  # batches not started yet return at once
        with suppress(Exception):
            self.client.cancel(pending)

    def close(self) -> None:
        self.cancel()
        if self.queue is not None:
            with suppress(Exception):
                self.queue.close()
        if self.client is not None:
            with suppress(Exception):
                self.client.close()
        if self.local is not None:
            with suppress(Exception):
                self.local.close()
        self.client = self.local = self.queue = None


def _refuse_travelling_keys(cluster: DaskCluster, travelling: list[TransferJob]) -> None:
    if not travelling or cluster.carries_secrets:
        return
    first = travelling[0]
    source = first.sse_key.source if first.sse_key else "a key"
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
) -> AsyncIterator[DaskOutcomes]:
    """`bulk.run_jobs`, on a Dask cluster; iterate the outcomes as they finish.

        async with run_jobs_distributed(engine, jobs, cluster=DaskCluster(local_workers=2))
                as outcomes:
            async for outcome in outcomes:
                ...

    `engine` is the client's open engine: its endpoint, connection settings, tuning and
    `resume` go to every worker (each batch opens its own engine), and its ledger receives
    every finished transfer here, on the client. Key material that would travel over plain
    tcp:// is refused (UsageError) before anything is sent.
    """
    planned = list(jobs)
    dist = _import_distributed()
    early: list[JobOutcome] = []  # problems found while planning fail at once, as locally
    todo: list[tuple[int, TransferJob, KeySource | None]] = []
    for index, job in enumerate(planned):
        if job.problem is not None:
            early.append(JobOutcome(job, "failed", error=job.problem))
        else:
            todo.append((index, job, key_source_for(job) if job.sse_key else None))
    _refuse_travelling_keys(cluster, [job for _, job, s in todo if s is not None and s.travels])

    endpoint = engine.endpoint_url
    rows: dict[int, LedgerEntry] = {}
    if engine.ledger is not None and (
        skip_existing or any(job.operation == "download" for _, job, _ in todo)
    ):
        rows = await anyio.to_thread.run_sync(
            _ledger_rows, engine.ledger, endpoint, [(i, job) for i, job, _ in todo]
        )
    wire = [
        _WireJob(
            index=i,
            operation=job.operation,
            path=str(job.path),
            bucket=job.bucket,
            key=job.key,
            version_id=job.version_id,
            size=job.size,
            key_source=source,
            ledger_entry=rows.get(i),
        )
        for i, job, source in todo
    ]

    send, receive = anyio.create_memory_object_stream[JobOutcome](math.inf)
    outcomes = DaskOutcomes(receive)
    session: _Session | None = None
    try:
        if wire:
            session = await anyio.to_thread.run_sync(_Session, dist, cluster)
        specs: list[_BatchSpec] = []
        if session is not None:
            workers, threads = await anyio.to_thread.run_sync(session.threads)
            sizes = [w.size for w in wire]
            groups = plan_batches(
                sizes, batch_count(sizes, max(1, threads), cluster.batches_per_worker),
                max_batch_bytes=cluster.max_batch_bytes, max_batch_files=cluster.max_batch_files,
            )  # fmt: skip
            run_id = uuid.uuid4().hex[:12]
            settings = replace(engine.settings, endpoint_url=endpoint)
            specs = [
                _BatchSpec(
                    task_key=f"ssec-transfer-{run_id}-batch-{b}",
                    queue=f"ssec-transfer-{run_id}",
                    stop_event=f"ssec-transfer-{run_id}-stop",
                    batch=b,
                    jobs=tuple(wire[i] for i in group),
                    settings=settings,
                    config=engine.config,
                    skip_existing=skip_existing,
                    fail_fast=fail_fast,
                    resume=engine.resume,
                    max_files=max_files,
                )
                for b, group in enumerate(groups)
            ]
            outcomes.workers, outcomes.batches = workers, len(specs)
            await anyio.to_thread.run_sync(session.submit, specs)
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                _pump, session, specs, planned, early, engine, send, outcomes, fail_fast,
                on_bytes,
            )  # fmt: skip
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


async def _pump(
    session: _Session | None,
    specs: list[_BatchSpec],
    planned: list[TransferJob],
    early: list[JobOutcome],
    engine: TransferEngine,
    send: ObjectSendStream[JobOutcome],
    outcomes: DaskOutcomes,
    fail_fast: bool,
    on_bytes: Callable[[int], None] | None,
) -> None:
    """Turn the cluster's news into outcomes, in the order objects finish; write the ledger."""
    seen: set[int] = set()
    endpoint = engine.endpoint_url

    async def emit(outcome: JobOutcome) -> bool:
        await send.send(outcome)
        return fail_fast and outcome.status == "failed"

    async def emit_dict(data: dict[str, Any]) -> bool:
        index = int(data["index"])
        if index in seen:
            return False
        seen.add(index)
        job = planned[index]
        result = TransferResult(**data["result"]) if data.get("result") else None
        error = rebuild_error(data["error_detail"]) if data.get("error_detail") else None
        outcome = JobOutcome(job, data["status"], result, error, float(data["seconds"]))
        if result is not None and engine.ledger is not None:
            row = _ledger_row(endpoint, result, data.get("local_mtime_ns"))
            with anyio.CancelScope(shield=True):  # the object exists now: note its key
                await anyio.to_thread.run_sync(engine.ledger.add, row)
        return await emit(outcome)

    async def fail_unseen(batches: Iterable[int], error: SSECTransferError) -> bool:
        for batch in sorted(batches):
            for wire in specs[batch].jobs:
                if wire.index not in seen:
                    seen.add(wire.index)
                    if await emit(JobOutcome(planned[wire.index], "failed", error=error)):
                        return True
        return False

    async with send:
        for outcome in early:
            if await emit(outcome):
                return
        if session is None:
            return
        unsettled = set(range(len(specs)))
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
                await fail_unseen(unsettled, lost)
                return
            for message in messages:
                if on_bytes is not None and message.get("bytes"):
                    on_bytes(int(message["bytes"]))
                for data in message.get("outcomes", ()):
                    if await emit_dict(data):
                        await anyio.to_thread.run_sync(session.cancel)
                        return
            for batch, result, failure in settled:
                unsettled.discard(batch)
                if result is not None:
                    outcomes.peak_requests_in_flight = max(
                        outcomes.peak_requests_in_flight, int(result["peak_requests_in_flight"])
                    )
                    outcomes.peak_bytes_reserved = max(
                        outcomes.peak_bytes_reserved, int(result["peak_bytes_reserved"])
                    )
                    stop = False
                    for data in result["outcomes"]:
                        if stop := await emit_dict(data):
                            break
                else:
                    error = DaskClusterError(
                        f"batch {batch} failed on the Dask cluster: "
                        f"{type(failure).__name__}: {failure}",
                        hint="see the workers' logs; run the failed objects again",
                    )
                    stop = await fail_unseen([batch], error)
                if stop:
                    await anyio.to_thread.run_sync(session.cancel)
                    return
