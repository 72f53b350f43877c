"""`grant` and `post`: uploads from someone without S3 credentials, under your SSE-C key.

`grant` signs a POST policy with your credentials (pinned to a prefix, the key's fingerprint,
a size range and an expiry) and writes it to a file that holds no key and no secret; `post`
uploads files through such a file with the key alone. The grant document and its checks are
`share.grant`, the POST itself `share.post`; both are imported when a command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from ssec_transfer.cli import argtypes
from ssec_transfer.cli.common import engine_for, progress_enabled, report, require_key
from ssec_transfer.cli.options import (
    CommandFactory,
    Handler,
    add_connection,
    add_key,
    add_output,
    load_key,
)
from ssec_transfer.cli.output import print_json, shows_successes
from ssec_transfer.core.errors import CredentialsError, SSECTransferError, UsageError
from ssec_transfer.core.retry import CONNECT_TIMEOUT, READ_TIMEOUT
from ssec_transfer.s3.urls import parse_s3_url

if TYPE_CHECKING:
    from ssec_transfer.share.grant import Grant

_POST_MAX = 5 * 1024**3  # share.grant.POST_MAX_SIZE, without importing it for --help


def _expires(text: str) -> int:
    from ssec_transfer.share.grant import parse_expires

    try:
        return parse_expires(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _post_size(text: str) -> int:
    value = argtypes.size(text)
    if value > _POST_MAX:
        raise argparse.ArgumentTypeError(
            f"{text!r} is more than 5GiB, the largest object a POST upload may carry"
        )
    return value


def register(command: CommandFactory) -> None:
    grant = command(
        "grant",
        "let someone without S3 credentials upload under your key (a signed POST policy)",
        "Write a grant: a presigned S3 POST policy, signed with your credentials, that lets "
        "whoever holds it and the SSE-C key upload objects under s3://BUCKET/PREFIX/ (a "
        "folder: s3://b/in means in/...), sized within --min-size..--max-size, until it "
        "expires. The server accepts only uploads encrypted under the key whose fingerprint "
        "the policy pins. The grant file holds no key and no secret credential (only the "
        "access key id, as any presigned request); give it and the key to the uploader by "
        "separate channels. They run `ssec-transfer post FILE --grant grant.json --key-file "
        "KEY`, or open the page --html writes. The bucket must exist (checked now); the "
        "endpoint must be https://.\n\n"
        "  ssec-transfer grant s3://bucket/incoming/ --key-file sse-c.key --expires 24h\n"
        "  ssec-transfer grant s3://bucket/station-7/ --key-file sse-c.key --expires 7d \\\n"
        "      --max-size 2GiB --out station-7.grant.json --html station-7.html\n\n"
        "A grant cannot be revoked before it expires, except by removing or rotating the "
        "credentials that signed it: keep --expires short. Signed with temporary (session) "
        "credentials, it stops working when they expire.",
    )
    grant.add_argument("target", metavar="s3://BUCKET/PREFIX/")
    grant.add_argument(
        "--expires",
        type=_expires,
        required=True,
        metavar="DURATION",
        help="how long uploads are accepted: 30m, 24h, 7d (at most 7d, the longest a SigV4 "
        "signature lives)",
    )
    grant.add_argument(
        "--max-size",
        type=_post_size,
        default=_POST_MAX,
        metavar="SIZE",
        help="largest file accepted, e.g. 100MiB (default and ceiling 5GiB: a POST's limit)",
    )
    grant.add_argument(
        "--min-size",
        type=argtypes.size,
        default=0,
        metavar="SIZE",
        help="smallest file accepted (default 0)",
    )
    grant.add_argument(
        "--out",
        default="grant.json",
        metavar="FILE",
        help="where to write the grant (default grant.json; - for stdout). An existing file is "
        "never replaced without --force",
    )
    grant.add_argument(
        "--html",
        metavar="FILE",
        help="also write a self-contained browser page that uploads through this grant",
    )
    grant.add_argument(
        "--cors",
        action="store_true",
        help="add a CORS rule to the bucket (origin null, POST, keeping its other rules) so the "
        "--html page, opened from a file, can read the server's answers; Ceph RGW needs it, "
        "SeaweedFS answers pages without it. Needs the bucket owner's credentials",
    )
    grant.add_argument("--force", action="store_true", help="replace --out/--html if they exist")
    add_key(grant, required=True)
    add_output(
        grant,
        progress=False,
        json_help='one JSON line (docs/json.md: type "grant": bucket, prefix, url, '
        "key_fingerprint, expires, min_size, max_size, file, html) instead of the summary",
    )
    add_connection(grant)

    post = command(
        "post",
        "upload files through a grant, with the key and no S3 credentials",
        "Upload each FILE through a grant (`ssec-transfer grant`) with one browser-style POST "
        "over HTTPS: no S3 credentials are needed or read, only the grant file and the SSE-C "
        "key it was made for. Before anything is sent, every file is checked: the key's "
        "fingerprint against the grant's (exit 3), the expiry, the grant's size range and "
        "5 GiB (exit 2). Each object goes to PREFIX/NAME (NAME: the file's name, or --name) "
        "and counts as stored only when the server answers 201 naming that bucket and key; "
        "as the uploader cannot read the object back, that answer is the proof.\n\n"
        "  ssec-transfer post obs.nc --grant grant.json --key-file sse-c.key\n"
        "  ssec-transfer post day/*.nc --grant grant.json --key-file sse-c.key --jobs 4 --json\n"
        "  ssec-transfer post obs.nc --grant grant.json --key-file sse-c.key --name 2026/obs.nc",
    )
    post.add_argument("files", nargs="+", metavar="FILE")
    post.add_argument("--grant", required=True, metavar="FILE", help="the grant file to use")
    post.add_argument(
        "--name",
        metavar="NAME",
        help="with one FILE: the object's name under the grant's prefix (default: the file's "
        "name); may hold folders (2026/obs.nc), never '..'",
    )
    post.add_argument(
        "--jobs",
        type=argtypes.positive_int,
        default=2,
        metavar="N",
        help="files posted at once (default 2)",
    )
    add_key(post, required=True)
    add_output(post)
    g = post.add_argument_group("connection")
    g.add_argument("--ca-bundle", metavar="PEM", help="CA certificates to verify the endpoint")
    g.add_argument(
        "--connect-timeout",
        type=argtypes.positive_seconds,
        default=CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"to open the connection, TLS included (default {CONNECT_TIMEOUT:g})",
    )
    g.add_argument(
        "--read-timeout",
        type=argtypes.positive_seconds,
        default=READ_TIMEOUT,
        metavar="SECONDS",
        help=f"the longest the server may stay silent (default {READ_TIMEOUT:g})",
    )


# -- grant ---------------------------------------------------------------------------------------


def _refuse_existing(path: str, force: bool) -> None:
    if path != "-" and not force and os.path.lexists(path):
        raise UsageError(
            f"{path} exists; no grant was written",
            hint="choose another --out/--html, or add --force to replace it",
        )


def _write(path: str, text: str) -> None:
    """Write `text` to `path` whole (a temporary file renamed over it): a reader never sees
    half a grant. The grant holds no secret, so it is readable like any document."""
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temp, path)
    except OSError as exc:
        if os.path.exists(temp):
            os.unlink(temp)
        raise UsageError(f"cannot write {path}: {exc.strerror}",
                         hint="choose a folder this user may write") from None  # fmt: skip


def _render_page(grant: dict[str, Any]) -> str:
    from ssec_transfer.share.page import render_upload_page

    return render_upload_page(grant)


async def cmd_grant(args: argparse.Namespace) -> int:
    import json

    from ssec_transfer.core.report import grant_record
    from ssec_transfer.core.units import human_size
    from ssec_transfer.s3.urls import folder_prefix
    from ssec_transfer.share.grant import build_grant, require_https

    url = parse_s3_url(args.target)
    prefix = folder_prefix(url.key)
    key = require_key(load_key(args), "grant")
    if args.min_size > args.max_size:
        raise UsageError(f"--min-size {args.min_size} is larger than --max-size {args.max_size}")
    if args.out == "-" and args.json:
        raise UsageError("--out - and --json would both write to stdout",
                         hint="write the grant to a file with --out FILE")  # fmt: skip
    if args.html and os.path.abspath(args.html) == os.path.abspath(args.out):  # noqa: ASYNC240
        raise UsageError("--html and --out name the same file")
    for path in (args.out, args.html):
        if path:
            _refuse_existing(path, args.force)
    args.no_ledger = True  # a grant writes nothing to the bucket itself
    async with engine_for(args) as engine:
        endpoint = engine.endpoint_url
        require_https(endpoint)  # before the bucket check: nothing goes to http://
        credentials = engine.client._get_credentials()
        if credentials is None:
            raise CredentialsError(
                "no S3 credentials found: a grant is signed with them",
                hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --profile",
            )
        frozen = await credentials.get_frozen_credentials()
        await engine.require_bucket(url.bucket)
        region = engine.client.meta.region_name
        cors_note = await _page_cors(args, engine, url.bucket)
    grant = build_grant(
        endpoint_url=endpoint, bucket=url.bucket, prefix=prefix, fingerprint=key.fingerprint,
        credentials=frozen, region=region, now=time.time(), expires_in=args.expires,
        min_size=args.min_size, max_size=args.max_size,
    )  # fmt: skip
    page = _render_page(grant) if args.html else None
    _write(args.out, json.dumps(grant, indent=2) + "\n")
    if args.html and page is not None:
        _write(args.html, page)
    if frozen.token:
        import logging

        logging.getLogger("ssec_transfer").warning(
            "the grant is signed with temporary credentials: it stops working when they "
            "expire, whatever its own expiry"
        )
    if args.json:
        print_json(grant_record(grant, file=args.out, html=args.html))
    elif shows_successes(args):
        out = sys.stderr if args.out == "-" else sys.stdout
        sizes = f"{human_size(grant['min_size'])} to {human_size(grant['max_size'])}"
        lines = [
            f"grant: {args.out if args.out != '-' else 'written to stdout'}",
            f"  uploads to   s3://{url.bucket}/{prefix}  ({grant['url']})",
            f"  key          fingerprint {key.fingerprint} (the uploader needs this key)",
            f"  expires      {grant['expires']}",
            f"  file sizes   {sizes}",
        ]
        if args.html:
            lines.append(f"  page         {args.html}")
        if cors_note:
            lines.append(f"  cors         {cors_note}")
        grant_file = args.out if args.out != "-" else "GRANT"
        lines.append(f"  uploader:    ssec-transfer post FILE --grant {grant_file} --key-file KEY")
        print("\n".join(lines), file=out)
    return 0


async def _page_cors(args: argparse.Namespace, engine: Any, bucket: str) -> str | None:
    """With --cors, make sure the bucket lets a page opened from a file read its answers.
    With --html alone, ask the server (a key-less CORS preflight) and warn when the page
    would get no readable answer (Ceph RGW without a rule), naming --cors."""
    if args.cors:
        from ssec_transfer.share.cors import allow_upload_page

        return (await allow_upload_page(engine.client, bucket)).describe()
    if args.html:
        from functools import partial

        import anyio

        from ssec_transfer.share.cors import page_can_read_answers

        ca_bundle = engine.settings.ca_bundle or os.environ.get("AWS_CA_BUNDLE")
        probe = partial(page_can_read_answers, engine.endpoint_url, bucket, ca_bundle=ca_bundle)
        if not await anyio.to_thread.run_sync(probe):
            import logging

            logging.getLogger("ssec_transfer").warning(
                "the server does not let a page opened from a file read its answers to "
                "bucket %s (CORS): the page will store files but cannot say so; add --cors "
                "to add a rule for it",
                bucket,
            )
    return None


# -- post ----------------------------------------------------------------------------------------


def _plan(args: argparse.Namespace, grant: Grant) -> list[tuple[str, str, int]]:
    """(path, object key, size) of every file, each checked before anything is sent."""
    from ssec_transfer.share.grant import check_name, check_size

    if args.name is not None and len(args.files) > 1:
        raise UsageError("--name names one object: it goes with one FILE only",
                         hint="drop --name: each file keeps its own name")  # fmt: skip
    planned: list[tuple[str, str, int]] = []
    seen: dict[str, str] = {}
    for path in args.files:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise UsageError(f"source file {path} does not exist; nothing was sent") from None
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}; nothing was sent") from None
        import stat

        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{path} is not a regular file; nothing was sent",
                             hint="post files one by one (a folder: FOLDER/*)")  # fmt: skip
        object_key = check_name(grant, args.name or os.path.basename(path))
        if object_key in seen:
            raise UsageError(
                f"{seen[object_key]} and {path} would both be stored as {object_key}; "
                "nothing was sent",
                hint="post them separately with --name",
            )
        seen[object_key] = path
        check_size(grant, path, st.st_size)
        planned.append((path, object_key, st.st_size))
    return planned


async def cmd_post(args: argparse.Namespace) -> int:
    import anyio

    from ssec_transfer.cli.progress import BulkProgress
    from ssec_transfer.core.report import object_record, summary_record
    from ssec_transfer.share import post
    from ssec_transfer.share.grant import check_key, check_not_expired, load_grant
    from ssec_transfer.share.https import open_session

    grant = load_grant(args.grant)
    key = require_key(load_key(args), "post")
    check_key(grant, key.fingerprint)
    check_not_expired(grant, time.time())
    planned = _plan(args, grant)
    started = time.perf_counter()
    failures: list[SSECTransferError] = []
    total = sum(size for _, _, size in planned)
    bar = BulkProgress(len(planned), total, enabled=progress_enabled(args))
    limiter = anyio.CapacityLimiter(args.jobs)
    ok_bytes = 0

    async def one(session: Any, path: str, object_key: str, size: int) -> None:
        nonlocal ok_bytes
        url = f"s3://{grant.bucket}/{object_key}"
        common: dict[str, Any] = {"source": path, "destination": url, "bucket": grant.bucket,
                  "key": object_key, "path": path, "size": size,
                  "key_fingerprint": key.fingerprint, "extra": {"via": "post"}}  # fmt: skip
        sent = 0

        def progress(n: int) -> None:
            nonlocal sent
            sent += n
            bar.add_bytes(n)

        async with limiter:
            try:
                result = await post.post_file(session, grant, path, object_key, key,
                                              progress=progress)  # fmt: skip
            except SSECTransferError as exc:
                bar.add_bytes(-sent)
                bar.file_done(failed=True)
                failures.append(exc)
                record = object_record("upload", "failed", error=exc, **common)
                if args.json:
                    print_json(record)
                print(f"failed: {path}: {exc}", file=sys.stderr)
                return
        bar.file_done(failed=False)
        ok_bytes += size
        record = object_record("upload", "ok", seconds=result.seconds,
                               etag=result.etag, **common)  # fmt: skip
        report(args, record, f"post: {path} to {url}")

    try:
        async with open_session(
            args.ca_bundle, connect_timeout=args.connect_timeout,
            read_timeout=args.read_timeout, connections=args.jobs,
        ) as session, anyio.create_task_group() as tg:  # fmt: skip
            for path, object_key, size in planned:
                tg.start_soon(one, session, path, object_key, size)
    finally:
        bar.close()
    code = max((e.exit_code for e in failures), default=0)
    if len(planned) > 1:
        seconds = time.perf_counter() - started
        if args.json:
            from ssec_transfer.core.report import mib_per_s

            print_json(summary_record(
                "post", files=len(planned), ok=len(planned) - len(failures),
                failed=len(failures), bytes=ok_bytes, seconds=round(seconds, 3),
                mib_per_s=mib_per_s(ok_bytes, seconds), exit_code=code,
            ))  # fmt: skip
        elif failures or shows_successes(args):
            print(f"{len(planned) - len(failures)} posted, {len(failures)} failed",
                  file=sys.stderr)  # fmt: skip
    return code


HANDLERS: dict[str, Handler] = {"grant": cmd_grant, "post": cmd_post}
