"""Prometheus metrics and the health verdict of a running `watch`.

`WatchMetrics` is a `WatchObserver` that counts into a registry of its own (never the
library's global one, so nothing else in the process leaks in). What it exports is counts,
sizes and durations; the only label is a failure's error class name, checked to be an
identifier, so neither a file name nor key material can reach a scrape.

Imported only when `--metrics-port` or `--metrics-file` asks for it: `prometheus_client` is
not loaded otherwise.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    write_to_textfile,
)

from ssec_transfer.apps.watch_observer import WatchObserver

PREFIX = "ssec_transfer_watch"
# From a small file on a LAN to a large one on a slow link.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
DEFAULT_UNHEALTHY_AFTER = 30 * 60.0  # seconds
_KIND = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class Health:
    """The health check's answer: `ok` is HTTP 200, else 503; `message` is its body."""

    ok: bool
    message: str


class WatchMetrics(WatchObserver):
    """The watch's counters, gauges and histogram, and its health.

    Unhealthy means: files wait (settling, uploading or due for a retry) and no upload has
    succeeded for `unhealthy_after` seconds, counted from when they began to wait if that is
    later, so a quiet week followed by one new file is not a failure. Before the first scan
    is done (`ready`) the service is "starting", also not healthy."""

    def __init__(
        self,
        *,
        unhealthy_after: float = DEFAULT_UNHEALTHY_AFTER,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.unhealthy_after = unhealthy_after
        self.clock = clock
        self.wall_clock = wall_clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.files_uploaded = Counter(
            f"{PREFIX}_files_uploaded", "Files uploaded and verified", registry=r
        )
        self.bytes_uploaded = Counter(
            f"{PREFIX}_bytes_uploaded", "Bytes of the files uploaded", registry=r
        )
        self.failures = Counter(
            f"{PREFIX}_failures",
            "Failed upload attempts, by the error's class name",
            ["kind"],
            registry=r,
        )
        self.duration = Histogram(
            f"{PREFIX}_upload_duration_seconds",
            "Time to upload (and verify) one file",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.retries = Counter(f"{PREFIX}_retries", "Failed files tried again", registry=r)
        self.aborted_uploads = Counter(
            f"{PREFIX}_aborted_uploads",
            "Uploads in flight cancelled at stop (multipart upload aborted)",
            registry=r,
        )
        self.files_seen = Gauge(f"{PREFIX}_files_seen", "Files known in the folder", registry=r)
        self.files_settling = Gauge(
            f"{PREFIX}_files_settling", "Files waiting to be complete", registry=r
        )
        self.files_in_flight = Gauge(f"{PREFIX}_files_in_flight", "Files uploading", registry=r)
        self.files_failing = Gauge(
            f"{PREFIX}_files_failing",
            "Files whose last upload failed, waiting to retry",
            registry=r,
        )
        self.last_success = Gauge(
            f"{PREFIX}_last_success_timestamp_seconds",
            "Unix time of the last upload that succeeded (0: none since start)",
            registry=r,
        )
        healthy = Gauge(
            f"{PREFIX}_healthy", "1 when the health check answers 200, else 0", registry=r
        )
        healthy.set_function(lambda: 1.0 if self.health().ok else 0.0)
        self._ready = False
        self._waiting = 0
        self._waiting_since: float | None = None
        self._last_success: float | None = None
        self.changes = 0  # bumped by every event: the file writer writes only after one

    def ready(self) -> None:
        self._ready = True
        self.changes += 1

    def queue(self, *, seen: int, settling: int, in_flight: int, failing: int) -> None:
        self.files_seen.set(seen)
        self.files_settling.set(settling)
        self.files_in_flight.set(in_flight)
        self.files_failing.set(failing)
        waiting = settling + in_flight + failing
        if waiting and self._waiting_since is None:
            self._waiting_since = self.clock()
        elif not waiting:
            self._waiting_since = None
        self._waiting = waiting
        self.changes += 1

    def uploaded(self, *, size: int, seconds: float) -> None:
        self.files_uploaded.inc()
        self.bytes_uploaded.inc(max(size, 0))
        self.duration.observe(max(seconds, 0.0))
        self.last_success.set(self.wall_clock())
        self._last_success = self.clock()
        self.changes += 1

    def failed(self, *, kind: str) -> None:
        self.failures.labels(kind=kind if _KIND.fullmatch(kind) else "other").inc()
        self.changes += 1

    def retried(self) -> None:
        self.retries.inc()
        self.changes += 1

    def aborted(self) -> None:
        self.aborted_uploads.inc()
        self.changes += 1

    def health(self) -> Health:
        """Healthy, starting, or how long nothing succeeded while how many files wait."""
        if not self._ready:
            return Health(False, "starting: the first scan of the folder is not finished")
        if not self._waiting or self._waiting_since is None:
            return Health(True, "ok")
        since = max(self._waiting_since, self._last_success or self._waiting_since)
        idle = self.clock() - since
        if idle < self.unhealthy_after:
            return Health(True, "ok")
        minutes = math.floor(idle / 60)
        files = "file waits" if self._waiting == 1 else "files wait"
        return Health(
            False,
            f"unhealthy: no upload succeeded for {minutes} min while {self._waiting} {files}",
        )

    def exposition(self) -> bytes:
        """The metrics in Prometheus's text format."""
        return generate_latest(self.registry)

    def write_textfile(self, path: Path) -> None:
        """Write the metrics for node_exporter's textfile collector: to a temporary file
        beside `path`, then renamed over it, so the collector never reads half a file."""
        write_to_textfile(str(path), self.registry)
