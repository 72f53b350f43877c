"""Uploading a file through a grant: one browser-style POST (multipart/form-data) with the
grant's signed fields, the SSE-C key field and the file last, over HTTPS, with no S3
credentials and no botocore client.

The file is streamed in slices read in a worker thread, so memory stays bounded whatever its
size; the request has a Content-Length (S3 wants one). The server's answer is the only proof
the grantee can have (they cannot read the object back): 201 with a PostResponse naming the
bucket and key sent, else the refusal is translated into one clear error.
"""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import anyio
from aiohttp import payload
from aiohttp.abc import AbstractStreamWriter

from ssec_transfer.core.errors import (
    AccessDeniedError,
    EndpointError,
    ErrorContext,
    InsecureEndpointError,
    IntegrityError,
    LocalIOError,
    NoSuchBucketError,
    SSECTransferError,
    TransferFailedError,
    WrongKeyError,
)
from ssec_transfer.core.retry import RetryPolicy
from ssec_transfer.share.grant import KEY_FIELD, Grant
from ssec_transfer.share.retrying import TRANSIENT_STATUS, Retryable, with_retries

if TYPE_CHECKING:
    from ssec_transfer.keys.customer import SSECustomerKey

SLICE = 512 * 1024
OPERATION = "PostObject"

Progress = Callable[[int], None]  # bytes just sent


@dataclass(frozen=True)
class PostResult:
    """What the server confirmed: the object stored, and how long it took."""

    bucket: str
    key: str
    etag: str | None
    location: str | None
    size: int
    seconds: float


@dataclass(frozen=True)
class Snapshot:
    """A file's size and modification time: the same before and after the POST, or the
    object may hold a mix of old and new bytes."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str) -> Snapshot:
        st = os.stat(path)
        return cls(st.st_size, st.st_mtime_ns)


class _FilePayload(payload.Payload):
    """`size` bytes of an open file, written slice by slice (each read in a worker thread)."""

    def __init__(self, fd: int, size: int, filename: str, progress: Progress | None) -> None:
        super().__init__(fd, content_type="application/octet-stream", filename=filename)
        self._fd = fd
        self._size = size  # aiohttp's: the request's Content-Length comes from it
        self._length = size
        self._progress = progress

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a file is binary data")

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        end = self._length if content_length is None else min(self._length, content_length)
        position = 0
        while position < end:
            want = min(SLICE, end - position)
            data = await anyio.to_thread.run_sync(os.pread, self._fd, want, position)
            if len(data) != want:
                raise _FileShrank(position + len(data))
            await writer.write(data)
            position += want
            if self._progress is not None:
                self._progress(want)


class _FileShrank(Exception):
    """The file ended before the size the request announced."""


def form(
    grant: Grant, object_key: str, key: SSECustomerKey, body: payload.Payload
) -> aiohttp.MultipartWriter:
    """The multipart form: the grant's fields in their order (`key` set to the object key),
    the SSE-C key field, then the file, last as S3 requires."""
    writer = aiohttp.MultipartWriter("form-data")
    fields = dict(grant.fields)
    fields["key"] = object_key
    fields[KEY_FIELD] = key.export_base64()
    for name, value in fields.items():
        part = writer.append(value, {"Content-Type": "text/plain; charset=utf-8"})
        part.set_content_disposition("form-data", name=name)
    writer.append_payload(body).set_content_disposition(
        "form-data", name="file", filename=body.filename or "file"
    )
    return writer


def _text(root: ET.Element, name: str) -> str | None:
    """A child element's text, with or without the S3 namespace."""
    for child in root:
        if child.tag.rsplit("}", 1)[-1] == name:
            return (child.text or "").strip()
    return None


def _xml(body: bytes) -> ET.Element | None:
    """The answer's XML root, None if it is not XML. The answer comes from the grant's own
    endpoint over verified TLS, and Python's expat refuses external entities and entity
    expansion bombs, so the standard parser is enough here."""
    try:
        return ET.fromstring(body)  # noqa: S314 - see the docstring
    except ET.ParseError:
        return None


def parse_post_response(body: bytes) -> dict[str, str | None]:
    """Bucket, Key, ETag and Location from a PostResponse (an empty dict if it is none)."""
    root = _xml(body)
    if root is None:
        return {}
    if root.tag.rsplit("}", 1)[-1] != "PostResponse":
        return {}
    return {name: _text(root, name) for name in ("Bucket", "Key", "ETag", "Location")}


def parse_error(body: bytes) -> tuple[str | None, str | None, str | None]:
    """Code, Message and RequestId of an S3 error answer (None where there is none)."""
    root = _xml(body)
    if root is None:
        return None, None, None
    return _text(root, "Code"), _text(root, "Message"), _text(root, "RequestId")


def refusal(
    status: int, code: str | None, message: str | None, ctx: ErrorContext, grant: Grant
) -> SSECTransferError:
    """The server's refusal of a POST as one clear error. What each server answers is in the
    README's server-differences table; the grant was checked locally first, so these mostly
    mean a grant edited by hand or a clock far off."""
    text = (message or "").strip()
    said = f"{code or f'HTTP {status}'}" + (f": {text}" if text else "")
    lowered = text.lower()
    if status == 400 and (
        code == "InvalidArgument" or "md5" in lowered or "encryption key" in lowered
    ):
        return WrongKeyError(
            f"the server refused the SSE-C key ({said}): it is not the key the grant pins",
            hint="give the key file the grant was made for",
            context=ctx,
        )
    if code == "EntityTooLarge" or code == "EntityTooSmall":
        return AccessDeniedError(
            f"the file is outside the grant's size range ({said})",
            hint=f"the grant accepts {grant.min_size}..{grant.max_size} bytes; ask for a grant "
            "with a larger --max-size",
            context=ctx,
        )
    if code == "SignatureDoesNotMatch":
        return AccessDeniedError(
            f"the server refused the grant's signature ({said}): the grant was changed after "
            "it was signed, or the credentials that signed it were changed or removed",
            hint=f"use the grant file as it was sent, or ask for a new one ({grant.source})",
            context=ctx,
        )
    if code == "InvalidAccessKeyId":
        return AccessDeniedError(
            f"the server does not know the credentials that signed the grant ({said})",
            hint="they were removed, or the grant is for another server: ask for a new grant",
            context=ctx,
        )
    if code == "NoSuchBucket":
        return NoSuchBucketError(
            f"bucket {grant.bucket!r} does not exist ({said})",
            hint="the grant is for a bucket that is gone: ask for a new grant",
            context=ctx,
        )
    if status == 403 or code == "AccessDenied":
        if "expired" in lowered:
            what = "the grant has expired (by the server's clock)"
            hint = "ask for a new grant; if it should still be valid, check this machine's clock"
        elif "condition" in lowered or "policy" in lowered:
            what = "the upload does not meet the grant's conditions (prefix, size or fields)"
            hint = (f"objects must go under {grant.prefix!r}, in {grant.min_size}.."
                    f"{grant.max_size} bytes; use the grant file as it was sent")  # fmt: skip
        elif not text:  # Ceph RGW names no reason for an expired or edited policy
            what = (
                "the server refused the upload without saying why: the grant may have expired "
                "by the server's clock, been changed after it was signed, or its signer lost "
                "access"
            )
            hint = "use the grant file as it was sent and check this machine's clock; else ask "
            hint += "for a new grant"
        else:
            what = "the server refused the upload"
            hint = "the credentials that signed the grant may lack PutObject rights: ask its giver"
        return AccessDeniedError(f"{what} ({said})", hint=hint, context=ctx)
    return TransferFailedError(
        f"the server refused the upload ({said})",
        hint="try again later; if it persists, tell whoever gave you the grant",
        context=ctx,
    )


async def post_file(
    session: aiohttp.ClientSession,
    grant: Grant,
    path: str,
    object_key: str,
    key: SSECustomerKey,
    *,
    progress: Progress | None = None,
    policy: RetryPolicy | None = None,
) -> PostResult:
    """POST `path` as `object_key` under `key` through `grant`. No local checks of the grant
    here (the caller makes them, `share.grant`); this refuses only http:// and verifies the
    answer. A broken connection or a busy server (`TRANSIENT_STATUS`) is retried with backoff
    (a POST of the same name replaces the object, so a repeat is safe); a refusal is not. A
    file that changed while it was sent fails (LocalIOError): the object may exist."""
    ctx = ErrorContext(OPERATION, grant.bucket, object_key)
    if not grant.url.lower().startswith("https://"):
        raise InsecureEndpointError(
            f"refusing to send an SSE-C key to {grant.url}: not HTTPS", context=ctx
        )
    started = time.perf_counter()
    sent = 0

    def counted(n: int) -> None:
        nonlocal sent
        sent += n
        if progress is not None:
            progress(n)

    def rewind() -> None:
        nonlocal sent
        if progress is not None and sent:
            progress(-sent)
        sent = 0

    async def attempt() -> PostResult:
        return await _post_once(session, grant, path, object_key, key, counted, started)

    return await with_retries(attempt, what=f"post: {path}", policy=policy, rewind=rewind)


async def _post_once(
    session: aiohttp.ClientSession,
    grant: Grant,
    path: str,
    object_key: str,
    key: SSECustomerKey,
    progress: Progress,
    started: float,
) -> PostResult:
    ctx = ErrorContext(OPERATION, grant.bucket, object_key)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise LocalIOError(f"cannot read {path}: {exc.strerror}", context=ctx) from None
    try:
        before = Snapshot.of(path)
        body = _FilePayload(fd, before.size, os.path.basename(path), progress)
        data = form(grant, object_key, key, body)
        try:
            async with session.post(grant.url, data=data) as response:
                answer = await response.read()
                status = response.status
                request_id = response.headers.get("x-amz-request-id")
        except _FileShrank as exc:
            raise LocalIOError(
                f"{path} shrank to {exc.args[0]} bytes while it was being sent; the upload was "
                "cut off, so the server stored nothing",
                hint="post it again once the file is complete",
                context=ctx,
            ) from None
        except aiohttp.ClientConnectorCertificateError:
            raise EndpointError(
                f"the TLS certificate of {grant.url} could not be verified; nothing was sent",
                hint="give the CA that signed it with --ca-bundle PEM",
                context=ctx,
            ) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise Retryable(
                EndpointError(
                    f"the POST to {grant.url} failed: {type(exc).__name__}: {exc}",
                    hint="check the network and, for a private CA, --ca-bundle; then post again",
                    context=ctx,
                )
            ) from None
        after = Snapshot.of(path)
    finally:
        os.close(fd)
    ctx = ErrorContext(OPERATION, grant.bucket, object_key, status=status, request_id=request_id)
    if status != 201:
        code, message, rid = parse_error(answer)
        if rid and not request_id:
            ctx = ErrorContext(OPERATION, grant.bucket, object_key, status=status, request_id=rid)
        refused = refusal(status, code, message, ctx, grant)
        if status in TRANSIENT_STATUS:
            raise Retryable(refused)
        raise refused
    stored = parse_post_response(answer)
    if stored.get("Bucket") != grant.bucket or stored.get("Key") != object_key:
        raise IntegrityError(
            f"the server answered 201 but named {stored.get('Bucket')!r}/{stored.get('Key')!r}, "
            f"not the object sent",
            hint="check the object with whoever gave you the grant before relying on it",
            context=ctx,
        )
    if after != before:
        raise LocalIOError(
            f"{path} changed while it was being sent (size or modification time); the object "
            f"{object_key} may exist now with a mix of old and new bytes",
            hint="post it again once the file is no longer being written",
            context=ctx,
        )
    return PostResult(
        bucket=grant.bucket,
        key=object_key,
        etag=stored.get("ETag") or None,
        location=stored.get("Location"),
        size=before.size,
        seconds=time.perf_counter() - started,
    )
