"""`presign`: a URL through which someone without S3 credentials (but with the key) reads or
writes one SSE-C object, with `get --url` / `put --url` or curl.

The URL is botocore's own presigned URL (`generate_presigned_url` on the tool's client, so the
endpoint, addressing style, region and credentials are resolved exactly as for every other
request), signing the SSE-C headers that `share.presign.presign_params` names; those stay
headers, so the key is never in the URL. Building the parser imports nothing heavy.
"""

from __future__ import annotations

import argparse
import sys
from typing import Literal

from ssec_transfer.cli.common import engine_for
from ssec_transfer.cli.options import (
    CommandFactory,
    Handler,
    add_connection,
    add_key,
    load_key,
)
from ssec_transfer.cli.output import print_json
from ssec_transfer.core.errors import UsageError
from ssec_transfer.s3.urls import parse_s3_url


def register(command: CommandFactory) -> None:
    presign = command(
        "presign",
        "print a URL for one SSE-C object that needs no S3 credentials, only the key",
        "Print a presigned URL that lets its holder read s3://BUCKET/KEY (or write it, with "
        "--put) until it expires, without S3 credentials. SSE-C still needs the key on every "
        "request: the URL's signature covers the SSE-C headers, but the key itself is never in "
        "the URL, so the holder must also have the key. The URL's fragment (after #) carries "
        "the key's fingerprint and the method, which `get --url`/`put --url` check before "
        "sending anything; servers never see a fragment. Treat the URL like a password until "
        "it expires: anyone with it and the key can use it. Only https:// endpoints; at most "
        "7 days.\n\n"
        "  ssec-transfer presign s3://bucket/data.nc --key-file sse-c.key --expires 1h\n"
        "  ssec-transfer get --url 'URL' data.nc --key-file sse-c.key    # anywhere, no creds\n"
        "  ssec-transfer presign s3://bucket/in/data.nc --key-file sse-c.key --put --expires 1d\n"
        "  ssec-transfer put data.nc --url 'URL' --key-file sse-c.key\n"
        "  ssec-transfer presign s3://bucket/data.nc --key-file sse-c.key \\\n"
        "      --curl-headers sse-c.headers    # then: curl -H @sse-c.headers -o data.nc 'URL'",
    )
    presign.add_argument("target", metavar="s3://BUCKET/KEY")
    presign.add_argument(
        "--expires",
        default="1h",
        metavar="DURATION",
        help="how long the URL works: seconds, or 90s, 30m, 1h, 7d (default 1h, at most 7d)",
    )
    presign.add_argument(
        "--put",
        action="store_true",
        help="a URL to upload (PUT) the object, instead of downloading (GET) it",
    )
    presign.add_argument(
        "--curl-headers",
        metavar="FILE",
        help="also write the headers the URL needs (the key among them) to this new file, mode "
        "0600, for `curl -H @FILE` (curl 7.55 or later): the key stays off the command line. "
        "An existing file is never overwritten",
    )
    presign.add_argument(
        "--json",
        action="store_true",
        help="print one JSON line (type presign: url, method, expires, key_fingerprint)",
    )
    add_key(presign, required=True)
    add_connection(presign)


async def cmd_presign(args: argparse.Namespace) -> int:
    from ssec_transfer.core.report import presign_record
    from ssec_transfer.s3.client import refuse_plain_http
    from ssec_transfer.s3.errors import translated
    from ssec_transfer.share import presign as plan

    key = load_key(args)
    assert key is not None  # --key-file/--key-env is required
    url = parse_s3_url(args.target)
    if not url.key or url.key.endswith("/"):
        raise UsageError(
            f"{args.target} names no object", hint="presign one object: s3://BUCKET/KEY"
        )
    expires = plan.parse_expires(args.expires)
    method: Literal["GET", "PUT"] = "PUT" if args.put else "GET"
    async with engine_for(args) as engine:
        client = engine.client
        endpoint = str(client.meta.endpoint_url)
        refuse_plain_http(endpoint)
        if method == "GET":  # the object exists, under this key: else the URL cannot work
            await engine.head(url.bucket, url.key, sse_key=key)
        else:
            from ssec_transfer.core.errors import ErrorContext

            with translated(ErrorContext("HeadBucket", url.bucket), key_sent=False):
                await client.head_bucket(Bucket=url.bucket)
        presigned = await client.generate_presigned_url(
            "get_object" if method == "GET" else "put_object",
            Params=plan.presign_params(url.bucket, url.key, key, method),
            ExpiresIn=expires,
        )
    if not presigned.lower().startswith("https://"):  # a redirect to plain http, say
        refuse_plain_http(presigned.split("?", 1)[0])
    full = plan.with_fragment(presigned, method, key.fingerprint)
    parsed = plan.parse_presigned_url(full)
    headers = parsed.request_headers(key)
    if args.curl_headers:
        plan.write_headers_file(args.curl_headers, plan.curl_headers(headers))
    expires_at = plan.expiry_text(parsed.expires_at)
    if args.json:
        print_json(
            presign_record(
                method=method,
                url=full,
                bucket=url.bucket,
                key=url.key,
                expires=expires_at,
                expires_in=expires,
                key_fingerprint=key.fingerprint,
                signed_headers=list(parsed.signed_headers),
                curl_headers=args.curl_headers,
            )
        )
        return 0
    print(full)
    use = (
        "ssec-transfer get --url 'URL' DEST --key-file KEYFILE"
        if method == "GET"
        else "ssec-transfer put FILE --url 'URL' --key-file KEYFILE"
    )
    curl = f"curl -fsS -H @{args.curl_headers or 'HEADERS'} " + (
        f"-o DEST '{presigned}'" if method == "GET" else f"-T FILE '{presigned}'"
    )
    lines = [
        f"{method} {url} until {expires_at} (in {args.expires}); key fingerprint {key.fingerprint}",
        "The URL (above, on stdout) holds no key: its holder needs the key too, and no S3 "
        "credentials. Use it with:",
        f"  {use}",
        f"  {curl}",
    ]
    if args.curl_headers:
        lines.append(f"{args.curl_headers} (mode 0600) holds the headers, the key among them.")
    else:
        lines.append(
            "(--curl-headers FILE writes the headers curl needs, the key among them, to a new "
            "0600 file, so the key stays off the command line)"
        )
    print("\n".join(lines), file=sys.stderr)
    return 0


HANDLERS: dict[str, Handler] = {"presign": cmd_presign}
