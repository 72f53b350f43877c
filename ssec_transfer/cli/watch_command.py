"""`watch`: the ingestion loop as a command, stopped by signals, logging for an operator.

The options become a `WatchConfig` here; the process's signals are the CLI's business too, so
the first SIGINT/SIGTERM/SIGHUP drains `apps.watch.run_watch` and a second one aborts it:

| signal          | first                                   | second (or --drain-timeout)   |
|-----------------|-----------------------------------------|-------------------------------|
| SIGTERM, SIGINT | no new file; uploads in flight finish   | abort them (multipart uploads |
| SIGHUP          | (a closed terminal: stop, not a reload) | aborted), exit 143/130/129    |

A stop whose drain finished everything exits 0 (1 if a file is still failing or a path cannot
be sent); one that cancelled uploads at the drain timeout exits 1.

Each event is one line on stderr: an ISO 8601 UTC timestamp, what happened, the file, the
object, size, duration and rate; a failure once, with its retry plan. Log lines get the same
timestamp, so the output reads the same in a terminal, a file or the journal. On a terminal,
files of --multipart-threshold and more get a progress bar; elsewhere no bar and no `\r`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from ssec_transfer.apps.watch_config import DEFAULT_STATE_NAME, WatchConfig
from ssec_transfer.cli import argtypes
from ssec_transfer.cli.common import engine_for, require_key
from ssec_transfer.cli.options import (
    CommandFactory,
    Handler,
    add_connection,
    add_default_excludes,
    add_filters,
    add_key,
    add_object_options,
    add_output,
    add_tuning,
    load_key,
)
from ssec_transfer.cli.output import print_json, shows_successes
from ssec_transfer.core.errors import UsageError
from ssec_transfer.s3.urls import parse_s3_url

if TYPE_CHECKING:
    from ssec_transfer.apps.watch import EventCallback, ProgressFactory, WatchEvent, WatchSummary
    from ssec_transfer.apps.watch_observer import WatchObserver
    from ssec_transfer.core.results import ProgressCallback
    from ssec_transfer.engine import TransferEngine
    from ssec_transfer.keys.customer import SSECustomerKey

# Under the watcher's own name, as the rest of its messages (shown with -vv).
log = logging.getLogger("ssec_transfer.apps.watch")


def register(command: CommandFactory) -> None:
    watch_cmd = command(
        "watch",
        "ingestion: upload each new file in a folder once it is complete",
        "Watch DIR and upload every new file, once, when it is complete (its size and mtime "
        "unchanged for --settle seconds, or a marker file NAME.SUFFIX exists), to "
        "s3://BUCKET/PREFIX/ + its relative path. A state file remembers what was sent, so "
        "a restart sends nothing twice. Optionally delete or move each local file after the "
        "upload is verified. Ctrl-C, SIGTERM or SIGHUP stops polling and lets in-flight uploads "
        "finish (up to --drain-timeout, exit 0); a second one aborts them at once, with their "
        "multipart uploads (exit 130, 143 or 129); so does the end of --drain-timeout (exit 1). "
        "Links to files are "
        "followed, links to folders are not. A path that cannot be uploaded (FIFO, socket, "
        "device, dangling or looping link, link to a folder, unreadable file or folder, name "
        "not UTF-8) is reported once with its reason, not retried in a loop; the exit code is "
        "1 if such a path, or a file whose last upload failed, remains at the end.\n\n"
        "  ssec-transfer watch /data/outbox s3://bucket/l1/ --key-file sse-c.key \\\n"
        "      --exclude '*' --include '*.nc' --on-success move:/data/sent --json\n"
        "  ssec-transfer watch --status /data/outbox",
    )
    add_arguments(watch_cmd)
    add_key(watch_cmd, required=False)  # required to watch (cmd_watch), not for --status
    add_object_options(watch_cmd, no_clobber=False)
    add_connection(watch_cmd)
    add_tuning(watch_cmd)
    add_output(watch_cmd)
    from ssec_transfer.cli.watch_service import add_service_options

    add_service_options(watch_cmd)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """DIR, s3://BUCKET/PREFIX/ and the watch options (key, endpoint, tuning are separate)."""
    d = WatchConfig(directory=Path("."), bucket="")
    parser.add_argument("directory", metavar="DIR", help="folder to watch (recursively)")
    parser.add_argument(
        "target",
        metavar="s3://BUCKET/PREFIX/",
        nargs="?",
        help="objects are PREFIX + relative path",
    )
    g = parser.add_argument_group("watch")
    add_filters(g, "paths", when="")  # aws's ordered rules; a leading --include is refused
    add_default_excludes(g)
    g.add_argument(
        "--status",
        action="store_true",
        help="print what the watcher of DIR has pending, settling and failed, and when it "
        "last uploaded (read-only, while it runs; with --json one summary line), then exit",
    )
    g.add_argument(
        "--forget-after",
        type=argtypes.seconds,
        default=d.forget_after,
        metavar="SECONDS",
        help="forget the record of a file gone from DIR this long (default "
        f"{d.forget_after:g}, 30 days); until then a copy that reappears is not sent again",
    )
    g.add_argument(
        "--interval",
        type=argtypes.seconds,
        default=d.interval,
        metavar="SECONDS",
        help=f"seconds between polls of DIR (default {d.interval:g})",
    )
    g.add_argument(
        "--settle",
        type=argtypes.seconds,
        default=d.settle,
        metavar="SECONDS",
        help="a file is complete once its size and mtime stayed unchanged this long "
        f"(default {d.settle:g})",
    )
    g.add_argument(
        "--marker-suffix",
        metavar="SUFFIX",
        help="instead, a file NAME is complete once NAME+SUFFIX exists (e.g. .done); the "
        "marker is not uploaded and is deleted or moved along with the file",
    )
    _add_handling(g, d)


def _add_handling(g: argparse._ArgumentGroup, d: WatchConfig) -> None:
    """How many at once, what happens after an upload, where state lives, retries, stopping."""
    g.add_argument(
        "--max-files",
        type=argtypes.positive_int,
        default=d.max_files,
        metavar="N",
        help=f"files uploading at once (default {d.max_files}); --concurrency still bounds "
        "requests across all of them",
    )
    g.add_argument(
        "--on-success",
        type=argtypes.on_success,
        default=("keep", None),
        metavar="keep|delete|move:DIR",
        help="what to do with a local file once its upload is verified (default keep); "
        "move keeps the relative path under DIR",
    )
    g.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="HEAD each uploaded object with the key and check size and key fingerprint "
        "(default: only with --on-success delete or move, where it is required)",
    )
    g.add_argument(
        "--state",
        type=Path,
        metavar="PATH",
        help=f"SQLite file remembering finished uploads (default DIR/{DEFAULT_STATE_NAME}); "
        "holds no keys",
    )
    g.add_argument(
        "--retry-interval",
        type=argtypes.seconds,
        default=d.retry_interval,
        metavar="SECONDS",
        help=f"wait before retrying a failed file, doubling per failure (default "
        f"{d.retry_interval:g})",
    )
    g.add_argument(
        "--drain-timeout",
        type=argtypes.seconds,
        default=d.drain_timeout,
        metavar="SECONDS",
        help="on SIGINT/SIGTERM/SIGHUP, let uploads in flight finish this long, then abort "
        f"them and exit 1 (default {d.drain_timeout:g}); keep it below systemd's "
        "TimeoutStopSec",
    )


def config_from_args(args: argparse.Namespace) -> WatchConfig:
    """The WatchConfig for parsed `watch` arguments (validated)."""
    if not args.target:
        raise UsageError("watch needs DIR and s3://BUCKET/PREFIX/ (or --status DIR)")
    url = parse_s3_url(args.target)
    on_success, move_to = args.on_success
    config = WatchConfig(
        directory=Path(args.directory),
        bucket=url.bucket,
        prefix=url.key,
        rules=tuple(args.filters or ()),
        default_excludes=args.default_excludes,
        forget_after=args.forget_after,
        interval=args.interval,
        settle=args.settle,
        marker_suffix=args.marker_suffix,
        max_files=args.max_files,
        on_success=on_success,
        move_to=move_to,
        verify=args.verify,
        state_path=args.state,
        retry_interval=args.retry_interval,
        drain_timeout=args.drain_timeout,
    )
    config.validate()
    return config


async def run_watch_until_signal(
    engine: TransferEngine,
    config: WatchConfig,
    sse_key: SSECustomerKey,
    *,
    on_result: EventCallback | None = None,
    observer: WatchObserver | None = None,
    progress: ProgressFactory | None = None,
) -> WatchSummary:
    """`run_watch` that drains on the first stop signal (SIGINT, SIGTERM, SIGHUP).

    The next signal cancels the uploads in flight at once (their multipart uploads are
    aborted, the state file is closed) and the command ends with that signal's exit code
    (`cli.signals`).
    """
    import anyio

    from ssec_transfer.apps.watch import run_watch
    from ssec_transfer.cli.signals import graceful_stop

    stop = anyio.Event()

    def drain(signal_name: str) -> None:
        log.warning(
            "%s: finishing uploads in flight (up to %g s), then stopping; again: abort them",
            signal_name,
            config.drain_timeout,
        )
        stop.set()

    with graceful_stop(drain):
        return await run_watch(
            engine, config, sse_key, on_result=on_result, stop=stop, observer=observer,
            progress=progress,
        )  # fmt: skip


async def cmd_watch(args: argparse.Namespace) -> int:
    if args.status:
        from ssec_transfer.cli.watch_status_command import show_status

        return await show_status(args)
    key = require_key(load_key(args), "watch")
    config = config_from_args(args)

    from ssec_transfer.cli.common import progress_enabled
    from ssec_transfer.cli.progress import ProgressBar
    from ssec_transfer.cli.watch_service import observers_from_args
    from ssec_transfer.core.report import summary_record

    _stamp_log_lines()
    bars = progress_enabled(args) and not args.json
    write = _writer(bars)

    def show(event: WatchEvent) -> None:
        if args.json:
            print_json(event.to_dict())
        elif event.status == "failed" or shows_successes(args):
            write(event_line(event))

    def bar(rel: str, size: int) -> AbstractContextManager[ProgressCallback | None]:
        if size < args.multipart_threshold:  # over in a moment: its line is enough
            return nullcontext(None)
        return ProgressBar(rel, enabled=True)

    async with observers_from_args(args) as observer, engine_for(args) as engine:
        summary = await run_watch_until_signal(
            engine, config, key, on_result=show, observer=observer, progress=bar if bars else None
        )
    # Not sent for a reason other than --include/--exclude: a file whose last attempt failed
    # or was cancelled at stop, or a path that cannot be uploaded as it is (FIFO, dangling
    # link, unreadable, ...).
    code = 1 if summary.failing or summary.not_sendable or summary.cancelled else 0
    if args.json:
        print_json(summary_record("watch", **summary.to_dict(), exit_code=code))
    return code


def event_line(event: WatchEvent) -> str:
    """The human line of one event: `TIME uploaded a.nc -> s3://b/l1/a.nc (150.0 MiB in
    2.1 s, 71.4 MiB/s)`; a failure with its retry plan, then its hint on a line of its own."""
    from ssec_transfer.apps.watch import NOT_RETRIED
    from ssec_transfer.core.units import human_rate, human_size

    target = f"{event.path} -> s3://{event.bucket}/{event.object_key}"
    if event.status == "uploaded":
        size = event.size or 0
        figures = f"{human_size(size)} in {event.seconds:.1f} s, {human_rate(size, event.seconds)}"
        return f"{event.timestamp} uploaded {target} ({figures})"
    if event.status == "skipped":
        return f"{event.timestamp} skipped {target}: sent by an earlier run"
    note = NOT_RETRIED if event.reason else event.retry_plan
    problem = event.problem
    text = problem.describe() if problem is not None else event.error  # the hint comes last
    line = f"{event.timestamp} failed {target}: {text}" + (f" ({note})" if note else "")
    hint = problem.hint if problem is not None else None
    return line + (f"\n  hint: {hint}" if hint else "")


def _writer(bars: bool) -> Callable[[str], None]:
    """Print a line on stderr; with bars on screen, above them (tqdm.write) so none is torn."""
    if not bars:
        return lambda text: print(text, file=sys.stderr, flush=True)
    from tqdm import tqdm

    return lambda text: tqdm.write(text, file=sys.stderr)


class _Stamped(logging.Formatter):
    """A log line prefixed with the events' timestamp, so warnings sort among them."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        return f"{when} {self.inner.format(record)}"


def _stamp_log_lines() -> None:
    for handler in logging.getLogger().handlers:
        if not isinstance(handler.formatter, _Stamped):
            handler.setFormatter(_Stamped(handler.formatter))


HANDLERS: dict[str, Handler] = {"watch": cmd_watch}
