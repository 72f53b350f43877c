"""`sync SRC DEST`: make DEST hold what SRC holds, sending only what differs.

Like `aws s3 sync`, but equality is proven from what each upload sealed into the object
(`keys.seal`), not from this machine's ledger or the upload's time (see `apps.sync_plan`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ssec_transfer.cli.common import dask_cluster, engine_for, other_key, progress_enabled
from ssec_transfer.cli.options import (
    CommandFactory,
    Handler,
    add_connection,
    add_dask,
    add_default_excludes,
    add_dryrun,
    add_filters,
    add_key,
    add_object_options,
    add_output,
    add_run_of_files,
    add_source_key,
    add_tuning,
    load_key,
    warn_leading_include,
)
from ssec_transfer.cli.output import print_json, shows_successes
from ssec_transfer.core.errors import UsageError
from ssec_transfer.core.units import human_rate, human_size

if TYPE_CHECKING:
    from ssec_transfer.apps.bulk import JobOutcome
    from ssec_transfer.apps.sync_run import Side, SyncReport
    from ssec_transfer.keys.customer import SSECustomerKey


def register(command: CommandFactory) -> None:
    sync = command(
        "sync",
        "make DEST hold what SRC holds, sending only what differs",
        "Send every file of SRC that DEST lacks or holds differently; with --delete, also "
        "remove what only DEST holds. SRC and DEST are a local folder or s3://BUCKET/PREFIX "
        "(local to S3, S3 to local, or S3 to S3 with --source-key-file).\n\n"
        "What is compared: sizes first; then the size, modification time and (for files sent "
        "with one PutObject) CRC32C that every upload by ssec-transfer seals into the object "
        "under a key derived from your SSE-C key, so a second sync from any machine holding "
        "the same files (copied with their mtimes, as rsync -a or cp -p do) sends nothing. "
        "Objects without that seal (written by other tools) are compared by the CRC32C the "
        "ledger or the server recorded, else by size and time as aws does (said in the "
        "summary); --compare-checksums reads them instead. Downloads set each file's mtime "
        "to its source's. Deletions run only when every transfer succeeded. With "
        "--dask/--dask-local the transfers run on a Dask cluster's workers; listing, "
        "comparing, deleting and the ledger stay on this machine.\n\n"
        "  ssec-transfer sync products/ s3://bucket/l1/ --key-file sse-c.key\n"
        "  ssec-transfer sync s3://bucket/l1/ mirror/ --key-file sse-c.key --delete\n"
        "  ssec-transfer sync s3://a/l1/ s3://b/l1/ --source-key-file a.key --key-file b.key\n"
        "  ssec-transfer sync products/ s3://bucket/l1/ --key-file sse-c.key --dryrun",
    )
    sync.add_argument("source", metavar="SRC", help="local folder or s3://BUCKET/PREFIX")
    sync.add_argument("dest", metavar="DEST", help="local folder or s3://BUCKET/PREFIX")
    g = sync.add_argument_group("what to send")
    g.add_argument(
        "--delete",
        action="store_true",
        help="also delete what DEST holds and SRC does not (within the --include/--exclude "
        "rules); only after every transfer succeeded",
    )
    add_dryrun(g, "sent and deleted, with why")
    g.add_argument(
        "--compare-checksums",
        action="store_true",
        help="prove equality by CRC32C only (rclone's --checksum): read the local file and, "
        "where no CRC32C is sealed or recorded, the object",
    )
    add_filters(g, "paths", when="")
    add_default_excludes(g)
    g.add_argument(
        "--follow-symlinks",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow symbolic links in a local SRC (default), as put --recursive does",
    )
    add_run_of_files(g)
    add_key(sync, required=False)
    add_object_options(sync, no_clobber=False)
    add_source_key(sync, "source key (S3 to S3 under another key; default: --key-file)")
    add_connection(sync)
    add_tuning(sync)
    add_output(sync)
    add_dask(sync)


def _side(text: str, key: SSECustomerKey | None) -> Side:
    from ssec_transfer.apps.sync_run import Folder, Prefix
    from ssec_transfer.s3.urls import parse_s3_url

    if text.startswith("s3://"):
        url = parse_s3_url(text)
        return Prefix(url.bucket, url.key, key)
    return Folder(Path(text))


def _refuse_overlap(source: Side, dest: Side) -> None:
    """S3 to S3 within one bucket: prefixes inside each other would copy copies, and with
    --delete remove what the same run copies."""
    from ssec_transfer.apps.sync_run import Prefix
    from ssec_transfer.s3.urls import folder_prefix

    if not (isinstance(source, Prefix) and isinstance(dest, Prefix)):
        return
    a, b = folder_prefix(source.prefix), folder_prefix(dest.prefix)
    if source.bucket == dest.bucket and (a.startswith(b) or b.startswith(a)):
        what = "is SRC itself" if a == b else "overlaps SRC (one prefix is inside the other)"
        raise UsageError(
            f"DEST s3://{dest.bucket}/{b} {what}: the sync would copy its own copies",
            hint="choose a DEST prefix outside SRC (and SRC outside DEST)",
        )


def _line(outcome: JobOutcome) -> str:
    """aws's per-file line: `upload: a.nc to s3://b/a.nc` (with `(dryrun)` before it)."""
    job = outcome.job
    verb = job.operation
    target = f" to {job.destination}" if job.destination else ""
    prefix = "(dryrun) " if outcome.status == "dryrun" else ""
    return f"{prefix}{verb}: {job.source}{target} ({outcome.reason})"


async def cmd_sync(args: argparse.Namespace) -> int:
    import anyio

    from ssec_transfer.apps.sync_run import Folder, SyncSpec, run_sync
    from ssec_transfer.cli.progress import BulkProgress

    key = load_key(args)
    source_key = other_key(args.source_key_file, args.source_key_env, prefix="source-key")
    remote_source = args.source.startswith("s3://")
    remote_dest = args.dest.startswith("s3://")
    if not remote_source and not remote_dest:
        raise UsageError(
            "sync needs an s3:// SRC or DEST", hint="to copy between local folders, use rsync"
        )
    if source_key is not None and not (remote_source and remote_dest):
        raise UsageError("--source-key-file/--source-key-env is for a sync from S3 to S3")
    if (remote_source or not remote_dest) and (
        args.content_type or args.metadata or args.storage_class
    ):
        raise UsageError(
            "--content-type, --metadata and --storage-class apply to uploads: a sync from a "
            "local folder to S3",
            hint="copies from S3 keep their source's attributes; downloads have none",
        )
    if key is None:
        raise UsageError(
            "sync needs the SSE-C key of the objects",
            hint="give --key-file FILE (32 raw bytes or their base64) or --key-env NAME",
        )
    spec = SyncSpec(
        source=_side(args.source, source_key or key if remote_dest else key),
        dest=_side(args.dest, key),
        rules=args.filters or (),
        delete=args.delete,
        dryrun=args.dryrun,
        checksum=args.compare_checksums,
        follow_symlinks=args.follow_symlinks,
        default_excludes=args.default_excludes,
    )
    warn_leading_include(args, "sync")
    cluster = dask_cluster(args)
    _refuse_overlap(spec.source, spec.dest)
    if isinstance(spec.source, Folder) and not spec.source.path.is_dir():
        raise UsageError(f"{args.source} is not a folder", hint="sync works on folders; use put")
    started = time.perf_counter()
    display = BulkProgress(0, 0, enabled=False)

    def planned(files: int, size: int) -> None:
        nonlocal display
        display = BulkProgress(files, size, enabled=progress_enabled(args) and not args.dryrun)

    def on_outcome(outcome: JobOutcome) -> None:
        if outcome.status in ("ok", "failed") and outcome.job.operation != "delete":
            display.file_done(failed=outcome.status == "failed")
        if args.json:
            print_json(outcome.to_dict())
        elif outcome.status == "dryrun" or (
            outcome.status == "ok" and args.verbose and shows_successes(args)
        ):
            print(_line(outcome), file=sys.stderr)

    async with engine_for(args) as engine:
        try:
            report = await run_sync(
                engine, spec, on_outcome, on_planned=planned,
                on_bytes=lambda n: display.add_bytes(n), fail_fast=args.fail_fast,
                max_files=args.max_files, cluster=cluster,
            )  # fmt: skip
        except anyio.get_cancelled_exc_class():
            display.close()
            raise
        finally:
            display.close()
    return _summarize(args, report, time.perf_counter() - started)


def _summarize(args: argparse.Namespace, report: SyncReport, seconds: float) -> int:
    from ssec_transfer.apps.sync_plan import REASONS
    from ssec_transfer.core.report import mib_per_s, summary_record

    counts = report.counts
    code = 1 if report.failures or report.deletions_held else 0
    if args.json:
        print_json(
            summary_record(
                "sync",
                files=report.sources,
                **counts,
                deleted=report.deleted,
                would_delete=report.would_delete,
                deletions_held=report.deletions_held,
                excluded=report.excluded,
                reasons=dict(sorted(report.why.items())),
                bytes=report.moved,
                seconds=round(seconds, 3),
                mib_per_s=mib_per_s(report.moved, seconds) or 0.0,
                exit_code=code,
            )
        )
    if code == 0 and not args.dryrun and not shows_successes(args):
        return code
    why = ", ".join(f"{n} {REASONS.get(r, r)}" for r, n in sorted(report.why.items()))
    if args.dryrun:
        done = f"{counts['dryrun']} would be sent, {report.would_delete} would be deleted"
    else:
        done = f"{counts['ok']} sent" + (f", {report.deleted} deleted" if report.deleted else "")
    print(
        f"{done}, {counts['skipped']} skipped, {counts['failed']} failed"
        + (f", {report.excluded} excluded" if report.excluded else "")
        + f" ({human_size(report.moved)} in {seconds:.2f} s, {human_rate(report.moved, seconds)})"
        + (f"\n  why: {why}" if why else ""),
        file=sys.stderr,
    )
    for outcome in report.failures:
        print(f"failed: {outcome.job.source}: {outcome.error}", file=sys.stderr)
    if report.deletions_held:
        print(
            f"not deleted: {report.deletions_held} paths only DEST holds, because a transfer "
            "failed; fix the failures and run the sync again",
            file=sys.stderr,
        )
    return code


HANDLERS: dict[str, Handler] = {"sync": cmd_sync}
