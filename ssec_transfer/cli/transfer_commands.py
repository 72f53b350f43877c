"""`put`, `get` and `head`: moving objects between this machine and S3.

One file, a stream or many files (--recursive, --manifest, optionally on a Dask cluster); the
bulk runner here is what both directions share. Each handler imports what its path needs (the
engine through `cli.common`, the bulk planner, Dask, the progress bar), so registering these
commands, and `--help`, import none of it.
"""

from __future__ import annotations

import argparse
import logging
import os
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ssec_transfer.cli import argtypes
from ssec_transfer.cli import keyring as keyring_cli
from ssec_transfer.cli.common import (
    dask_cluster,
    engine_for,
    key_for_object,
    progress_enabled,
    report,
    require_key,
    warn_unsaved_key,
)
from ssec_transfer.cli.options import (
    CommandFactory,
    Handler,
    add_bulk,
    add_connection,
    add_key,
    add_object_options,
    add_output,
    add_tuning,
    load_key,
    warn_leading_include,
)
from ssec_transfer.cli.output import print_json, shows_successes
from ssec_transfer.core.errors import (
    ObjectExistsError,
    SSECTransferError,
    UnexpectedKeyError,
    UsageError,
)
from ssec_transfer.core.units import human_rate, human_size
from ssec_transfer.s3.urls import parse_s3_url

if TYPE_CHECKING:
    from ssec_transfer.apps.bulk import JobOutcome, Operation, TransferJob
    from ssec_transfer.apps.distributed import DaskCluster, DaskOutcomes
    from ssec_transfer.cli.progress import ProgressBar
    from ssec_transfer.core.results import TransferResult
    from ssec_transfer.core.scheduler import SchedulerStats
    from ssec_transfer.engine import TransferEngine
    from ssec_transfer.keys.customer import SSECustomerKey

    Jobs = list[TransferJob] | Callable[[TransferEngine], Awaitable[list[TransferJob]]]
# Why `put --recursive` left a path out on purpose (listed at -v, counted in the summary).
EXCLUDED_WHY = {
    "rule": "by --include/--exclude",
    "symlink": "symbolic link, --no-follow-symlinks",
    "default": "dot file or partial file, see --no-default-excludes",
}

log = logging.getLogger(__name__)


def register(command: CommandFactory) -> None:
    put = command(
        "put",
        "upload files, encrypted by the server under your key",
        "Upload SRC to s3://BUCKET/KEY under SSE-C. A KEY ending in / (or no KEY) appends "
        "SRC's file name. Large files go as a parallel multipart upload; on any failure or "
        "Ctrl-C the upload is aborted and an existing object of that name stays untouched. "
        "With --recursive or --manifest, every path that cannot be sent (dangling link, link "
        "loop, FIFO/socket/device, unreadable, vanished, name not UTF-8) is listed as failed "
        "with its reason and makes the exit code 1, while the other files go on; paths "
        "left out by --exclude or --no-follow-symlinks are counted as excluded.\n\n"
        "  ssec-transfer put data.nc s3://bucket/products/ --key-file sse-c.key \\\n"
        "      --endpoint-url https://s3.example.com\n"
        "  ssec-transfer put products/ s3://bucket/l1/ --recursive --exclude '*.tmp' "
        "--key-file sse-c.key\n"
        "  ssec-transfer put --manifest todo.jsonl --key-file sse-c.key --json\n"
        "  producer | ssec-transfer put - s3://bucket/stream.bin --key-file sse-c.key\n"
        "  ssec-transfer put data.nc --url 'https://…' --key-file sse-c.key   # no credentials",
    )
    put.add_argument("source", metavar="SRC", nargs="?", help="local file, directory or -")
    put.add_argument("target", metavar="s3://BUCKET/KEY", nargs="?")
    put.add_argument(
        "--expected-size",
        type=argtypes.size,
        metavar="SIZE",
        help="for SRC -: the stream's approximate size, so parts are sized to stay within "
        "10,000 parts",
    )
    _add_url(put, "PUT")
    add_key(put, required=False)
    add_object_options(put)
    add_bulk(put, local_source=True)
    add_connection(put)
    add_tuning(put)
    add_output(put)

    get = command(
        "get",
        "download objects",
        "Download s3://BUCKET/KEY to DEST with parallel ranged GETs pinned to one version. "
        "DEST is replaced atomically, only once every byte arrived; on failure it is left "
        "untouched. An existing directory as DEST receives the object under its base name. "
        "A replaced file keeps its mode and owner; a symbolic link is followed (the file it "
        "points to is replaced, the link stays; a dangling one is refused); /dev/null, a "
        "character device or a FIFO is written into; the run's key file, keyring and ledger "
        "are refused.\n\n"
        "  ssec-transfer get s3://bucket/products/data.nc data.nc --key-file sse-c.key\n"
        "  ssec-transfer get s3://bucket/l1/ products/ --recursive --key-file sse-c.key\n"
        "  ssec-transfer get s3://bucket/stream.bin - --key-file sse-c.key | consumer\n"
        "  ssec-transfer get --url 'https://…' data.nc --key-file sse-c.key   # no credentials",
    )
    get.add_argument("source", metavar="s3://BUCKET/KEY", nargs="?")
    get.add_argument("dest", metavar="DEST", nargs="?", help="local file, directory, or -")
    get.add_argument("--version-id", help="read this version of the object")
    _add_url(get, "GET")
    add_key(get, required=False)
    add_bulk(get)
    keyring_cli.add_keyring_options(get)
    add_connection(get)
    add_tuning(get)
    add_output(get)

    head = command(
        "head",
        "show an object's size, ETag, version and key fingerprint as JSON",
        "Print size, ETag, VersionId, last-modified and the fingerprint (base64 MD5) of the "
        "key the server reports for the object, as JSON.",
    )
    head.add_argument("source", metavar="s3://BUCKET/KEY")
    head.add_argument("--version-id", help="this version of the object")
    head.add_argument(
        "--json",
        action="store_true",
        help="accepted as on every other command: the answer is JSON already, and with --json "
        "an error is a JSON object on stdout too",
    )
    add_key(head, required=False)
    keyring_cli.add_keyring_options(head)
    add_connection(head)


def _add_url(p: argparse.ArgumentParser, method: str) -> None:
    what = "download from" if method == "GET" else "upload to"
    p.add_argument(
        "--url",
        metavar="URL",
        help=f"{what} a presigned URL (`ssec-transfer presign{' --put' if method == 'PUT' else ''}"
        "`) instead of s3://BUCKET/KEY: no S3 credentials needed, only the key. Its "
        "fingerprint, method and expiry are checked before anything is sent; https only; "
        "one object" + (", at most 5 GiB (one PUT)" if method == "PUT" else ""),
    )


# -- one object ----------------------------------------------------------------------------------


def _refuse_non_file(source: Path) -> None:
    """`put SRC`: a folder or a special file is refused before any request (a FIFO would be
    waited on forever); a missing SRC is left to the upload's own message."""
    try:
        mode = os.stat(source).st_mode
    except OSError:
        return
    if stat.S_ISDIR(mode):
        raise UsageError(f"{source} is a directory", hint="add --recursive to upload its files")
    if stat.S_ISFIFO(mode):
        raise UsageError(
            f"{source} is a FIFO (named pipe), not a regular file",
            hint=f"to upload what a program writes into it: ssec-transfer put - "
            f"s3://BUCKET/KEY < {source}",
        )
    if not stat.S_ISREG(mode):
        raise UsageError(f"{source} is not a regular file (a socket or a device)")


async def _transfer_one(
    args: argparse.Namespace,
    label: str,
    work: Callable[[TransferEngine, ProgressBar], Awaitable[TransferResult]],
    summary: Callable[[TransferResult], str],
) -> int:
    """Run one transfer under a progress bar and report it (an upload --no-clobber left
    alone as skipped, exit 0)."""
    from ssec_transfer.cli.progress import ProgressBar
    from ssec_transfer.core.report import object_record, result_record

    try:
        with ProgressBar(label, enabled=progress_enabled(args)) as bar:
            async with engine_for(args) as engine:
                result = await work(engine, bar)
    except ObjectExistsError as exc:
        url = exc.context.url
        if args.json:
            print_json(object_record("upload", "skipped", destination=url, reason="exists"))
        print(f"skipped: {url} exists (--no-clobber)", file=sys.stderr)
        return 0
    report(args, result_record(result), summary(result))
    return 0


async def cmd_put(args: argparse.Namespace) -> int:
    if args.url:
        return await _through_url(args, "PUT")
    key = load_key(args)
    warn_unsaved_key(args)
    cluster = _bulk_cluster(args)
    if args.manifest:
        return await _run_manifest(args, "upload", key, cluster, "source", "target")
    if not args.source or not args.target:
        raise UsageError("put needs SRC and s3://BUCKET/KEY (or --manifest FILE)")
    url = parse_s3_url(args.target)
    if args.source == "-":
        if not url.key or url.key.endswith("/"):
            raise UsageError("put - needs a full object key: s3://BUCKET/KEY")
        stdin_key = require_key(key, "put")
        if args.dryrun:
            return _dry_one(args, "upload", "-", str(url))
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise UsageError(
                "put - reads standard input, but it is closed",
                hint="pipe the data in: `producer | ssec-transfer put - s3://BUCKET/KEY`",
            )
        return await _transfer_one(
            args, "put -",
            lambda engine, bar: engine.upload_stream(
                sys.stdin.buffer, url.bucket, url.key, sse_key=stdin_key,
                expected_size=args.expected_size, progress=bar,
            ),
            lambda _: f"uploaded stdin to {url}",
        )  # fmt: skip
    if args.recursive:
        import anyio

        from ssec_transfer.apps.bulk import plan_directory
        from ssec_transfer.apps.sources import printable

        warn_leading_include(args, "put")
        plan = await anyio.to_thread.run_sync(
            partial(
                plan_directory, Path(args.source), url.bucket, url.key,
                sse_key=require_key(key, "put"), rules=args.filters or (),
                follow_symlinks=args.follow_symlinks, default_excludes=args.default_excludes,
            )
        )  # fmt: skip
        for relative, why in plan.excluded:
            log.info("excluded (%s): %s", EXCLUDED_WHY[why], printable(relative))
        return await _run_bulk(args, plan.jobs, cluster, excluded=len(plan.excluded))
    import anyio

    file_key = require_key(key, "put")
    source = Path(args.source)
    await anyio.to_thread.run_sync(_refuse_non_file, source)
    object_key = url.key
    if not object_key or object_key.endswith("/"):
        object_key += source.name
    if args.dryrun:
        return _dry_one(args, "upload", str(source), f"s3://{url.bucket}/{object_key}")
    return await _transfer_one(
        args, f"put {source.name}",
        lambda engine, bar: engine.upload(
            source, url.bucket, object_key, sse_key=file_key, progress=bar
        ),
        lambda _: f"uploaded {source} to s3://{url.bucket}/{object_key}",
    )  # fmt: skip


async def cmd_get(args: argparse.Namespace) -> int:
    if args.url:
        return await _through_url(args, "GET")
    key = load_key(args)
    cluster = _bulk_cluster(args)
    if args.manifest:
        return await _run_manifest(args, "download", key, cluster, "source", "dest")
    if not args.source or not args.dest:
        raise UsageError("get needs s3://BUCKET/KEY and DEST (or --manifest FILE)")
    url = parse_s3_url(args.source)
    if args.recursive:
        url_key, dest = url.key, Path(args.dest)

        async def plan(engine: TransferEngine) -> list[TransferJob]:
            from ssec_transfer.apps.bulk import plan_prefix_download

            return await plan_prefix_download(
                engine.client, url.bucket, url_key, dest, sse_key=key, rules=args.filters or ()
            )

        return await _run_bulk(args, plan, cluster)
    if not url.key or url.key.endswith("/"):
        raise UsageError(
            f"{args.source} names no object", hint="write s3://BUCKET/KEY, or add --recursive"
        )
    if args.dryrun:
        return _dry_one(args, "download", str(url), args.dest)
    if args.dest == "-":
        if args.json:
            raise UsageError("--json cannot share stdout with the object's bytes (get ... -)")
        return await _transfer_one(
            args, f"get {url.key}",
            lambda engine, bar: engine.download_stream(
                url.bucket, url.key, sys.stdout.buffer, sse_key=key,
                version_id=args.version_id, progress=bar,
            ),
            lambda _: f"downloaded {url} to stdout",
        )  # fmt: skip

    async def download(engine: TransferEngine, bar: ProgressBar) -> TransferResult:
        sse_key = await key_for_object(args, engine, key, url.bucket, url.key, args.version_id)
        return await engine.download(
            url.bucket, url.key, args.dest, sse_key=sse_key, version_id=args.version_id,
            progress=bar,
        )  # fmt: skip

    return await _transfer_one(
        args, f"get {url.key}", download,
        lambda result: f"downloaded s3://{url.bucket}/{url.key} to {result.path}",
    )  # fmt: skip


# Per-run options a transfer through a presigned URL cannot honour: it is one object, sent
# without credentials (no ledger, no keyring, no listing), with only the headers it signs.
_NOT_WITH_URL = (
    ("recursive", "--recursive"), ("manifest", "--manifest"), ("dask", "--dask"),
    ("dask_local", "--dask-local"), ("keyring", "--keyring"), ("keyring_file", "--keyring-file"),
    ("version_id", "--version-id"), ("resume", "--resume"), ("dryrun", "--dryrun"),
    ("skip_existing", "--skip-existing"), ("no_clobber", "--no-clobber"),
    ("filters", "--include/--exclude"), ("metadata", "--metadata"),
    ("content_type", "--content-type"), ("expected_size", "--expected-size"),
)  # fmt: skip


async def _through_url(args: argparse.Namespace, method: Literal["GET", "PUT"]) -> int:
    """get/put --url: one object through a presigned URL, without S3 credentials."""
    from ssec_transfer.core.report import object_record
    from ssec_transfer.share import url_transfer
    from ssec_transfer.share.presign import parse_presigned_url

    verb = "get" if method == "GET" else "put"
    for name, option in _NOT_WITH_URL:
        if getattr(args, name, None):
            raise UsageError(
                f"{verb} --url moves one object through a presigned URL; {option} cannot be "
                "combined with it",
                hint=f"drop {option}, or use s3://BUCKET/KEY with S3 credentials instead of --url",
            )
    if method == "GET":
        given = [p for p in (args.source, args.dest) if p]
        usage = "get --url URL DEST --key-file KEY"
    else:
        given = [p for p in (args.source, args.target) if p]
        usage = "put FILE --url URL --key-file KEY"
    if len(given) != 1 or given[0].startswith("s3://"):
        raise UsageError(
            f"{verb} --url takes the URL instead of s3://BUCKET/KEY, and "
            + ("one DEST" if method == "GET" else "one FILE"),
            hint=f"write `ssec-transfer {usage}`",
        )
    if given[0] == "-":
        raise UsageError(
            f"{verb} --url reads and writes files, not standard streams",
            hint=f"write `ssec-transfer {usage}`",
        )
    key = load_key(args)
    if key is None:
        raise UsageError(
            f"{verb} --url needs the key the URL was made for",
            hint="pass it with --key-file FILE or --key-env NAME (never on the command line)",
        )
    url = parse_presigned_url(args.url)
    connection = url_transfer.Connection(args.ca_bundle, args.connect_timeout, args.read_timeout)
    from ssec_transfer.cli.progress import ProgressBar

    with ProgressBar(f"{verb} {url.object_name}", enabled=progress_enabled(args)) as bar:
        if method == "GET":
            result = await url_transfer.download(url, key, given[0], connection, bar)
        else:
            source = Path(given[0])
            result = await url_transfer.upload(url, key, source, connection, bar)
    record = object_record(
        "download" if method == "GET" else "upload", "ok",
        source=url.shown if method == "GET" else result.path,
        destination=result.path if method == "GET" else url.shown,
        path=result.path, size=result.size, seconds=result.seconds, etag=result.etag,
        version_id=result.version_id, key_fingerprint=result.key_fingerprint,
        checksum=result.checksum, parts=1,
    )  # fmt: skip
    done = f"downloaded {url.shown} to {result.path}" if method == "GET" else (
        f"uploaded {result.path} to {url.shown}"
    )  # fmt: skip
    report(args, record, done)
    return 0


def _dry_one(args: argparse.Namespace, operation: Operation, source: str, destination: str) -> int:
    """--dryrun of one transfer: what it would do, as aws prints it; nothing is sent."""
    from ssec_transfer.core.report import object_record

    if args.json:
        print_json(object_record(operation, "dryrun", source=source, destination=destination))
    print(f"(dryrun) {operation}: {source} to {destination}", file=sys.stderr)
    return 0


async def cmd_head(args: argparse.Namespace) -> int:
    key = load_key(args)
    url = parse_s3_url(args.source)
    async with engine_for(args) as engine:
        key = await key_for_object(args, engine, key, url.bucket, url.key, args.version_id)
        info = await engine.head(url.bucket, url.key, sse_key=key, version_id=args.version_id)
    print_json(info.to_dict())
    return 0


async def _run_manifest(
    args: argparse.Namespace,
    operation: Operation,
    key: SSECustomerKey | None,
    cluster: DaskCluster | None,
    *positionals: str,
) -> int:
    """put/get --manifest: the manifest names every source and destination, so the
    positionals `positionals` must be empty; `key` is the default for lines without one."""
    if any(getattr(args, n) for n in positionals):
        raise UsageError("--manifest names every source and destination; give no others")
    import anyio

    from ssec_transfer.apps.manifest import read_manifest

    # Abandoned on a stop signal: a manifest FIFO nobody writes must not hold the process.
    jobs = await anyio.to_thread.run_sync(
        partial(read_manifest, args.manifest, operation=operation, default_key=key),
        abandon_on_cancel=True,
    )
    return await _run_bulk(args, jobs, cluster)


# -- many objects --------------------------------------------------------------------------------


def _bulk_cluster(args: argparse.Namespace) -> DaskCluster | None:
    """The Dask cluster of a bulk run, refusing what it cannot do before anything is sent."""
    cluster = dask_cluster(args)
    if cluster is None:
        return None
    if not (args.recursive or args.manifest):
        raise UsageError("--dask and --dask-local run many files: add --recursive or --manifest")
    return cluster


async def _keyring_resolver(
    args: argparse.Namespace, engine: TransferEngine
) -> Callable[[TransferJob], Awaitable[SSECustomerKey | None]] | None:
    """With --keyring, each object's key is looked up (ledger, then HEAD with each key);
    plain objects get none."""
    keyring = await keyring_cli.keyring_from_args(args)
    if keyring is None:
        return None
    from ssec_transfer.keys.resolve import resolve_key

    ring = keyring

    async def resolve(job: TransferJob) -> SSECustomerKey | None:
        try:
            return await resolve_key(
                engine, job.bucket, job.key, job.version_id, ring,
                max_tries=args.keyring_max_tries,
            )  # fmt: skip
        except UnexpectedKeyError:
            return None

    return resolve


async def _resolved(
    planned: list[TransferJob],
    resolver: Callable[[TransferJob], Awaitable[SSECustomerKey | None]],
    concurrency: int,
) -> list[TransferJob]:
    """--keyring with --dask: each object's key is found here, before dispatch (the ledger,
    then HEAD with the keyring's keys), and travels to its worker like any key that exists
    only on this machine: over TLS, never over plain tcp:// (refused before anything is
    sent). Only the keys the run needs leave this machine, never the keyring or its
    passphrase. A key that cannot be found fails its object, as in a local run."""
    from ssec_transfer.core.taskgroups import for_each

    jobs = list(planned)

    async def one(index: int) -> None:
        job = jobs[index]
        if job.operation != "download" or job.sse_key is not None or job.problem is not None:
            return
        try:
            jobs[index] = replace(job, sse_key=await resolver(job))
        except SSECTransferError as exc:
            jobs[index] = replace(job, problem=exc)

    await for_each(range(len(jobs)), one, concurrency)
    return jobs


async def _runner(
    args: argparse.Namespace,
    engine: TransferEngine,
    planned: list[TransferJob],
    cluster: DaskCluster | None,
    on_bytes: Callable[[int], None],
) -> AbstractAsyncContextManager[AsyncIterator[JobOutcome]]:
    """The jobs' outcomes as they finish: on the Dask cluster, else on this machine."""
    if cluster is not None:
        from ssec_transfer.apps.distributed import run_jobs_distributed

        resolver = await _keyring_resolver(args, engine)
        if resolver is not None:
            planned = await _resolved(planned, resolver, engine.config.concurrency)
        return run_jobs_distributed(
            engine, planned, cluster=cluster, fail_fast=args.fail_fast,
            skip_existing=args.skip_existing, max_files=args.max_files, on_bytes=on_bytes,
        )  # fmt: skip
    from ssec_transfer.apps.bulk import run_jobs

    return run_jobs(
        engine, planned, fail_fast=args.fail_fast, skip_existing=args.skip_existing,
        max_files=args.max_files, on_bytes=on_bytes,
        key_resolver=await _keyring_resolver(args, engine),
    )  # fmt: skip


class Reported(Protocol):
    """What the summary of a bulk run needs of an outcome: put/get's `bulk.JobOutcome`, or
    mv's `move.MoveOutcome`."""

    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def error(self) -> SSECTransferError | None: ...
    @property
    def result(self) -> TransferResult | None: ...
    def to_dict(self) -> dict[str, Any]: ...


# mv: what runs after each job of a bulk run (verify, remove the source), making its outcome.
Finish = Callable[["TransferEngine", "JobOutcome"], Awaitable[Reported]]


@dataclass
class _Tally:
    """What a bulk run did so far: counts, bytes moved and the failures to list at the end."""

    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "skipped": 0, "failed": 0})
    moved: int = 0
    failures: list[Reported] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)  # failed sources, by why not sent

    def add(self, outcome: Reported) -> None:
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        if outcome.status == "failed":
            self.failures.append(outcome)
            if outcome.reason is not None:
                self.reasons[outcome.reason] = self.reasons.get(outcome.reason, 0) + 1
        elif outcome.result:
            self.moved += outcome.result.size


async def _run_bulk(
    args: argparse.Namespace,
    jobs: Jobs,
    cluster: DaskCluster | None,
    *,
    excluded: int = 0,
    finish: Finish | None = None,
    operation: str | None = None,
) -> int:
    """Run many transfers with one display; JSON lines per object and a summary line.
    `excluded`: paths the plan left out on purpose, for the summary. `finish` (mv) runs after
    each job and its outcome is the one reported; `operation` names the run in the summary."""
    import anyio

    from ssec_transfer.cli.progress import BulkProgress

    started = time.perf_counter()
    tally = _Tally()
    async with engine_for(args) as engine:
        planned = jobs if isinstance(jobs, list) else await jobs(engine)
        if args.dryrun:
            return _dry_run(args, planned, excluded)
        display = BulkProgress(
            len(planned), sum(j.size or 0 for j in planned), enabled=progress_enabled(args)
        )

        def record(outcome: Reported) -> None:
            tally.add(outcome)
            display.file_done(failed=outcome.status == "failed")
            if args.json:
                print_json(outcome.to_dict())

        try:
            runner = await _runner(args, engine, planned, cluster, display.add_bytes)
            async with runner as outcomes:
                if finish is None:
                    async for outcome in outcomes:
                        record(outcome)
                else:
                    await _finish_each(args, engine, outcomes, finish, record)
        except anyio.get_cancelled_exc_class():
            # Stopped by a signal: what was done so far is still the user's to know.
            display.close()
            seconds = time.perf_counter() - started
            _summarize(
                args, len(planned), tally, engine.scheduler.stats(), seconds, operation=operation
            )
            raise
        finally:
            display.close()
        stats: SchedulerStats | DaskOutcomes = engine.scheduler.stats()
        if cluster is not None:  # what the Dask workers' schedulers saw
            from ssec_transfer.apps.distributed import DaskOutcomes

            stats = outcomes if isinstance(outcomes, DaskOutcomes) else stats
    seconds = time.perf_counter() - started
    return _summarize(
        args, len(planned), tally, stats, seconds, excluded=excluded, operation=operation
    )


async def _finish_each(
    args: argparse.Namespace,
    engine: TransferEngine,
    outcomes: AsyncIterator[JobOutcome],
    finish: Finish,
    record: Callable[[Reported], None],
) -> None:
    """Run `finish` on each outcome as it comes, several at once (bounded like the files in
    progress, so a slow finishing step holds the transfers back instead of piling up)."""
    import anyio

    slots = anyio.CapacityLimiter(args.max_files or 2 * engine.config.concurrency)
    async with anyio.create_task_group() as finishing:

        async def one(outcome: JobOutcome, token: object) -> None:
            try:
                done = await finish(engine, outcome)
            finally:
                slots.release_on_behalf_of(token)
            record(done)
            if args.fail_fast and done.status == "failed":
                finishing.cancel_scope.cancel()

        async for outcome in outcomes:
            token = object()
            await slots.acquire_on_behalf_of(token)
            finishing.start_soon(one, outcome, token)


def _dry_run(args: argparse.Namespace, planned: list[TransferJob], excluded: int) -> int:
    """--dryrun of a bulk run: each planned transfer as aws prints it (and a JSON line with
    status "dryrun"); a path that could not be sent fails as it would for real (exit 1)."""
    from ssec_transfer.apps.bulk import JobOutcome

    failed = 0
    for job in planned:
        outcome = JobOutcome(job, "failed" if job.problem else "dryrun", error=job.problem)
        failed += job.problem is not None
        if args.json:
            print_json(outcome.to_dict())
        if job.problem is None:
            print(f"(dryrun) {job.operation}: {job.source} to {job.destination}", file=sys.stderr)
        else:
            print(f"failed: {job.source}: {job.problem}", file=sys.stderr)
    size = sum(j.size or 0 for j in planned if j.problem is None)
    print(f"{len(planned) - failed} would be transferred ({human_size(size)}), {failed} failed"
          + (f", {excluded} excluded" if excluded else "")
          + " (dry run: nothing was sent)", file=sys.stderr)  # fmt: skip
    return 1 if failed else 0


def _summarize(
    args: argparse.Namespace,
    files: int,
    tally: _Tally,
    stats: SchedulerStats | DaskOutcomes,
    seconds: float,
    *,
    excluded: int = 0,
    operation: str | None = None,
) -> int:
    """The summary line (and JSON line) of a bulk run, then each failure; the exit code.

    Sources that could not be sent are failures (exit 1), broken down by reason; paths left
    out on purpose (--exclude, --no-follow-symlinks) are only counted, as "excluded"."""
    from ssec_transfer.core.report import mib_per_s, summary_record

    counts, moved = tally.counts, tally.moved
    not_run = files - sum(counts.values())
    code = 0 if not tally.failures and not not_run else 1
    if args.json:
        print_json(
            summary_record(
                args.command,
                files=files,
                **counts,
                not_run=not_run,
                excluded=excluded,
                reasons=dict(sorted(tally.reasons.items())),
                bytes=moved,
                seconds=round(seconds, 3),
                mib_per_s=mib_per_s(moved, seconds) or 0.0,
                peak_requests_in_flight=stats.peak_requests_in_flight,
                peak_bytes_reserved=stats.peak_bytes_reserved,
                exit_code=code,
            )
        )
    if code == 0 and not shows_successes(args):
        return code
    why = ", ".join(f"{n} {r.replace('-', ' ')}" for r, n in sorted(tally.reasons.items()))
    print(
        f"{counts['ok']} {'moved' if operation == 'move' else 'transferred'}, "
        f"{counts['skipped']} skipped, {counts['failed']} failed"
        + (f" ({why})" if why else "")
        + (f", {not_run} not run" if not_run else "")
        + (f", {excluded} excluded" if excluded else "")
        + f" ({human_size(moved)} in {seconds:.2f} s, {human_rate(moved, seconds)})",
        file=sys.stderr,
    )
    for outcome in tally.failures:
        print(f"failed: {outcome.to_dict()['source']}: {outcome.error}", file=sys.stderr)
    return code


HANDLERS: dict[str, Handler] = {"put": cmd_put, "get": cmd_get, "head": cmd_head}
