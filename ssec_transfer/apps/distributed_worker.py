"""What runs on a Dask worker for `apps.distributed`: one batch of transfers with the ordinary
engine, and what travels to it (jobs without their keys, and where each key comes from).

Kept apart from the client side so a worker imports only this, and so the client's plumbing
and the worker's stay readable on their own.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import os
import tempfile
import threading
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream

from ssec_transfer.apps.bulk import JobOutcome, TransferJob, run_jobs
from ssec_transfer.apps.copy_jobs import CopySettings, run_copy_job
from ssec_transfer.core.bandwidth import TokenBucket
from ssec_transfer.core.errors import KeyFileError, SSECTransferError, UsageError
from ssec_transfer.core.taskgroups import for_each
from ssec_transfer.engine import TransferConfig, TransferEngine
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.client import ConnectionSettings
from ssec_transfer.state.ledger import Ledger, LedgerEntry
from ssec_transfer.transfer.attributes import ObjectAttributes
from ssec_transfer.transfer.copy import CopyOutcome

log = logging.getLogger(__name__)

INSTALL_HINT = "install the Dask extra: pip install 'ssec-transfer[dask]'"
_PUBLISH_SECONDS = 0.5  # longest a worker keeps progress bytes before reporting them


def import_distributed() -> Any:
    """`distributed` is optional (and untyped here on purpose: Any at the boundary)."""
    try:
        return importlib.import_module("distributed")
    except ImportError:
        raise UsageError("--dask needs the `distributed` package", hint=INSTALL_HINT) from None


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


# -- what travels --------------------------------------------------------------------------


@dataclass(frozen=True)
class WireJob:
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
    # A copy's source (cp, sync S3 to S3) or a rotation's old key (`apps.copy_jobs`).
    source_bucket: str = ""
    source_key: str = ""
    source_key_source: KeySource | None = None


@dataclass(frozen=True)
class BatchSpec:
    task_key: str  # also where the worker journals finished objects (task metadata)
    queue: str  # where the worker streams outcomes and progress
    stop_event: str  # set by the client when it gives up on the run (Ctrl-C, --fail-fast)
    batch: int
    jobs: tuple[WireJob, ...]
    settings: ConnectionSettings
    config: TransferConfig
    skip_existing: bool
    fail_fast: bool
    resume: bool
    max_files: int | None
    attributes: ObjectAttributes = field(default_factory=ObjectAttributes)
    no_clobber: bool = False
    copying: CopySettings = field(default_factory=CopySettings)  # cp, rotate, sync S3 to S3


# -- on a worker ---------------------------------------------------------------------------


class _Channel:
    """The worker's line to the client: finished objects go into the batch's task metadata
    on the scheduler (so a re-run of the batch skips them) and then onto the run's queue (so
    the client prints them now); the run's stop event says the client has given up."""

    def __init__(self, dist: Any, spec: BatchSpec) -> None:
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


def run_batch(spec: BatchSpec) -> dict[str, Any]:
    """The Dask task: run one batch on this worker with the ordinary engine."""
    dist = import_distributed()
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


async def _snapshot_ledger(folder: str, jobs: Sequence[WireJob]) -> Ledger | None:
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


def _local_jobs(jobs: Sequence[WireJob], where: str) -> tuple[list[TransferJob], dict[int, int]]:
    """Rebuild the jobs with keys loaded here; a key that cannot be loaded fails its job."""
    loaded: dict[KeySource, SSECustomerKey | SSECTransferError] = {}

    def load(source: KeySource | None) -> SSECustomerKey | SSECTransferError | None:
        if source is None:
            return None
        if source not in loaded:
            try:
                loaded[source] = source.load(where)
            except SSECTransferError as exc:
                loaded[source] = exc
        return loaded[source]

    built: list[TransferJob] = []
    index_of: dict[int, int] = {}
    for wire in jobs:
        key, source_key = load(wire.key_source), load(wire.source_key_source)
        problem = next((k for k in (key, source_key) if isinstance(k, SSECTransferError)), None)
        job = TransferJob(
            wire.operation,  # type: ignore[arg-type]  # one of `bulk.Operation`, as planned
            Path(wire.path), wire.bucket, wire.key,
            key if isinstance(key, SSECustomerKey) else None, version_id=wire.version_id,
            size=wire.size, problem=problem, source_bucket=wire.source_bucket,
            source_key=wire.source_key,
            source_sse_key=source_key if isinstance(source_key, SSECustomerKey) else None,
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


def _copies_dict(index: int, outcomes: list[CopyOutcome]) -> dict[str, Any]:
    """A copy or rotation job's outcomes (one per version with --all-versions) as plain
    data; `apps.distributed` rebuilds each as a `JobOutcome` naming the source version."""
    return {
        "index": index,
        "copies": [
            {
                "status": o.status,
                "version_id": o.version_id,
                "result": dataclasses.asdict(o.result) if o.result else None,
                "error_detail": o.error.to_dict() if o.error else None,
                "reason": o.reason,
                "seconds": o.result.seconds if o.result else 0.0,
            }
            for o in outcomes
        ],
    }


_buckets: dict[int, TokenBucket] = {}
_buckets_lock = threading.Lock()


def process_bucket(config: TransferConfig) -> TokenBucket | None:
    """This worker process's bandwidth limit: one bucket for every batch it runs, whether one
    after another or side by side in several threads (each with its own event loop and
    engine), so `--bwlimit` holds per process as it does in a local run."""
    if config.bwlimit is None:
        return None
    with _buckets_lock:
        bucket = _buckets.get(config.bwlimit)
        if bucket is None:
            bucket = _buckets[config.bwlimit] = TokenBucket(config.bwlimit)
        return bucket


async def _copy_each(
    engine: TransferEngine,
    spec: BatchSpec,
    jobs: list[TransferJob],
    index_of: dict[int, int],
    report: Callable[[int, list[CopyOutcome]], Awaitable[None]],
    counter: _ByteCounter,
) -> None:
    """The batch's copies and rotations, at most `max_files` at once (as `run_jobs` bounds
    files); with --fail-fast the first failure stops the rest."""
    limit = spec.max_files or 2 * spec.config.concurrency
    async with anyio.create_task_group() as tg:

        async def one(job: TransferJob) -> None:
            found = await run_copy_job(
                engine, job, spec.copying, lambda done, total: counter.add(done)
            )
            await report(index_of[id(job)], found)
            if spec.fail_fast and any(o.status == "failed" for o in found):
                tg.cancel_scope.cancel()

        await for_each(jobs, one, limit)


async def _run_batch_async(
    spec: BatchSpec, todo: list[WireJob], resume: bool, channel: _Channel, where: str
) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    counter = _ByteCounter()
    results: list[dict[str, Any]] = []
    peaks = (0, 0)
    send, receive = anyio.create_memory_object_stream[dict[str, Any]](math.inf)

    async def report(index: int, outcome: JobOutcome | list[CopyOutcome]) -> None:
        if isinstance(outcome, list):
            data = _copies_dict(index, outcome)
        else:
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
                    journal="default", resume=resume, attributes=spec.attributes,
                    no_clobber=spec.no_clobber, bandwidth=process_bucket(spec.config),
                ) as engine:  # fmt: skip
                    copies = [j for j in jobs if j.operation in ("copy", "rotate")]
                    transfers = [j for j in jobs if j.operation in ("upload", "download")]
                    async with anyio.create_task_group() as both:
                        both.start_soon(_copy_each, engine, spec, copies, index_of, report, counter)
                        async with run_jobs(
                            engine, transfers, fail_fast=spec.fail_fast,
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
