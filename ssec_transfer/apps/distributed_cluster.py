"""Which Dask cluster a distributed run uses, and the blocking Dask client that talks to it.

Everything here calls Dask's synchronous API, so `apps.distributed` runs it in a worker thread;
keeping it apart leaves the asynchronous side free of Dask's own event loop and conventions.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from ssec_transfer.apps.distributed_batches import MAX_BATCH_BYTES, MAX_BATCH_FILES
from ssec_transfer.apps.distributed_worker import BatchSpec, run_batch
from ssec_transfer.core.errors import SSECTransferError, TransferFailedError, UsageError

# Transports on which key material may ride inside a task: encrypted, or never on a network.
_SECRET_SAFE_SCHEMES = ("tls", "inproc")
_POLL_SECONDS = 0.1  # how often the client looks for news from the cluster
_STOP_GRACE_SECONDS = 15.0  # for running batches to abort their uploads when stopped


class DaskClusterError(TransferFailedError):
    """The Dask cluster could not be reached, or lost a batch for good."""


# -- where the cluster is ------------------------------------------------------------------


@dataclass(frozen=True)
class DaskCluster:
    """Which cluster to use, and how to cut the run into batches."""

    address: str | None = None  # a running scheduler, e.g. tcp://host:8786 or tls://host:8786
    local_workers: int | None = None  # else: start a LocalCluster of this many processes
    batches_per_worker: int = 4  # per worker thread
    max_batch_bytes: int = MAX_BATCH_BYTES
    max_batch_files: int = MAX_BATCH_FILES
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


def ignore_interrupts(dist: Any) -> Any:
    """A worker plugin for our LocalCluster: Ctrl-C reaches the whole process group, and
    worker processes dying mid-upload would leave uploads behind. The client stops them
    instead (the run's stop event), so their transfers abort cleanly."""

    class IgnoreInterrupts(dist.WorkerPlugin):  # type: ignore[misc]
        name = "ssec-transfer-ignore-sigint"

        def setup(self, worker: Any) -> None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreInterrupts()


def _quiet_dask_logs() -> None:
    """distributed's own config sets its loggers to INFO when it is imported (a line per
    worker start, connection and shutdown), which the command's stderr handler would print,
    even under --quiet. Its warnings and errors still show; everything only with -vv."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("distributed").setLevel(logging.WARNING)


class Session:
    """The blocking side: a Dask client (and our LocalCluster). Call from a worker thread."""

    def __init__(self, dist: Any, cluster: DaskCluster) -> None:
        _quiet_dask_logs()
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
                self.client.register_plugin(ignore_interrupts(dist))
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

    def submit(self, specs: list[BatchSpec]) -> None:
        self.queue = self.dist.Queue(specs[0].queue, client=self.client)
        self.stop = self.dist.Event(specs[0].stop_event, client=self.client)
        self.futures = [
            self.client.submit(run_batch, spec, key=spec.task_key, pure=False, retries=2)
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
