"""`cp` and `rotate`: working on objects where they are, on the server.

Copies and rotations re-encrypt server-side where the server allows it, else stream through
this machine (`ls` and `rm` have modules of their own).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ssec_transfer.cli import keyring as keyring_cli
from ssec_transfer.cli.common import (
    dask_cluster,
    engine_for,
    key_for_object,
    other_key,
    report,
    require_key,
)
from ssec_transfer.cli.options import (
    CommandFactory,
    Handler,
    add_connection,
    add_dask,
    add_dryrun,
    add_key,
    add_output,
    add_source_key,
    add_tuning,
    add_via,
    load_key,
)
from ssec_transfer.cli.output import print_json, shows_successes
from ssec_transfer.core.errors import UsageError
from ssec_transfer.s3.urls import parse_s3_url

if TYPE_CHECKING:
    from ssec_transfer.apps.bulk import TransferJob
    from ssec_transfer.apps.copy_jobs import CopySettings
    from ssec_transfer.apps.distributed import DaskCluster
    from ssec_transfer.engine import TransferEngine
    from ssec_transfer.keys.customer import SSECustomerKey
    from ssec_transfer.transfer.copy import CopyOutcome


def register(command: CommandFactory) -> None:
    _register_cp(command)
    _register_rotate(command)


def _register_cp(command: CommandFactory) -> None:
    cp = command(
        "cp",
        "copy objects between names or buckets, changing or keeping their keys",
        "Copy s3://SRC to s3://DST on the server (CopyObject, or parallel UploadPartCopy for "
        "large objects), re-encrypting from the source key to the target key; where the server "
        "refuses (Ceph 16: 501 for SSE-C sources) the data streams through this machine in "
        "bounded memory instead. Either side may be plain. The copy is read back and its "
        "CRC32C compared with the source before success is reported. With --recursive and "
        "--dask/--dask-local the objects are spread over a Dask cluster's workers in "
        "size-balanced batches (the keys as files or variables present on every worker, or "
        "sent over TLS).\n\n"
        "  ssec-transfer cp s3://a/x.nc s3://b/x.nc --source-key-file old.key --key-file new.key\n"
        "  ssec-transfer cp s3://a/l1/ s3://b/l1/ --recursive --source-key-file old.key "
        "--key-file new.key --dask-local 2",
    )
    cp.add_argument("source", metavar="s3://SRC")
    cp.add_argument("target", metavar="s3://DST")
    cp.add_argument("--version-id", help="copy this version of the source")
    cp.add_argument("--recursive", action="store_true", help="every object under SRC/")
    add_via(cp)
    add_dryrun(cp, "copied")
    add_source_key(cp, "source key (for an SSE-C source)")
    add_key(cp, required=False)
    keyring_cli.add_keyring_options(cp)
    add_connection(cp)
    add_tuning(cp)
    add_output(cp)
    add_dask(cp)


def _register_rotate(command: CommandFactory) -> None:
    rotate = command(
        "rotate",
        "re-encrypt objects in place under a new key",
        "Replace the key of s3://BUCKET/KEY: the object is copied onto itself under the new "
        "key (server-side where possible, else streamed), verified by reading it back, and only "
        "then does the old key stop working. Until then the old object stays intact; on failure "
        "nothing changes. On versioned buckets old versions stay unless --delete-old-versions. "
        "With --recursive an object the new key already opens is skipped (reason "
        "already-rotated), so running an interrupted rotation again finishes it without "
        "rewriting anything; --dask/--dask-local spread the objects over a Dask cluster.\n\n"
        "  ssec-transfer rotate s3://bucket/x.nc --key-file old.key --new-key-file new.key\n"
        "  ssec-transfer rotate s3://bucket/l1/ --recursive --key-file old.key "
        "--new-key-file new.key --dask-local 2",
    )
    rotate.add_argument("target", metavar="s3://BUCKET/KEY")
    rotate.add_argument("--recursive", action="store_true", help="every object under the prefix")
    which = rotate.add_mutually_exclusive_group()
    which.add_argument("--version-id", help="rotate this version")
    which.add_argument("--all-versions", action="store_true", help="rotate every version")
    rotate.add_argument(
        "--delete-old-versions",
        action="store_true",
        help="on versioned buckets, delete each old version after its copy is verified",
    )
    add_via(rotate)
    add_dryrun(rotate, "rotated (listing the prefix or the versions)")
    add_key(rotate, required=False)
    new_keys = rotate.add_argument_group("new key (required)")
    nm = new_keys.add_mutually_exclusive_group(required=True)
    nm.add_argument("--new-key-file", metavar="PATH", help="file with the new key")
    nm.add_argument("--new-key-env", metavar="NAME", help="variable with the new base64 key")
    keyring_cli.add_keyring_options(rotate)
    add_connection(rotate)
    add_tuning(rotate)
    add_output(rotate)
    add_dask(rotate)


def _report_outcomes(args: argparse.Namespace, outcomes: list[CopyOutcome], started: float) -> int:
    from ssec_transfer.core.report import mib_per_s, summary_record

    failed = [o for o in outcomes if o.status == "failed"]
    skipped = sum(o.status == "skipped" for o in outcomes)
    ok = len(outcomes) - len(failed) - skipped
    code = max((o.error.exit_code for o in failed if o.error), default=0)
    moved = sum(o.result.size for o in outcomes if o.result is not None)
    seconds = time.perf_counter() - started
    if args.json:
        print_json(
            summary_record(
                args.command,
                objects=len(outcomes),
                ok=ok,
                skipped=skipped,
                failed=len(failed),
                bytes=moved,
                seconds=round(seconds, 3),
                mib_per_s=mib_per_s(moved, seconds) or 0.0,
                exit_code=code,
            )
        )
    if failed or shows_successes(args):
        done = f"{ok} done, " + (f"{skipped} already under the new key, " if skipped else "")
        print(f"{done}{len(failed)} failed", file=sys.stderr)
    for outcome in failed:
        print(f"failed: {outcome.source}: {outcome.error}", file=sys.stderr)
    return code


def _show_outcome(args: argparse.Namespace) -> Callable[[CopyOutcome], None]:
    def show(outcome: CopyOutcome) -> None:
        if args.json:
            print_json(outcome.to_dict())

    return show


def _cluster(args: argparse.Namespace) -> DaskCluster | None:
    """--dask/--dask-local, which spread many objects: refused for one."""
    cluster = dask_cluster(args)
    if cluster is not None and not args.recursive:
        raise UsageError(
            f"--dask and --dask-local {args.command} many objects: add --recursive",
            hint=f"a single object's {args.command} runs here, without a cluster",
        )
    return cluster


async def _on_dask(
    args: argparse.Namespace,
    engine: TransferEngine,
    jobs: list[TransferJob],
    cluster: DaskCluster,
    copying: CopySettings,
) -> list[CopyOutcome]:
    """The planned copies or rotations on the Dask cluster, each reported as it finishes,
    as the local run reports it; the ledger is written here."""
    from ssec_transfer.apps.copy_jobs import copy_outcome
    from ssec_transfer.apps.distributed import run_jobs_distributed

    show = _show_outcome(args)
    found: list[CopyOutcome] = []
    async with run_jobs_distributed(
        engine, jobs, cluster=cluster, max_files=engine.config.concurrency * 2, copying=copying
    ) as outcomes:
        async for outcome in outcomes:
            found.append(copy_outcome(outcome))
            show(found[-1])
    return found


async def cmd_cp(args: argparse.Namespace) -> int:
    src, dst = parse_s3_url(args.source), parse_s3_url(args.target)
    source_key = other_key(args.source_key_file, args.source_key_env, prefix="source-key")
    target_key = load_key(args)
    cluster = _cluster(args)
    from ssec_transfer.transfer.copy import copy_record

    started = time.perf_counter()
    async with engine_for(args) as engine:
        if args.dryrun:
            return await _dry_copy(args, engine, src.bucket, src.key, dst.bucket, dst.key)
        if args.recursive and cluster is not None:
            from ssec_transfer.apps.copy_jobs import CopySettings, plan_copies
            from ssec_transfer.s3.listing import list_objects
            from ssec_transfer.s3.urls import folder_prefix

            await engine.prepare_copies(dst.bucket, source_key, target_key)
            listed = list_objects(engine.client, src.bucket, folder_prefix(src.key))
            jobs = await plan_copies(
                listed, src.bucket, src.key, dst.bucket, dst.key, source_key=source_key,
                target_key=target_key,
            )  # fmt: skip
            outcomes = await _on_dask(args, engine, jobs, cluster, CopySettings(via=args.via))
            return _report_outcomes(args, outcomes, started)
        if args.recursive:
            outcomes = await engine.copy_prefix(
                src.bucket, src.key, dst.bucket, dst.key, source_key=source_key,
                target_key=target_key, via=args.via, on_outcome=_show_outcome(args),
            )  # fmt: skip
            return _report_outcomes(args, outcomes, started)
        dst_key = (
            dst.key + src.key.rsplit("/", 1)[-1]
            if dst.key.endswith("/") or not dst.key
            else dst.key
        )
        result = await engine.copy(
            src.bucket, src.key, dst.bucket, dst_key, source_key=source_key,
            target_key=target_key, version_id=args.version_id, via=args.via,
        )  # fmt: skip
    report(
        args,
        copy_record(result, "copy"),
        f"copied {src} to s3://{dst.bucket}/{dst_key} via {result.via}",
    )
    return 0


async def _dry_copy(
    args: argparse.Namespace, engine: TransferEngine, src_bucket: str, src_key: str,
    dst_bucket: str, dst_key: str,
) -> int:  # fmt: skip
    """cp --dryrun: the copies the same command would make (listing the prefix for
    --recursive, mapped as `copy_prefix` maps it), as aws prints them."""
    from ssec_transfer.core.report import object_record
    from ssec_transfer.s3.listing import iter_keys
    from ssec_transfer.s3.urls import folder_prefix

    if args.recursive:
        src_prefix = folder_prefix(src_key)
        keys = [k async for k in iter_keys(engine.client, src_bucket, src_prefix)]
        pairs = [(k, folder_prefix(dst_key) + k[len(src_prefix) :]) for k in keys]
    else:
        target = (
            dst_key + src_key.rsplit("/", 1)[-1]
            if dst_key.endswith("/") or not dst_key
            else dst_key
        )
        pairs = [(src_key, target)]
    for source, target in pairs:
        src_url, dst_url = f"s3://{src_bucket}/{source}", f"s3://{dst_bucket}/{target}"
        if args.json:
            print_json(object_record("copy", "dryrun", source=src_url, destination=dst_url))
        print(f"(dryrun) copy: {src_url} to {dst_url}", file=sys.stderr)
    return 0


async def _dry_rotate(
    args: argparse.Namespace, engine: TransferEngine, bucket: str, key: str, new_key: SSECustomerKey
) -> int:
    """rotate --dryrun: each object (or version) the same command would rewrite, as aws-style
    lines; the old key is not even needed to list them."""
    from ssec_transfer.core.report import object_record
    from ssec_transfer.s3.listing import list_objects
    from ssec_transfer.s3.urls import folder_prefix

    if args.recursive or args.all_versions:
        prefix = folder_prefix(key) if args.recursive else key
        targets = [
            (o.key, o.version_id if args.all_versions else None)
            async for o in list_objects(
                engine.client, bucket, prefix, versions=args.all_versions
            )
            if not o.delete_marker and (args.recursive or o.key == key)
            and (args.all_versions or o.is_latest)
        ]  # fmt: skip
    else:
        targets = [(key, args.version_id)]
    for name, version in targets:
        url = f"s3://{bucket}/{name}" + (f"?versionId={version}" if version else "")
        if args.json:
            print_json(object_record("rotate", "dryrun", source=url, destination=url,
                                     version_id=version))  # fmt: skip
        print(f"(dryrun) rotate: {url} to key {new_key.fingerprint}", file=sys.stderr)
    return 0


async def _new_key(args: argparse.Namespace) -> SSECustomerKey:
    """rotate's new key, refused when it exists only in an environment variable."""
    new_key = other_key(args.new_key_file, args.new_key_env, prefix="new-key")
    assert new_key is not None  # the argument group is required
    if args.new_key_file is None:
        # A key that exists only in an environment variable is one mistake from being lost,
        # and with it every object it will protect: it must be saved first.
        keyring = await keyring_cli.keyring_from_args(args)
        if keyring is None or keyring.by_fingerprint(new_key.fingerprint) is None:
            raise UsageError(
                "the new key is not saved anywhere: rotate refuses to encrypt objects with a key "
                "that exists only in an environment variable",
                hint="save it first (`ssec-transfer keyring add NAME --key-env "
                f"{args.new_key_env}`) and pass --keyring, or use --new-key-file",
            )
    return new_key


def _refuse_same_key(new_key: SSECustomerKey, old_key: SSECustomerKey | None) -> None:
    if new_key == old_key:
        raise UsageError(
            "the new key is the old key", hint="generate one with `ssec-transfer keygen`"
        )


async def cmd_rotate(args: argparse.Namespace) -> int:
    url = parse_s3_url(args.target)
    old_key = load_key(args)
    new_key = await _new_key(args)
    _refuse_same_key(new_key, old_key)
    cluster = _cluster(args)
    from ssec_transfer.transfer.copy import copy_record

    started = time.perf_counter()
    async with engine_for(args) as engine:
        if args.dryrun:
            return await _dry_rotate(args, engine, url.bucket, url.key, new_key)
        if old_key is None and not args.recursive and not args.all_versions:
            old_key = await key_for_object(args, engine, None, url.bucket, url.key, args.version_id)
        old_key = require_key(old_key, "rotate")
        _refuse_same_key(new_key, old_key)
        if args.recursive and cluster is not None:
            from ssec_transfer.apps.copy_jobs import CopySettings, plan_rotations
            from ssec_transfer.s3.listing import list_objects
            from ssec_transfer.s3.urls import folder_prefix

            await engine.prepare_copies(url.bucket, old_key, new_key)
            listed = list_objects(
                engine.client, url.bucket, folder_prefix(url.key), versions=args.all_versions
            )
            jobs = await plan_rotations(listed, url.bucket, old_key=old_key, new_key=new_key)
            copying = CopySettings(
                via=args.via, all_versions=args.all_versions,
                delete_old_versions=args.delete_old_versions,
            )  # fmt: skip
            outcomes = await _on_dask(args, engine, jobs, cluster, copying)
            return _report_outcomes(args, outcomes, started)
        if args.recursive:
            outcomes = await engine.rotate_prefix(
                url.bucket, url.key, old_key=old_key, new_key=new_key,
                all_versions=args.all_versions, via=args.via,
                delete_old_versions=args.delete_old_versions, on_outcome=_show_outcome(args),
            )  # fmt: skip
            return _report_outcomes(args, outcomes, started)
        if args.all_versions:
            outcomes = await engine.rotate_all_versions(
                url.bucket, url.key, old_key=old_key, new_key=new_key, via=args.via,
                delete_old_versions=args.delete_old_versions,
            )  # fmt: skip
            for outcome in outcomes:
                _show_outcome(args)(outcome)
            return _report_outcomes(args, outcomes, started)
        result = await engine.rotate(
            url.bucket, url.key, old_key=old_key, new_key=new_key, version_id=args.version_id,
            via=args.via, delete_old_versions=args.delete_old_versions,
        )  # fmt: skip
    report(
        args,
        copy_record(result, "rotate"),
        f"rotated {url} to key {new_key.fingerprint} via {result.via}",
    )
    return 0


HANDLERS: dict[str, Handler] = {"cp": cmd_cp, "rotate": cmd_rotate}
