"""`rm`: delete objects, versions and delete markers, like `aws s3 rm`.

No SSE-C key is needed: S3 deletes take none. The planning and the requests are in
`apps.remove`, imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from ssec_transfer.cli.common import engine_for
from ssec_transfer.cli.options import (
    CommandFactory,
    Handler,
    add_connection,
    add_filters,
    add_output,
)
from ssec_transfer.cli.output import print_json, say, shows_successes
from ssec_transfer.core.errors import UsageError
from ssec_transfer.s3.urls import S3Url, folder_prefix, parse_s3_url

if TYPE_CHECKING:
    from ssec_transfer.apps.remove import RemovalPlan, RemoveOutcome

# How many of the versions about to go are listed before the confirmation question.
_SHOWN = 10


def register(command: CommandFactory) -> None:
    rm = command(
        "rm",
        "delete objects, versions or delete markers (no key needed)",
        "Delete s3://BUCKET/KEY, or with --recursive every object under s3://BUCKET/PREFIX/ "
        "(a prefix is a folder, as for get --recursive: s3://b/data takes data/x, never "
        "data-old/x), in DeleteObjects requests of up to 1000 keys. No SSE-C key is needed or "
        "taken: S3 deletes encrypted objects without one, so losing a key never stops you "
        "from cleaning up, and rm never asks for one.\n\n"
        "Like `aws s3 rm`, deleting a name that does not exist succeeds (S3 answers 204 "
        "either way: the object is absent afterwards, which is what was asked), so a script "
        "can run rm again safely. On a versioned bucket a delete without --version-id adds "
        "a delete marker and keeps every version; --version-id deletes one version for good, "
        "and --all-versions every version and delete marker of the key (or, with "
        "--recursive, under the prefix): that asks for confirmation on a terminal, and "
        "needs --force anywhere else. Buckets themselves are never deleted.\n\n"
        "  ssec-transfer rm s3://bucket/l1/old.nc                     # aws s3 rm s3://...\n"
        "  ssec-transfer rm s3://bucket/l1/ --recursive --exclude '*.nc' --dryrun\n"
        "  ssec-transfer rm s3://bucket/l1/x.nc --version-id 3HL4kqtJlcpXroDTDmJ\n"
        "  ssec-transfer rm s3://bucket/tmp/ --recursive --all-versions --force --json",
    )
    rm.add_argument("target", metavar="s3://BUCKET/KEY")
    rm.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="every object under the prefix (a folder: s3://b/p means s3://b/p/)",
    )
    add_filters(rm, "keys")
    which = rm.add_mutually_exclusive_group()
    which.add_argument("--version-id", metavar="ID", help="delete this version (for good)")
    which.add_argument(
        "--all-versions",
        action="store_true",
        help="delete every version and delete marker of the key or, with --recursive, under "
        "the prefix: nothing of them can be recovered; asks on a terminal, else needs --force",
    )
    rm.add_argument(
        "--force",
        action="store_true",
        help="with --all-versions: do not ask (required when stdin is not a terminal)",
    )
    rm.add_argument(
        "--dryrun",
        "--dry-run",
        dest="dryrun",
        action="store_true",
        help="print what would be deleted; delete nothing",
    )
    add_output(
        rm,
        progress=False,
        json_help='one JSON line per object (docs/json.md: operation "delete", status ok, '
        "dryrun or failed, source, version_id, size, key_fingerprint where the ledger knew it, "
        "error, hint, http_status, exit_code...; plus delete_marker, created_delete_marker, "
        "error_code) and a summary line. Not changed by --quiet/--only-show-errors",
    )
    add_connection(rm)


def _check(args: argparse.Namespace, url: S3Url) -> None:
    """Refuse, before any request, what rm will not do or cannot do safely."""
    whole = f"s3://{url.bucket}"
    if not args.recursive:
        if not args.target.startswith(whole + "/"):
            raise UsageError(
                f"{whole} is a bucket: rm does not delete buckets",
                hint=f"to delete every object in it: ssec-transfer rm {whole}/ --recursive",
            )
        if not url.key:
            raise UsageError(
                f"{args.target} names the whole bucket, not an object: nothing was deleted",
                hint=f"to delete every object in it (the bucket stays): ssec-transfer rm "
                f"{args.target} --recursive",
            )
        if url.key.endswith("/"):
            raise UsageError(
                f"{args.target} names a prefix, not an object: nothing was deleted",
                hint=f"to delete everything under it: ssec-transfer rm {args.target} --recursive",
            )
        if args.filters:
            raise UsageError(
                "--include/--exclude choose among the objects of --recursive",
                hint="add --recursive, or name the object to delete",
            )
    elif args.version_id:
        raise UsageError(
            "--version-id names one version of one object: it cannot go with --recursive",
            hint="use --all-versions --recursive to delete every version under the prefix",
        )
    if args.all_versions and not (args.force or args.dryrun) and not sys.stdin.isatty():
        raise UsageError(
            "--all-versions deletes every version for good and asks for confirmation, but "
            "stdin is not a terminal: nothing was deleted",
            hint="add --force to delete without asking (try --dryrun first to see what goes)",
        )


def _line(outcome: RemoveOutcome) -> str:
    """What `aws s3 rm` prints: `delete: s3://b/k` (or `(dryrun) delete: ...`)."""
    t = outcome.target
    text = f"delete: {t.describe()}"
    if outcome.created_delete_marker:
        text += f" (delete marker {outcome.created_delete_marker} added)"
    return f"(dryrun) {text}" if outcome.status == "dryrun" else text


def _show(args: argparse.Namespace, outcome: RemoveOutcome) -> None:
    if args.json:
        print_json(outcome.to_dict())
    elif outcome.status != "failed" and shows_successes(args):
        print(_line(outcome), flush=True)


async def _confirm(url: str, plan: RemovalPlan) -> bool:
    """On a terminal: list what --all-versions would remove and ask."""
    import anyio

    n = len(plan.targets)
    say = sys.stderr.write
    say(f"--all-versions will delete {n} version(s) and delete marker(s) under {url} for good:\n")
    for t in plan.targets[:_SHOWN]:
        say(f"  {t.describe()}\n")
    if n > _SHOWN:
        say(f"  ... and {n - _SHOWN} more\n")
    say("type 'yes' to delete them: ")  # on stderr: stdout may be --json lines
    sys.stderr.flush()
    try:
        answer = await anyio.to_thread.run_sync(input, abandon_on_cancel=True)
    except EOFError:
        return False
    return answer.strip().lower() == "yes"


def _summarize(
    args: argparse.Namespace, outcomes: list[RemoveOutcome], excluded: int, seconds: float
) -> int:
    """The summary line (and JSON line), then each failure with its reason; the exit code."""
    from ssec_transfer.core.report import summary_record

    failed = [o for o in outcomes if o.status == "failed"]
    ok = len(outcomes) - len(failed)
    code = max((o.error.exit_code for o in failed if o.error), default=0)
    if args.json:
        print_json(
            summary_record(
                "rm",
                objects=len(outcomes),
                ok=ok if not args.dryrun else 0,
                dryrun=ok if args.dryrun else 0,
                failed=len(failed),
                excluded=excluded,
                seconds=round(seconds, 3),
                exit_code=code,
            )
        )
    if not failed and not shows_successes(args):
        return code
    done = f"{ok} would be deleted (dry run: nothing was deleted)" if args.dryrun else (
        f"{ok} deleted"
    )  # fmt: skip
    print(
        f"{done}, {len(failed)} failed" + (f", {excluded} excluded" if excluded else ""),
        file=sys.stderr,
    )
    for outcome in failed:
        print(f"failed: {outcome.target.describe()}: {outcome.error}", file=sys.stderr)
    return code


async def cmd_rm(args: argparse.Namespace) -> int:
    url = parse_s3_url(args.target)
    _check(args, url)
    from ssec_transfer.apps import remove

    started = time.perf_counter()
    async with engine_for(args) as engine:
        if not args.recursive and not args.all_versions:
            target = remove.RemovalTarget(url.bucket, url.key, args.version_id)
            if args.dryrun:
                outcome = remove.RemoveOutcome(target, "dryrun")
            else:
                async with engine.scheduler.request():
                    outcome = await remove.delete_one(engine.client, target)
            _show(args, outcome)
            return _summarize(args, [outcome], 0, time.perf_counter() - started)
        if args.recursive:
            plan = await remove.plan_prefix(
                engine.client, url.bucket, url.key, versions=args.all_versions,
                rules=args.filters or (), ledger=engine.ledger, endpoint=engine.endpoint_url,
            )  # fmt: skip
        else:
            plan = await remove.plan_versions(engine.client, url.bucket, url.key)
        where = f"s3://{url.bucket}/" + (folder_prefix(url.key) if args.recursive else url.key)
        if not plan.targets:
            say(args, f"nothing to delete at {where}")
            return _summarize(args, [], plan.excluded, time.perf_counter() - started)
        if args.dryrun:
            outcomes = [remove.RemoveOutcome(t, "dryrun") for t in plan.targets]
            for outcome in outcomes:
                _show(args, outcome)
            return _summarize(args, outcomes, plan.excluded, time.perf_counter() - started)
        if args.all_versions and not args.force and not await _confirm(where, plan):
            print("nothing was deleted", file=sys.stderr)
            return 1
        outcomes = await remove.delete_many(
            engine.client, engine.scheduler, plan.targets, concurrency=engine.config.concurrency,
            on_outcome=lambda outcome: _show(args, outcome),
        )  # fmt: skip
    return _summarize(args, outcomes, plan.excluded, time.perf_counter() - started)


HANDLERS: dict[str, Handler] = {"rm": cmd_rm}
