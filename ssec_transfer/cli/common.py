"""What the command handlers share: the parsed arguments turned into a key, a transfer
configuration, an engine and a Dask cluster, and one way to print results.

This is where a Namespace becomes typed values: nothing below the CLI reads one. The engine,
Dask and the key classes are imported by the functions that make them, so the commands that
build on this module still register (and `--help` runs) without loading them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ssec_transfer.cli import keyring as keyring_cli
from ssec_transfer.cli.output import print_json, say, shows_successes
from ssec_transfer.core.config import TransferConfig
from ssec_transfer.core.errors import UsageError
from ssec_transfer.core.units import human_rate, human_size

if TYPE_CHECKING:
    from ssec_transfer.apps.distributed import DaskCluster
    from ssec_transfer.engine import TransferEngine
    from ssec_transfer.keys.customer import SSECustomerKey
    from ssec_transfer.transfer.attributes import ObjectAttributes

log = logging.getLogger("ssec_transfer")


def other_key(file: str | None, env: str | None, *, prefix: str) -> SSECustomerKey | None:
    """A second key (cp's source key, rotate's new key) from its file or variable, given as
    --PREFIX-file or --PREFIX-env (`prefix` "source-key" or "new-key", for the messages)."""
    from ssec_transfer.keys.customer import SSECustomerKey

    if file:
        path = file.split("://", 1)[1] if "://" in file else file
        return SSECustomerKey.from_file(path, option=f"--{prefix}-file")
    if env:
        return SSECustomerKey.from_env(env, option=f"--{prefix}-env")
    return None


def require_key(key: SSECustomerKey | None, what: str) -> SSECustomerKey:
    if key is None:
        raise UsageError(
            f"{what} needs an SSE-C key",
            hint="give --key-file FILE (32 raw bytes or their base64) or --key-env NAME",
        )
    return key


def warn_unsaved_key(args: argparse.Namespace) -> None:
    """SSE-C keys are not kept by the server: one that lives only in an environment
    variable is one closed terminal away from losing every object it encrypts."""
    if getattr(args, "key_env", None):
        log.warning(
            "the key comes from the environment variable %s and is saved nowhere else: if it "
            "is lost, the objects it encrypts are lost; save it (`ssec-transfer keyring add "
            "NAME --key-env %s`) or use --key-file",
            args.key_env,
            args.key_env,
        )


async def key_for_object(
    args: argparse.Namespace,
    engine: TransferEngine,
    given: SSECustomerKey | None,
    bucket: str,
    key: str,
    version_id: str | None,
) -> SSECustomerKey | None:
    """The key given on the command line, else (with --keyring) the keyring's key for the
    object: the one the ledger recorded, or the first the server accepts."""
    if given is not None:
        return given
    keyring = await keyring_cli.keyring_from_args(args)
    if keyring is None:
        return None
    from ssec_transfer.keys.resolve import resolve_key

    return await resolve_key(
        engine, bucket, key, version_id, keyring, max_tries=args.keyring_max_tries
    )


def transfer_config(args: argparse.Namespace) -> TransferConfig:
    """The performance options (`add_tuning`); defaults for a command without them."""
    if not hasattr(args, "concurrency"):
        return TransferConfig()
    return TransferConfig(
        concurrency=args.concurrency,
        part_size=args.part_size,
        multipart_threshold=args.multipart_threshold,
        max_memory=args.max_memory,
        checksum=args.checksum,
        bwlimit=getattr(args, "bwlimit", None),
    )


def object_attributes(args: argparse.Namespace) -> ObjectAttributes | None:
    """--content-type, --metadata, --storage-class (`add_object_options`); None without them.
    A name given twice (S3 folds names to lower case) or metadata S3 cannot carry is a
    UsageError, before any request."""
    if not hasattr(args, "storage_class"):
        return None
    from ssec_transfer.transfer.attributes import ObjectAttributes

    metadata: dict[str, str] = {}
    for pairs in args.metadata or ():
        for name, value in pairs.items():
            if any(name.lower() == seen.lower() for seen in metadata):
                raise UsageError(
                    f"metadata name {name!r} is given twice",
                    hint="S3 folds metadata names to lower case: give each name once",
                )
            metadata[name] = value
    return ObjectAttributes(args.content_type, metadata, args.storage_class)


def engine_for(args: argparse.Namespace) -> TransferEngine:
    from ssec_transfer.engine import TransferEngine
    from ssec_transfer.s3.client import ConnectionSettings

    ledger: Path | Literal["default"] | None = "default"
    if getattr(args, "no_ledger", False):
        ledger = None
    elif getattr(args, "ledger", None):
        ledger = args.ledger
    return TransferEngine(
        endpoint_url=args.endpoint_url,
        profile=args.profile,
        region=args.region,
        ca_bundle=args.ca_bundle,
        config=transfer_config(args),
        ledger=ledger,
        resume=getattr(args, "resume", False),
        attributes=object_attributes(args),
        no_clobber=getattr(args, "no_clobber", False),
        settings=ConnectionSettings(
            retry_mode=args.retry_mode,
            max_attempts=args.max_attempts,
            connect_timeout=args.connect_timeout,
            read_timeout=args.read_timeout,
            request_timeout=args.request_timeout,
        ),
    )


def dask_cluster(args: argparse.Namespace) -> DaskCluster | None:
    """The cluster --dask/--dask-local ask for, or None for a local run."""
    address = getattr(args, "dask", None)
    local = getattr(args, "dask_local", None)
    if address is None and local is None:
        return None
    from ssec_transfer.apps.distributed import DaskCluster

    batch = getattr(args, "dask_batch_size", None) or DaskCluster.max_batch_bytes
    return DaskCluster(address=address, local_workers=local, max_batch_bytes=batch)


def progress_enabled(args: argparse.Namespace) -> bool:
    if not shows_successes(args):
        return False
    if args.progress is not None:
        return bool(args.progress)
    return sys.stderr.isatty()


def report(args: argparse.Namespace, record: dict[str, Any], summary: str) -> None:
    """One finished transfer: its JSON record (`core.report.object_record`) with --json, else
    a line on stderr (none with --quiet/--only-show-errors)."""
    if args.json:
        print_json(record)
    else:
        size, seconds = record["size"], record["seconds"]
        say(
            args,
            f"{summary}: {human_size(size)} in {seconds:.2f} s "
            f"({human_rate(size, seconds)}), key {record['key_fingerprint']}",
        )
