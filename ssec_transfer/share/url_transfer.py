"""`get --url` and `put --url`: one object through a presigned URL, without S3 credentials.

The tool's data plane signs with credentials and takes its routes from an aiobotocore client;
a presigned URL has neither, so the request is sent here with aiohttp, verifying TLS as the
client does (--ca-bundle, AWS_CA_BUNDLE, else botocore's bundle). What lands on disk goes
through the same `transfer.destination` as a normal get: DEST planned (folder, link, device,
protected files), a locked temporary file beside it, renamed over DEST only once every byte
arrived, its length matched Content-Length and its CRC32C the server's stored checksum, or else
the one the tool's upload sealed in the object's metadata (when there is one); on any
failure the temporary file is removed and DEST is untouched.

An upload is one PUT (at most 5 GiB, S3's limit for it) with Content-Length and Content-MD5:
Content-MD5 is not an x-amz-* header, so the URL need not sign it, and the server refuses a
body that does not match it (BadDigest), as SeaweedFS does. The file is hashed first, then
streamed; a file that changes meanwhile is refused by that very check.

A broken connection, a body cut or corrupted in transit, or a busy server's 5xx/429 is retried
with the engine's backoff (`share.retrying`); a download starts again into a new temporary
file, except into a device or FIFO, where bytes written stay written.

Every refusal is mapped once, in `_refusal`: nothing here ever puts the URL's query (a bearer
credential) or the key in a message.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import stat
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import anyio

from ssec_transfer import __version__
from ssec_transfer.core.crc import crc32c, digest_text
from ssec_transfer.core.errors import (
    AccessDeniedError,
    EndpointError,
    ErrorContext,
    IntegrityError,
    LocalIOError,
    NoSuchBucketError,
    NoSuchObjectError,
    SSECTransferError,
    TransferFailedError,
    UsageError,
    WrongKeyError,
)
from ssec_transfer.core.results import ProgressCallback
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.share.https import open_session
from ssec_transfer.share.presign import PresignedUrl
from ssec_transfer.share.retrying import TRANSIENT_STATUS, Retryable, with_retries
from ssec_transfer.transfer.destination import TempFile, open_stream, plan_destination

MAX_PUT = 5 * 1024**3  # S3's largest single PUT
CHUNK = 1024 * 1024
_USER_AGENT = f"ssec-transfer/{__version__} aiohttp/{aiohttp.__version__}"
_NEW_URL = "ask whoever gave you the URL for a new one (`ssec-transfer presign`)"


@dataclass(frozen=True)
class Connection:
    """TLS and timeouts, as the S3 client takes them from --ca-bundle and the timeouts."""

    ca_bundle: str | None
    connect_timeout: float
    read_timeout: float


@dataclass(frozen=True)
class UrlResult:
    """What a transfer through a URL reports (the JSON line's object record)."""

    operation: str  # "download" or "upload"
    path: str
    size: int
    seconds: float
    etag: str | None
    version_id: str | None
    key_fingerprint: str
    checksum: str | None


def _session(connection: Connection) -> aiohttp.ClientSession:
    return open_session(
        connection.ca_bundle,
        connect_timeout=connection.connect_timeout,
        read_timeout=connection.read_timeout,
    )


def _prepare(url: PresignedUrl, method: str, sse_key: SSECustomerKey) -> dict[str, str]:
    """The local checks, in the order the user can act on them, then the request's headers."""
    url.check_method("GET" if method == "GET" else "PUT")
    url.check_key(sse_key)
    url.check_not_expired()
    headers = url.request_headers(sse_key)
    headers["User-Agent"] = _USER_AGENT
    headers["Accept-Encoding"] = "identity"
    return headers


async def download(
    url: PresignedUrl,
    sse_key: SSECustomerKey,
    dest: str,
    connection: Connection,
    progress: ProgressCallback | None = None,
) -> UrlResult:
    """GET the object into DEST atomically (see the module docstring)."""
    headers = _prepare(url, "GET", sse_key)
    target = await anyio.to_thread.run_sync(plan_destination, dest, url.object_name or "object")
    started = time.perf_counter()
    progress, rewind = _rewindable(progress)

    async def attempt(session: aiohttp.ClientSession) -> tuple[int, int, Any]:
        async with _request(session, "GET", url, headers) as response:
            await _raise_refusal(response, url, "GetObject")
            size = _content_length(response, url)
            expected = _expected_crc(response, url, sse_key)
            if target.kind == "stream":  # bytes written into a device or FIFO stay written
                crc = await _into_stream(response, target.path, size, url, progress, expected)
            else:
                try:
                    crc = await _into_file(response, target, size, url, progress, expected)
                except IntegrityError as exc:  # a broken or corrupted body: nothing was kept
                    raise Retryable(exc) from None
            return size, crc, response.headers

    async with _session(connection) as session:
        size, crc, answer = await with_retries(
            lambda: attempt(session), what=f"get --url: {url.shown}", rewind=rewind
        )
    return UrlResult(
        "download", str(target.path), size, time.perf_counter() - started,
        answer.get("ETag"), answer.get("x-amz-version-id"), sse_key.fingerprint,
        digest_text(crc),
    )  # fmt: skip


def _content_length(response: aiohttp.ClientResponse, url: PresignedUrl) -> int:
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        raise TransferFailedError(
            f"{url.shown}: the server's answer has no Content-Length, so a complete download "
            "cannot be told from a cut one; nothing was written",
            context=ErrorContext("GetObject", status=response.status),
        ) from None


def _stored_crc(response: aiohttp.ClientResponse) -> str | None:
    value = response.headers.get("x-amz-checksum-crc32c")
    if not value or "-" in value or response.headers.get("x-amz-checksum-type") == "COMPOSITE":
        return None
    return f"crc32c:{value}"


async def _chunks(
    response: aiohttp.ClientResponse, size: int, url: PresignedUrl
) -> AsyncIterator[bytes]:
    """The body's chunks, raising if it ends before or after Content-Length."""
    received = 0
    try:
        async for chunk in response.content.iter_chunked(CHUNK):
            received += len(chunk)
            yield chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise IntegrityError(
            f"{url.shown}: the download broke after {received} of {size} bytes ({exc})",
            hint="run it again; nothing partial was kept",
            context=ErrorContext("GetObject"),
        ) from None
    if received != size:
        raise IntegrityError(
            f"{url.shown}: the server sent {received} bytes, but announced {size}",
            hint="run it again; nothing partial was kept",
            context=ErrorContext("GetObject"),
        )


def _sealed_crc(
    response: aiohttp.ClientResponse, url: PresignedUrl, sse_key: SSECustomerKey
) -> str | None:
    """The CRC32C the tool's upload sealed in the object's metadata (`keys.seal`), which a GET
    returns with the object: the check where the server keeps no checksum (Ceph RGW). The
    seal is bound to bucket and key, read from the URL as path-style, then virtual-host."""
    from ssec_transfer.keys.seal import METADATA_NAME, unseal

    value = response.headers.get(f"x-amz-meta-{METADATA_NAME}")
    if not value:
        return None
    parts = urlsplit(url.url)
    path = unquote(parts.path).lstrip("/")
    bucket, _, key = path.partition("/")
    names = [(bucket, key), ((parts.hostname or "").split(".", 1)[0], path)]
    for bucket, key in names:
        facts = unseal(value, sse_key, bucket, key)
        if facts is not None:
            return None if facts.crc32c is None else digest_text(facts.crc32c)
    return None


def _expected_crc(
    response: aiohttp.ClientResponse, url: PresignedUrl, sse_key: SSECustomerKey
) -> str | None:
    return _stored_crc(response) or _sealed_crc(response, url, sse_key)


def _check_crc(expected: str | None, crc: int, url: PresignedUrl) -> None:
    if expected is not None and digest_text(crc) != expected:
        raise IntegrityError(
            f"{url.shown}: the data received has CRC32C {digest_text(crc)}, but the object's "
            f"is {expected}: bytes were corrupted in transit",
            hint="rerun the download; nothing was written to DEST",
            context=ErrorContext("GetObject"),
        )


async def _into_file(
    response: aiohttp.ClientResponse,
    target: Any,
    size: int,
    url: PresignedUrl,
    progress: ProgressCallback | None,
    expected: str | None,
) -> int:
    with anyio.CancelScope(shield=True):  # a temporary file created must be known, to go
        temp = await anyio.to_thread.run_sync(TempFile, target, None, size)
    try:
        crc, offset = 0, 0
        async for chunk in _chunks(response, size, url):
            crc = crc32c(chunk, crc)
            try:
                await anyio.to_thread.run_sync(temp.write_at, [chunk], offset)
            except OSError as exc:
                raise LocalIOError(f"cannot write {target.path}: {exc.strerror}") from None
            offset += len(chunk)
            if progress:
                progress(len(chunk), size)
        _check_crc(expected, crc, url)
        await anyio.to_thread.run_sync(temp.commit)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(temp.discard)
        raise
    return crc


async def _into_stream(
    response: aiohttp.ClientResponse,
    path: Path,
    size: int,
    url: PresignedUrl,
    progress: ProgressCallback | None,
    expected: str | None,
) -> int:
    """A device or FIFO DEST is written into, in order, as a normal get does."""
    out = await anyio.to_thread.run_sync(open_stream, path)
    crc = 0
    try:
        async for chunk in _chunks(response, size, url):
            crc = crc32c(chunk, crc)
            await anyio.to_thread.run_sync(out.write, chunk)
            if progress:
                progress(len(chunk), size)
    finally:
        await anyio.to_thread.run_sync(out.close)
    _check_crc(expected, crc, url)
    return crc


def _file_facts(source: Path) -> tuple[int, int, str]:
    """Size, mtime and base64 MD5 of a regular file (one read; refused if it is not one)."""
    try:
        st = os.stat(source)
    except OSError as exc:
        raise LocalIOError(f"cannot read {source}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{source} is not a regular file", hint="put --url sends one file")
    if st.st_size > MAX_PUT:
        raise UsageError(
            f"{source} is {st.st_size} bytes; one PUT through a URL takes at most 5 GiB",
            hint="upload it with credentials (`ssec-transfer put`, multipart), or split it",
        )
    digest = hashlib.md5()  # noqa: S324 - Content-MD5 is MD5 by definition
    try:
        with open(source, "rb") as f:
            while block := f.read(CHUNK):
                digest.update(block)
    except OSError as exc:
        raise LocalIOError(f"cannot read {source}: {exc.strerror}") from None
    return st.st_size, st.st_mtime_ns, base64.b64encode(digest.digest()).decode("ascii")


async def upload(
    url: PresignedUrl,
    sse_key: SSECustomerKey,
    source: Path,
    connection: Connection,
    progress: ProgressCallback | None = None,
) -> UrlResult:
    """One PUT of `source` with Content-Length and Content-MD5 (see the module docstring)."""
    headers = _prepare(url, "PUT", sse_key)
    size, mtime, md5 = await anyio.to_thread.run_sync(_file_facts, source)
    headers["Content-Length"] = str(size)
    headers["Content-MD5"] = md5
    started = time.perf_counter()

    async def body() -> AsyncIterator[bytes]:
        with open(source, "rb") as f:  # noqa: ASYNC230 - each read runs in a thread below
            while block := await anyio.to_thread.run_sync(f.read, CHUNK):
                yield block
                if progress:
                    progress(len(block), size)

    async def attempt(session: aiohttp.ClientSession) -> Any:
        async with _request(session, "PUT", url, headers, body()) as response:
            await _raise_refusal(response, url, "PutObject")
            await response.read()
            return response.headers

    progress, rewind = _rewindable(progress)
    async with _session(connection) as session:
        answer = await with_retries(
            lambda: attempt(session), what=f"put --url: {url.shown}", rewind=rewind
        )
    now = await anyio.to_thread.run_sync(os.stat, source)
    if (now.st_size, now.st_mtime_ns) != (size, mtime):
        raise TransferFailedError(
            f"{source} changed while it was uploaded to {url.shown}; the server accepted "
            "bytes that matched its checksum, but the file is no longer what was sent",
            hint="upload it again once nothing writes to it",
            context=ErrorContext("PutObject"),
        )
    return UrlResult(
        "upload", str(source), size, time.perf_counter() - started, answer.get("ETag"),
        answer.get("x-amz-version-id"), sse_key.fingerprint, f"md5:{md5}",
    )  # fmt: skip


class _request:
    """One request, with transport failures said as the tool says them (exit 1)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: PresignedUrl,
        headers: dict[str, str],
        data: Any = None,
    ) -> None:
        self._call = (session, method, url, headers, data)
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        from yarl import URL

        session, method, url, headers, data = self._call
        operation = "GetObject" if method == "GET" else "PutObject"
        try:
            self._response = await session.request(
                method, URL(url.url, encoded=True), headers=headers, data=data,
                allow_redirects=False,
            )  # fmt: skip
        except aiohttp.ClientSSLError as exc:
            raise EndpointError(
                f"{url.shown}: the server's TLS certificate could not be verified ({exc})",
                hint="give its CA certificates with --ca-bundle PEM",
                context=ErrorContext(operation),
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Retryable(
                EndpointError(
                    f"{url.shown}: {exc or type(exc).__name__}",
                    hint="check that the server is reachable from here, then run it again",
                    context=ErrorContext(operation),
                )
            ) from None
        return self._response

    async def __aexit__(self, *exc: object) -> None:
        if self._response is not None:
            self._response.release()


def _rewindable(
    progress: ProgressCallback | None,
) -> tuple[ProgressCallback | None, Callable[[], None]]:
    """`progress`, counting what it was told, and how to take that back when an attempt
    fails and the transfer starts again."""
    if progress is None:
        return None, lambda: None
    told = [0, 0]  # bytes, total

    def counted(done: int, total: int) -> None:
        told[0] += done
        told[1] = total
        progress(done, total)

    def rewind() -> None:
        if told[0]:
            progress(-told[0], told[1])
        told[0] = 0

    return counted, rewind


async def _raise_refusal(
    response: aiohttp.ClientResponse, url: PresignedUrl, operation: str
) -> None:
    """A refusal raised as the tool's error; a busy or restarting server's
    (`TRANSIENT_STATUS`) as one another attempt may not meet."""
    if response.status < 300:
        return
    refused = await _refusal(response, url, operation)
    if response.status in TRANSIENT_STATUS:
        raise Retryable(refused)
    raise refused


async def _refusal(
    response: aiohttp.ClientResponse, url: PresignedUrl, operation: str
) -> SSECTransferError:
    """The server's refusal as the tool's error: what happened, and what to do."""
    status = response.status
    try:
        body = (await response.read()).decode("utf-8", "replace")
    except aiohttp.ClientError:
        body = ""
    code, message = _element(body, "Code"), _element(body, "Message")
    request_id = response.headers.get("x-amz-request-id")
    ctx = ErrorContext(operation, status=status, request_id=request_id)
    said = f"{code}: {message}" if code else f"HTTP {status}"
    where = url.shown
    if status == 403 and code == "SignatureDoesNotMatch":
        return AccessDeniedError(
            f"{where}: the server refused the URL's signature ({code})",
            hint="the URL was changed or cut (pass it whole, in single quotes), or it was "
            "made for another key or method (a presign URL is for get unless made with --put)",
            context=ctx,
        )
    if status == 403 and "expired" in message.lower():
        return AccessDeniedError(
            f"{where}: the server says the URL has expired ({said}); this machine's clock may "
            "be behind the server's",
            hint=_NEW_URL,
            context=ctx,
        )
    if status == 403 and not message:  # Ceph RGW names no reason for an expired URL
        return AccessDeniedError(
            f"{where}: access denied without a reason ({said}): the URL may have expired by the "
            "server's clock, been changed, or its signer lost access to the object",
            hint="pass the URL whole, in single quotes, and check this machine's clock; else "
            + _NEW_URL,
            context=ctx,
        )
    if status == 403:
        return AccessDeniedError(
            f"{where}: access denied ({said})",
            hint="the URL's signer may have lost access, or the object is under another key; "
            + _NEW_URL,
            context=ctx,
        )
    if status == 400 and code == "BadDigest":
        return IntegrityError(
            f"{where}: the server received bytes that do not match the file's MD5 ({said}); "
            "nothing was stored",
            hint="upload it again once nothing writes to the file",
            context=ctx,
        )
    if status == 400 and (code == "InvalidArgument" or "key" in message.lower()):
        return WrongKeyError(
            f"{where}: the server refused the key ({said})",
            hint="pass the key the object (or URL) was made for with --key-file or --key-env",
            context=ctx,
        )
    if status == 404:
        cls = NoSuchBucketError if code == "NoSuchBucket" else NoSuchObjectError
        what = "bucket" if code == "NoSuchBucket" else "object"
        return cls(
            f"{where}: no such {what} ({said})",
            hint="the object may have been removed or renamed since the URL was made",
            context=ctx,
        )
    return TransferFailedError(f"{where}: the server refused the request ({said})", context=ctx)


def _element(body: str, name: str) -> str:
    """The text of an S3 error document's top-level element (read with a pattern, not an
    XML parser: the answer is untrusted, and only two short fields are wanted)."""
    match = re.search(rf"<{name}>([^<]{{0,1000}})</{name}>", body)
    return html.unescape(match.group(1)).strip() if match else ""
