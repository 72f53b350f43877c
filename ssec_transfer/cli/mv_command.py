"""`mv`: move files and objects like `aws s3 mv`, never removing a source before its new copy
is verified with the key.

The moving itself is `apps.move` (put, get or cp, then rm's delete), imported when the command
runs; many files go through the bulk runner of put/get (`transfer_commands._run_bulk`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ssec_transfer.cli.common import (
    engine_for,
    other_key,
    progress_enabled,
    report,
    require_key,
    warn_unsaved_key,
)
from ssec_transfer.cli.options import (
    CommandFactory,
    Handler,
    add_connection,
    add_dryrun,
    add_filters,
    add_key,
    add_output,
    add_run_of_files,
    add_source_key,
    add_tuning,
    add_via,
    load_key,
    warn_leading_include,
)
from ssec_transfer.cli.output import print_json
from ssec_transfer.core.errors import UsageError
from ssec_transfer.s3.urls import S3Url, parse_s3_url

if TYPE_CHECKING:
    from ssec_transfer.apps.bulk import JobOutcome, TransferJob
    from ssec_transfer.apps.move import MoveOutcome
    from ssec_transfer.engine import TransferEngine
    from ssec_transfer.keys.customer import SSECustomerKey

log = logging.getLogger(__name__)


def register(command: CommandFactory) -> None:
    mv = command(
        "mv",
        "move files or objects: copy, verify with the key, then remove the source",
        "Move SRC to DEST, like `aws s3 mv`: a local file to S3 (upload), an object to this "
        "machine (download), or an object to another name or bucket (copy). The source is "
        "removed only after the new copy is verified: an upload by its own checks (part "
        "checksums the server verifies, the file unchanged while it was read) and then a HEAD "
        "with the key (size, ETag, key), a download by its checksum and atomic rename, a copy "
        "by reading it back with the target key. A failed copy leaves "
        "the source as it was.\n\n"
        "A local file is removed only if it is still the file that was uploaded (same inode, "
        "size, mtime, ctime); one that changed meanwhile is kept and reported. Folders a move "
        "empties stay, as with aws. Symbolic links are not moved (mv would upload the target "
        "and remove only the link): refused for SRC, left out (counted as excluded) with "
        "--recursive. On a versioned bucket exactly the version that was read is deleted, for "
        "good (an older version, if any, becomes current again); a version written meanwhile "
        "is never touched. Without versioning, the object is deleted only if it still has "
        "the ETag that was read. If removing the source fails after a verified copy, that "
        "object is reported as failed (exit 1) and both copies exist: nothing is lost.\n\n"
        "  ssec-transfer mv data.nc s3://bucket/l1/ --key-file sse-c.key\n"
        "  ssec-transfer mv s3://bucket/l1/data.nc ./ --key-file sse-c.key\n"
        "  ssec-transfer mv outbox/ s3://bucket/l1/ --recursive --exclude '*.tmp' "
        "--key-file sse-c.key --dryrun\n"
        "  ssec-transfer mv s3://a/x.nc s3://b/x.nc --source-key-file old.key --key-file new.key",
    )
    mv.add_argument("source", metavar="SRC", help="local file or directory, or s3://BUCKET/KEY")
    mv.add_argument("dest", metavar="DEST", help="s3://BUCKET/KEY, or a local file or directory")
    g = mv.add_argument_group("many files")
    g.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="every file under a directory / every object under a prefix (a folder: "
        "s3://b/p means s3://b/p/)",
    )
    add_filters(g)
    add_run_of_files(g)
    add_dryrun(g, "moved (nothing is removed either)")
    add_via(mv)
    add_source_key(mv, "source key (s3:// to s3://, for an SSE-C source)")
    add_key(mv, required=False)
    add_connection(mv)
    add_tuning(mv)
    add_output(mv)
    mv.set_defaults(skip_existing=False)  # the bulk runner's option, never for a move


def _check(args: argparse.Namespace, direction: str) -> None:
    """Refuse, before any request, option combinations mv would not honour."""
    if args.filters and not args.recursive:
        raise UsageError(
            "--include/--exclude choose among the files of --recursive",
            hint="add --recursive, or name the file or object to move",
        )
    if args.recursive:
        warn_leading_include(args, "mv")
    if direction != "copy" and (args.source_key_file or args.source_key_env):
        raise UsageError(
            "--source-key-file/--source-key-env are for moves from s3:// to s3://",
            hint="give the object's key with --key-file or --key-env",
        )


# -- output ----------------------------------------------------------------------------------


def _dry(args: argparse.Namespace, outcome: MoveOutcome) -> None:
    if args.json:
        print_json(outcome.to_dict())
    else:
        print(f"(dryrun) move: {outcome.source} to {outcome.destination}", flush=True)


def _dry_summary(args: argparse.Namespace, outcomes: list[MoveOutcome], excluded: int) -> int:
    if args.json:
        from ssec_transfer.core.report import summary_record

        print_json(
            summary_record(
                "mv", files=len(outcomes), dryrun=len(outcomes), excluded=excluded, exit_code=0
            )
        )
    print(
        f"{len(outcomes)} would be moved (dry run: nothing was sent or removed)"
        + (f", {excluded} excluded" if excluded else ""),
        file=sys.stderr,
    )
    return 0


def _done(args: argparse.Namespace, outcome: MoveOutcome) -> int:
    """One object moved, or the error that kept its source (raised: exit code and message)."""
    if outcome.error is not None:
        raise outcome.error
    report(args, outcome.to_dict(), f"moved {outcome.source} to {outcome.destination}")
    return 0


# -- handler ---------------------------------------------------------------------------------


async def cmd_mv(args: argparse.Namespace) -> int:
    from ssec_transfer.apps import move

    direction = move.direction_of(args.source, args.dest)
    _check(args, direction)
    key = load_key(args)
    if direction == "upload":
        warn_unsaved_key(args)
        return await _upload(args, require_key(key, "mv to s3://"))
    if direction == "download":
        return await _download(args, key)
    source_key = other_key(args.source_key_file, args.source_key_env, prefix="source-key")
    return await _copy(args, source_key, key)


async def _upload(args: argparse.Namespace, key: SSECustomerKey) -> int:
    import anyio

    from ssec_transfer.apps import move
    from ssec_transfer.cli.transfer_commands import EXCLUDED_WHY, _run_bulk

    url = parse_s3_url(args.dest)
    source = Path(args.source)
    if args.recursive:
        from functools import partial

        from ssec_transfer.apps.bulk import plan_directory
        from ssec_transfer.apps.sources import printable

        # Links are never followed: removing one after uploading its target moves nothing.
        plan = await anyio.to_thread.run_sync(
            partial(
                plan_directory, source, url.bucket, url.key, sse_key=key,
                rules=args.filters or (), follow_symlinks=False,
            )
        )  # fmt: skip
        for relative, why in plan.excluded:
            log.info("excluded (%s): %s", EXCLUDED_WHY[why], printable(relative))
        if args.dryrun:
            outcomes = [_dry_job(job) for job in plan.jobs if job.problem is None]
            for outcome in outcomes:
                _dry(args, outcome)
            return _dry_summary(args, outcomes, len(plan.excluded))
        before = await anyio.to_thread.run_sync(
            move.identities, [j.path for j in plan.jobs if j.problem is None]
        )

        async def finish(engine: TransferEngine, outcome: JobOutcome) -> MoveOutcome:
            return await move.finish_job(engine, outcome, before)

        return await _run_bulk(
            args, plan.jobs, None, excluded=len(plan.excluded), finish=finish, operation="move"
        )
    await anyio.to_thread.run_sync(move.refuse_local_source, source)
    object_key = move.object_key_for(source.name, url.key)
    dest = f"s3://{url.bucket}/{object_key}"
    if args.dryrun:
        _dry(args, move.MoveOutcome(str(source), dest, "dryrun"))
        return _dry_summary(args, [move.MoveOutcome(str(source), dest, "dryrun")], 0)
    from ssec_transfer.cli.progress import ProgressBar

    with ProgressBar(f"mv {source.name}", enabled=progress_enabled(args)) as bar:
        async with engine_for(args) as engine:
            outcome = await move.move_file(
                engine, source, url.bucket, object_key, sse_key=key, progress=bar
            )
    return _done(args, outcome)


def _dry_job(job: TransferJob) -> MoveOutcome:
    from ssec_transfer.apps.move import MoveOutcome

    return MoveOutcome(job.source, job.destination, "dryrun", size=job.size)


async def _download(args: argparse.Namespace, key: SSECustomerKey | None) -> int:
    from ssec_transfer.apps import move
    from ssec_transfer.cli.transfer_commands import _run_bulk

    url = parse_s3_url(args.source)
    if args.recursive:
        dest = Path(args.dest)
        if args.dryrun:
            from ssec_transfer.apps.bulk import plan_prefix_download

            async with engine_for(args) as engine:
                jobs = await plan_prefix_download(
                    engine.client, url.bucket, url.key, dest, sse_key=key,
                    rules=args.filters or (),
                )  # fmt: skip
            outcomes = [_dry_job(job) for job in jobs if job.problem is None]
            for outcome in outcomes:
                _dry(args, outcome)
            return _dry_summary(args, outcomes, 0)

        async def plan(engine: TransferEngine) -> list[TransferJob]:
            from ssec_transfer.apps.bulk import plan_prefix_download

            return await plan_prefix_download(
                engine.client, url.bucket, url.key, dest, sse_key=key, rules=args.filters or ()
            )

        async def finish(engine: TransferEngine, outcome: JobOutcome) -> MoveOutcome:
            return await move.finish_job(engine, outcome, {})

        return await _run_bulk(args, plan, None, finish=finish, operation="move")
    _require_object(args.source, url)
    move.refuse_local_dest(args.dest)
    if args.dryrun:
        landing = _landing(url.key, args.dest)
        outcome = move.MoveOutcome(str(url), landing, "dryrun")
        _dry(args, outcome)
        return _dry_summary(args, [outcome], 0)
    from ssec_transfer.cli.progress import ProgressBar

    with ProgressBar(f"mv {url.key}", enabled=progress_enabled(args)) as bar:
        async with engine_for(args) as engine:
            outcome = await move.move_object_down(
                engine, url.bucket, url.key, args.dest, sse_key=key, progress=bar
            )
    return _done(args, outcome)


def _landing(key: str, dest: str) -> str:
    """Where a download would land, for --dryrun: a folder (or a DEST ending in /) takes the
    object's base name."""
    if dest.endswith("/") or Path(dest).is_dir():
        return str(Path(dest) / key.rsplit("/", 1)[-1])
    return dest


def _require_object(text: str, url: S3Url) -> None:
    if not url.key or url.key.endswith("/"):
        raise UsageError(
            f"{text} names no object", hint="write s3://BUCKET/KEY, or add --recursive"
        )


async def _copy(
    args: argparse.Namespace,
    source_key: SSECustomerKey | None,
    target_key: SSECustomerKey | None,
) -> int:
    from ssec_transfer.apps import move

    src, dst = parse_s3_url(args.source), parse_s3_url(args.dest)
    if args.recursive:
        move.refuse_onto_itself(src.bucket, src.key, dst.bucket, dst.key, recursive=True)
        return await _copy_prefix(args, src, dst, source_key, target_key)
    _require_object(args.source, src)
    dst_key = move.object_key_for(src.key, dst.key)
    move.refuse_onto_itself(src.bucket, src.key, dst.bucket, dst_key, recursive=False)
    if args.dryrun:
        outcome = move.MoveOutcome(str(src), f"s3://{dst.bucket}/{dst_key}", "dryrun")
        _dry(args, outcome)
        return _dry_summary(args, [outcome], 0)
    async with engine_for(args) as engine:
        outcome = await move.move_object_across(
            engine, src.bucket, src.key, dst.bucket, dst_key, source_key=source_key,
            target_key=target_key, via=args.via,
        )  # fmt: skip
    return _done(args, outcome)


async def _copy_prefix(
    args: argparse.Namespace,
    src: S3Url,
    dst: S3Url,
    source_key: SSECustomerKey | None,
    target_key: SSECustomerKey | None,
) -> int:
    from ssec_transfer.apps import move
    from ssec_transfer.apps.sources import printable
    from ssec_transfer.cli.transfer_commands import _summarize, _Tally
    from ssec_transfer.s3.listing import iter_keys
    from ssec_transfer.s3.urls import folder_prefix

    started = time.perf_counter()
    tally = _Tally()

    def record(outcome: MoveOutcome) -> None:
        tally.add(outcome)
        if args.json:
            print_json(outcome.to_dict())

    async with engine_for(args) as engine:
        prefix = folder_prefix(src.key)
        keys = [k async for k in iter_keys(engine.client, src.bucket, prefix)]
        plan = move.plan_copies(keys, prefix, dst.key, args.filters or ())
        if args.dryrun:
            outcomes = [
                move.MoveOutcome(
                    f"s3://{src.bucket}/{printable(s)}",
                    f"s3://{dst.bucket}/{printable(d)}",
                    "dryrun",
                )
                for s, d in plan.pairs
            ]
            for outcome in outcomes:
                _dry(args, outcome)
            return _dry_summary(args, outcomes, plan.excluded)
        await move.move_copies(
            engine, src.bucket, dst.bucket, plan.pairs, source_key=source_key,
            target_key=target_key, via=args.via, max_objects=args.max_files or 16,
            fail_fast=args.fail_fast, on_outcome=record,
        )  # fmt: skip
        stats = engine.scheduler.stats()
    return _summarize(
        args, len(plan.pairs), tally, stats, time.perf_counter() - started,
        excluded=plan.excluded, operation="move",
    )  # fmt: skip


HANDLERS: dict[str, Handler] = {"mv": cmd_mv}
