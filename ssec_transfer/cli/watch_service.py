"""`watch`'s service options: the Prometheus endpoint or textfile, the health threshold, the
systemd unit; and the observers they ask for, for the watcher to report to.

Cheap to import (the parser is built for every `--help`): prometheus_client, anyio and the
service modules load only inside `observers_from_args`, and the metrics library only when
--metrics-port or --metrics-file is given. The systemd notifier needs no option: it is on
whenever systemd sets `$NOTIFY_SOCKET` (a `Type=notify` unit).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssec_transfer.core.errors import UsageError

if TYPE_CHECKING:
    from ssec_transfer.apps.watch_observer import WatchObserver
    from ssec_transfer.service.metrics import WatchMetrics

log = logging.getLogger("ssec_transfer.apps.watch")

DEFAULT_METRICS_ADDRESS = "127.0.0.1"
DEFAULT_UNHEALTHY_MINUTES = 30.0
TEXTFILE_EVERY = 5.0  # seconds between checks for new events to write to --metrics-file
TEXTFILE_AT_LEAST = 60.0  # seconds: rewritten this often even without events (fresh mtime)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a port number from 1 to 65535 (0: any)")
    return value


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError("must be a number of minutes > 0")
    return value


class _PrintUnit(argparse.Action):
    """--print-systemd-unit: print the unit and exit, before DIR and the key are required
    (as --version does)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from ssec_transfer.service.unit import render_unit

        print(render_unit(), end="")
        parser.exit(0)


def add_service_options(parser: argparse.ArgumentParser) -> None:
    """--metrics-port/--metrics-address/--metrics-file, --unhealthy-after and
    --print-systemd-unit, in a group of their own."""
    g = parser.add_argument_group("service (systemd, metrics)")
    g.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics at http://ADDRESS:PORT/metrics and a health check at "
        "/healthz (200 ok; 503 while starting, or when no upload succeeded for "
        "--unhealthy-after while files wait)",
    )
    g.add_argument(
        "--metrics-address",
        default=DEFAULT_METRICS_ADDRESS,
        metavar="ADDRESS",
        help=f"address to serve metrics on (default {DEFAULT_METRICS_ADDRESS}: this host "
        "only; 0.0.0.0 or :: for every interface). Metrics hold counts, sizes and times, "
        "never file names or keys",
    )
    g.add_argument(
        "--metrics-file",
        type=Path,
        metavar="PATH",
        help="write the same metrics to PATH for node_exporter's textfile collector "
        "(NAME.prom in its --collector.textfile.directory), replaced atomically after new "
        "events (every few seconds at most) and at exit",
    )
    g.add_argument(
        "--unhealthy-after",
        type=_minutes,
        default=DEFAULT_UNHEALTHY_MINUTES,
        metavar="MINUTES",
        help="report unhealthy when files wait (settling, uploading or to retry) and no "
        f"upload succeeded for this long (default {DEFAULT_UNHEALTHY_MINUTES:g})",
    )
    g.add_argument(
        "--print-systemd-unit",
        action=_PrintUnit,
        help="print a systemd unit for watch (Type=notify, watchdog, key from "
        "LoadCredential=, hardening) to edit and install, and exit. Under such a unit watch "
        "tells systemd when it is ready, pings its watchdog and shows a status line",
    )


@contextlib.asynccontextmanager
async def observers_from_args(args: argparse.Namespace) -> AsyncIterator[WatchObserver]:
    """The observers the options ask for, running: the systemd notifier under a
    `Type=notify` unit, the metrics endpoint and textfile writer. Everything they started
    (sockets, tasks) is stopped on exit; they start no thread."""
    from ssec_transfer.apps.watch_observer import Observers
    from ssec_transfer.service.notify import SystemdNotifier

    notifier = SystemdNotifier.from_environ()
    observers: list[WatchObserver] = [notifier] if notifier else []
    port: int | None = getattr(args, "metrics_port", None)
    path: Path | None = getattr(args, "metrics_file", None)
    try:
        if port is None and path is None:
            yield Observers(observers)
            return
        async with _metrics(args, port, path) as metrics:
            yield Observers([*observers, metrics])
    finally:
        if notifier:
            notifier.notifier.close()


@contextlib.asynccontextmanager
async def _metrics(
    args: argparse.Namespace, port: int | None, path: Path | None
) -> AsyncIterator[WatchMetrics]:
    """WatchMetrics served on --metrics-port and written to --metrics-file until exit."""
    from ssec_transfer.core.taskgroups import task_group
    from ssec_transfer.service import http
    from ssec_transfer.service.metrics import WatchMetrics

    metrics = WatchMetrics(unhealthy_after=args.unhealthy_after * 60)
    written = metrics.changes
    if path is not None:
        _write(metrics, path)  # a folder that is missing or not writable stops us here
    listener = None
    if port is not None:
        address: str = args.metrics_address
        listener = await http.open_listener(address, port)
        log.info(
            "serving metrics on http://%s:%d/metrics and /healthz",
            address,
            http.bound_port(listener),
        )
    async with task_group() as tg:
        if listener is not None:
            endpoint = http.Endpoint(_with_process_metrics(metrics), metrics.health)
            tg.start_soon(http.serve, listener, endpoint)
        if path is not None:
            tg.start_soon(_keep_writing, metrics, path, written)
        try:
            yield metrics
        finally:
            tg.cancel_scope.cancel()
            if path is not None:
                try:
                    _write(metrics, path)  # the final counts (aborted uploads, ...)
                except UsageError as exc:
                    log.warning("%s", exc)


def _write(metrics: WatchMetrics, path: Path) -> None:
    try:
        metrics.write_textfile(path)
    except OSError as exc:
        raise UsageError(
            f"cannot write the metrics file {path}: {exc.strerror or exc}",
            hint="give --metrics-file a path in an existing folder this user may write "
            "(under systemd: one of ReadWritePaths=)",
        ) from None


async def _keep_writing(metrics: WatchMetrics, path: Path, written: int) -> None:
    """Rewrite the file when events arrived since the write that saw `written` of them,
    checking every TEXTFILE_EVERY seconds, and at least every TEXTFILE_AT_LEAST (so the
    health gauge and the file's mtime stay fresh)."""
    import anyio

    idle = 0.0
    while True:
        await anyio.sleep(TEXTFILE_EVERY)
        idle += TEXTFILE_EVERY
        if metrics.changes != written or idle >= TEXTFILE_AT_LEAST:
            idle = 0.0
            try:
                _write(metrics, path)
            except UsageError as exc:  # a full disk must not stop the uploads
                log.warning("%s", exc)


def _with_process_metrics(metrics: WatchMetrics) -> Any:
    """The /metrics page: the watch's metrics and the process's (memory, CPU, open files).
    Not in the textfile, where node_exporter's own process_* metrics would collide."""
    from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

    process = CollectorRegistry()
    ProcessCollector(registry=process)

    def page() -> bytes:
        return metrics.exposition() + generate_latest(process)

    return page
