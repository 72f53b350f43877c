"""Option groups several commands share, the parser class they hang on, and the reading of
the key options back out of the parsed arguments.

One definition per group keeps the same flag spelled, defaulted and explained the same way in
every command that takes it. Nothing here imports `cli.keyring` or `cli.common`, so both can
build on it; nor the engine, Dask or a key's class: building the parser (`--help`,
`--version`) stays cheap.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ssec_transfer.cli import argtypes
from ssec_transfer.core.checksums import MODES
from ssec_transfer.core.config import TransferConfig
from ssec_transfer.core.errors import KeyFileError, UsageError
from ssec_transfer.core.retry import CONNECT_TIMEOUT, READ_TIMEOUT, REQUEST_TIMEOUT
from ssec_transfer.keys.redact import key_form, key_tokens, redact_key_material

if TYPE_CHECKING:
    from ssec_transfer.keys.customer import SSECustomerKey

EPILOG = """\
exit codes: 0 ok, 1 transfer failed, 2 rejected before any request, 3 key problem,
130/143/129 stopped by SIGINT/SIGTERM/SIGHUP (after aborting uploads, removing temp files)

Keys are never accepted on the command line (every user can read argv with `ps`):
give --key-file FILE (32 raw bytes or their base64) or --key-env NAME (base64).
Endpoint and credentials resolve like the AWS CLI: --endpoint-url or AWS_ENDPOINT_URL,
--profile or AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws files,
--ca-bundle or AWS_CA_BUNDLE.
"""

# `command(name, help, description)` adds a subcommand with the shared epilog and formatting.
CommandFactory = Callable[[str, str, str], argparse.ArgumentParser]
# A command's handler: sync ones run as they are, async ones inside one event loop.
Handler = Callable[[argparse.Namespace], int | Awaitable[int]]


class Parser(argparse.ArgumentParser):
    """argparse, with key material kept out of its error messages ("unrecognized arguments:
    KEY", "ambiguous option: --key=KEY"): each parser remembers the arguments it was given
    (subcommands parse their share through `parse_known_args` too) to redact them."""

    _given: tuple[str, ...] = ()

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        given = list(sys.argv[1:] if args is None else args)
        self._given = tuple(given)
        return super().parse_known_args(given, namespace)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        cleaned = redact_key_material(message, typed_key_material(self._given))
        self.exit(2, f"{self.prog}: error: {cleaned}\n")


def typed_key_material(argv: Sequence[str]) -> list[str]:
    """What the user typed that looks like key material, for redaction wherever an error
    would echo it: an argument or `--option=VALUE` value of any key form, or a hex or base64
    key inside one (`dir/KEY`).

    Exempt: what exists as a path, and s3:// URLs (an object's name is the user's to choose).
    The 32-character form, which text of any kind may have, counts only for a whole value
    without "/" (so no path or URL), never for a whole `--option=VALUE`."""
    candidates: list[tuple[str, bool]] = []
    for arg in argv:
        if arg.startswith("-") and "=" in arg:
            value = arg.split("=", 1)[1]
            candidates += [(arg, False), (value, "/" not in value)]
        else:
            candidates.append((arg, "/" not in arg))
    found: list[str] = []
    for value, raw in candidates:
        if value.startswith("s3://") or os.path.lexists(value):
            continue
        if key_form(value, raw=raw) is not None:
            found.append(value)
        found.extend(key_tokens(value))
    return found


def command_factory(sub: Any, *, epilog: str | None = EPILOG) -> CommandFactory:
    """The `command(name, help, description)` maker for the subparsers `sub`; `epilog=None`
    for a parser of its own (`keyring.add_commands` without the main parser's factory)."""

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(  # type: ignore[no-any-return]
            name,
            help=help_text,
            description=description,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    return command


def add_connection(p: argparse.ArgumentParser) -> None:
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
    g.add_argument(
        "--connect-timeout",
        type=argtypes.positive_seconds,
        default=CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"per attempt: to open the connection, TLS handshake included "
        f"(default {CONNECT_TIMEOUT:g})",
    )
    g.add_argument(
        "--read-timeout",
        type=argtypes.positive_seconds,
        default=READ_TIMEOUT,
        metavar="SECONDS",
        help=f"per attempt: the longest the server may stay silent, whether before its answer, "
        f"between two reads of a body, or before taking the next slice of an upload "
        f"(default {READ_TIMEOUT:g})",
    )
    g.add_argument(
        "--request-timeout",
        type=argtypes.positive_seconds,
        default=REQUEST_TIMEOUT,
        metavar="SECONDS",
        help=f"per request, across its attempts: no new attempt once it has gone this long "
        f"without progress (a byte moved or an answer); a part that keeps moving is never cut, "
        f"so a silent server is reported after about this long (default {REQUEST_TIMEOUT:g})",
    )


def add_key(p: argparse.ArgumentParser, *, required: bool) -> None:
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


def load_key(args: argparse.Namespace) -> SSECustomerKey | None:
    """The key from --key-file, --key-env or --sse-c-key fileb://PATH; None without one.

    Read with getattr: `keyring add` has only --key-file/--key-env, not the AWS CLI spellings."""
    from ssec_transfer.keys.customer import ARGV_HINT, SSECustomerKey

    if getattr(args, "sse_c", None) not in (None, "AES256"):
        raise UsageError("SSE-C supports only AES256")
    if getattr(args, "sse_c_key", None):
        value: str = args.sse_c_key
        if value.startswith(("fileb://", "file://")):
            return SSECustomerKey.from_file(value.split("://", 1)[1], option="--sse-c-key")
        raise KeyFileError(
            "--sse-c-key takes only fileb://PATH here; a key typed on the command line has "
            "been visible to every user of this machine and should be considered exposed",
            hint=ARGV_HINT,
        )
    if getattr(args, "key_file", None):
        path: str = args.key_file
        if path.startswith(("fileb://", "file://")):
            path = path.split("://", 1)[1]
        return SSECustomerKey.from_file(path, option="--key-file")
    if getattr(args, "key_env", None):
        return SSECustomerKey.from_env(args.key_env, option="--key-env")
    return None


def add_ledger(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--ledger PATH, for the bulk transfers and the `ledger`/`keyring` commands alike."""
    p.add_argument(
        "--ledger", type=Path, metavar="PATH", help="ledger database (default: XDG data dir)"
    )


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


def add_filters(
    g: argparse.ArgumentParser | argparse._ArgumentGroup,
    what: str = "paths",
    *,
    when: str = "with --recursive: ",
) -> None:
    """--include/--exclude GLOB, kept in order in `args.filters` (`bulk.is_included` applies
    them); `what` names what they match in the help ("paths", "keys"), `when` when they apply
    (empty for `sync`, which always takes many)."""
    g.add_argument(
        "--include",
        action=_FilterAction,
        const="include",
        dest="filters",
        metavar="GLOB",
        help=f"{when}include {what} matching GLOB (relative {what}, later rules win)",
    )
    g.add_argument(
        "--exclude",
        action=_FilterAction,
        const="exclude",
        dest="filters",
        metavar="GLOB",
        help=f"{when}exclude {what} matching GLOB",
    )


DEFAULT_EXCLUDES_HELP = (
    "leave nothing out by default: without this, dot files, everything in dot folders and "
    "partial files (names ending in .tmp, .part, .partial, .filepart, .crdownload, any case) "
    "are skipped and counted as excluded"
)


def add_default_excludes(g: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--no-default-excludes (alias --include-hidden, watch's older name): the commands that
    read a local folder (`put --recursive`, `sync`, `watch`) skip dot files and partial files
    unless told (`sources.default_excluded`); `args.default_excludes` is False when told."""
    g.add_argument(
        "--no-default-excludes",
        "--include-hidden",
        dest="default_excludes",
        action="store_false",
        default=True,
        help=DEFAULT_EXCLUDES_HELP,
    )


def warn_leading_include(args: argparse.Namespace, command: str) -> None:
    """Warn once when the first rule is an --include: in aws's ordered rules everything starts
    included, so it changes nothing (`bulk.leading_include`). Not refused here, as aws does
    not refuse it; `watch` refuses it (`watch_config`), since it may delete what it sends."""
    from ssec_transfer.apps.bulk import leading_include, only_these_hint

    pattern = leading_include(getattr(args, "filters", None) or ())
    if pattern is None:
        return
    logging.getLogger("ssec_transfer.cli").warning(
        "%s: --include '%s' comes before any --exclude, so it changes nothing: every path is "
        "included already (rules apply in order, as in aws)\n  hint: for only these paths: %s",
        command,
        pattern,
        only_these_hint(pattern),
    )


def add_dryrun(g: argparse.ArgumentParser | argparse._ArgumentGroup, what: str) -> None:
    """--dryrun (aws's spelling) or --dry-run (rclone's): plan, print, send nothing."""
    g.add_argument(
        "--dryrun",
        "--dry-run",
        dest="dryrun",
        action="store_true",
        help=f"print what would be {what}; send nothing (aws prints `(dryrun) upload: SRC "
        "to DEST`)",
    )


def add_run_of_files(g: argparse._ArgumentGroup) -> None:
    """What every run of many files takes: --fail-fast, --max-files, --ledger, --no-ledger."""
    g.add_argument("--fail-fast", action="store_true", help="stop at the first failed file")
    g.add_argument(
        "--max-files",
        type=argtypes.positive_int,
        metavar="N",
        help="files in progress at once (default: twice --concurrency)",
    )
    add_ledger(g)
    g.add_argument("--no-ledger", action="store_true", help="do not record transfers in the ledger")


def add_source_key(p: argparse.ArgumentParser, title: str) -> None:
    """--source-key-file / --source-key-env: the key of an SSE-C source object (`cp`, `sync`
    and `mv` from S3 to S3), read with `common.other_key`."""
    group = p.add_argument_group(title).add_mutually_exclusive_group()
    group.add_argument("--source-key-file", metavar="PATH", help="the source objects' key file")
    group.add_argument("--source-key-env", metavar="NAME", help="variable with their base64 key")


def add_bulk(p: argparse.ArgumentParser, *, local_source: bool = False) -> None:
    """--recursive, --manifest and what goes with many files, including the Dask options;
    `local_source` (put) adds --no-default-excludes."""
    g = p.add_argument_group("many files")
    g.add_argument(
        "-r", "--recursive", action="store_true", help="every file under a directory / prefix"
    )
    add_filters(g)
    if local_source:
        add_default_excludes(g)
    g.add_argument(
        "--follow-symlinks",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="put --recursive: follow symbolic links to files and folders, as aws does "
        "(default; a link back to a folder that contains it is reported as a loop); "
        "--no-follow-symlinks leaves every link out on purpose, counted as excluded. "
        "A path that cannot be sent (dangling link, loop, FIFO/socket/device, unreadable, "
        "vanished, name not UTF-8) is reported with its reason and makes the exit code 1",
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
    add_run_of_files(g)
    add_dryrun(g, "transferred")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted multipart upload of the same file (finished parts are "
        "not sent again; the same key is required), and keep finished parts if this run is "
        "interrupted too; without it an interrupted upload is aborted",
    )
    add_dask(p)


def add_dask(p: argparse.ArgumentParser) -> None:
    """--dask ADDRESS | --dask-local N, and --dask-batch-size: put/get (`add_bulk`), cp and
    rotate --recursive, sync."""
    group = p.add_argument_group("Dask cluster (pip install 'ssec-transfer[dask]')")
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the transfers on this Dask scheduler's workers (tcp://HOST:8786, or "
        "tls://... to let client-only keys travel); needs ssec-transfer[dask]",
    )
    where.add_argument(
        "--dask-local",
        type=argtypes.positive_int,
        metavar="N",
        help="run the transfers on a Dask cluster of N worker processes on this machine",
    )
    group.add_argument(
        "--dask-batch-size",
        type=argtypes.size,
        metavar="SIZE",
        default=None,  # `DaskCluster.max_batch_bytes`, filled in by `common.dask_cluster`
        help="with --dask/--dask-local: at most this many bytes per batch (default 4GiB)",
    )


def add_via(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--via",
        choices=("auto", "server", "stream"),
        default="auto",
        help="server: server-side copy only; stream: through this machine; auto (default): "
        "server-side, falling back to streaming where the server refuses",
    )


JSON_HELP = (
    "one JSON line per object on stdout (after many objects, a summary line); every line "
    'has the same fields for the same things ("schema": 1, "type", "operation", "status", '
    '"source", "destination", "size", "mib_per_s", "error", "hint", "http_status", "exit_code"...; '
    "see docs/json.md). Errors are JSON lines too. Not changed by --quiet/--only-show-errors"
)


def add_output(
    p: argparse.ArgumentParser, *, progress: bool = True, json_help: str = JSON_HELP
) -> None:
    """--json, --quiet/--only-show-errors and (for commands with one) --progress."""
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help=json_help)
    quiet = g.add_mutually_exclusive_group()
    quiet.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="show nothing but errors: no progress bar, no line per object (rm's `delete:` "
        "lines included), no summary when everything went well, no warnings (for cron: mail "
        "only on failure)",
    )
    quiet.add_argument(
        "--only-show-errors",
        action="store_true",
        help="like --quiet, but warnings still show (a key saved nowhere, a retry coming...)",
    )
    if progress:
        g.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="progress bar on stderr (default: only when stderr is a terminal; never with "
            "--quiet or --only-show-errors)",
        )


def add_tuning(p: argparse.ArgumentParser) -> None:
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
    g.add_argument(
        "--bwlimit",
        type=argtypes.rate,
        metavar="RATE",
        default=None,
        help="at most RATE payload bytes per second, uploads and downloads together, for "
        "the whole run: 10MiB, 50M (M is 1000**2, MiB 1024**2), 1.5GiB, or bits: 100Mbit; "
        "0 or off: no limit (default). Headers are not counted. One limit per process: "
        "with --dask each worker process applies RATE (the cluster moves up to workers x "
        "RATE); --dask-local N gives each of its N processes RATE/N",
    )


# What AWS S3 knows; other servers take their own names (Ceph: its placement targets' classes).
STORAGE_CLASSES = (
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
    "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "EXPRESS_ONEZONE",
)  # fmt: skip


def add_object_options(p: argparse.ArgumentParser, *, no_clobber: bool = True) -> None:
    """What an upload sets on each object besides its bytes (`common.object_attributes`),
    and, where replacing an object is a choice (`put`), --no-clobber."""
    g = p.add_argument_group("object attributes (uploads)")
    g.add_argument(
        "--content-type",
        type=argtypes.header_text,
        metavar="TYPE",
        help="Content-Type of every object uploaded (default: guessed from the file name, "
        "application/octet-stream when unknown or for a stream)",
    )
    g.add_argument(
        "--metadata",
        type=argtypes.metadata,
        action="append",
        metavar="NAME=VALUE",
        help='user metadata (x-amz-meta-NAME), repeatable; aws\'s \'{"NAME": "VALUE"}\' '
        "form works too. Printable ASCII; names of letters, digits and - _ . (servers store "
        "them in lower case). At most 2 KB with the names, less what ssec-transfer keeps for "
        "the sealed source facts (x-amz-meta-ssec-transfer, reserved)",
    )
    g.add_argument(
        "--storage-class",
        type=argtypes.storage_class,
        metavar="CLASS",
        help=f"storage class of the objects, passed through as given: on AWS "
        f"{', '.join(STORAGE_CLASSES)}; a server refuses classes it lacks (Ceph maps them to "
        f"its placement targets' storage classes; SeaweedFS records the name)",
    )
    if no_clobber:
        g.add_argument(
            "--no-clobber",
            action="store_true",
            help='never replace an object that exists: it is skipped (reason "exists", exit '
            "0). A HEAD checks before any byte is sent, and PutObject and "
            "CompleteMultipartUpload carry If-None-Match: *, so the server refuses an object "
            "that appeared meanwhile, where it honours that (`ssec-transfer doctor` says); "
            "a multipart upload HEADs again just before Complete. Where the server ignores "
            "If-None-Match, only the HEADs protect, which race with another writer",
        )
