"""Translate botocore failures into the tool's errors, once, at the boundary.

Servers disagree on how they say "wrong key": AWS and SeaweedFS answer 403 AccessDenied, Ceph
RGW answers 400 with "The calculated MD5 hash of the key did not match". HEAD responses have no
body at all. So for a read that fails with 400/403, `diagnose_key_failure` asks the server one
more question — a HEAD without any key — and decides from that answer, the same way on every
server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import botocore.exceptions as bx

from ssec_transfer.core.errors import (
    AccessDeniedError,
    CredentialsError,
    EndpointError,
    ErrorContext,
    MissingKeyError,
    NoAnswerError,
    NoSuchBucketError,
    NoSuchObjectError,
    NoSuchVersionError,
    ObjectChangedError,
    SSECBlockedError,
    SSECTransferError,
    TransferFailedError,
    UnexpectedKeyError,
    UsageError,
    WrongKeyError,
)
from ssec_transfer.s3.timeouts import Attempts, WriteStalled, attempts_of, host_of

# What a response body (or a request body on its way) can fail with after the headers.
BODY_ERRORS: tuple[type[BaseException], ...] = (
    bx.ResponseStreamingError,
    bx.ReadTimeoutError,
    bx.IncompleteReadError,
    bx.ConnectionClosedError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientConnectionError,
    TimeoutError,
    ConnectionError,
)

KEY_HINT = "use the key this object was uploaded with (`ssec-transfer head` shows its fingerprint)"


def _error_fields(exc: bx.ClientError) -> tuple[str, str, int | None, str | None]:
    response: dict[str, Any] = exc.response
    error = response.get("Error", {})
    meta = response.get("ResponseMetadata", {})
    status = meta.get("HTTPStatusCode")
    request_id = meta.get("RequestId") or meta.get("HTTPHeaders", {}).get("x-amz-request-id")
    return str(error.get("Code", "")), str(error.get("Message", "")), status, request_id


# What servers answer when the bytes of a request did not match its checksum.
CORRUPTION_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"})


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, bx.ClientError):
        return _error_fields(exc)[0]
    return None


def status_of(exc: BaseException) -> int | None:
    if isinstance(exc, bx.ClientError):
        return _error_fields(exc)[2]
    return None


def translate(
    exc: BaseException, ctx: ErrorContext, *, key_sent: bool, writing: bool = False
) -> SSECTransferError:
    """Map a botocore/aiohttp failure to one clear error naming the operation and object."""
    if isinstance(exc, SSECTransferError):
        return exc
    if isinstance(exc, bx.ClientError):
        code, message, status, request_id = _error_fields(exc)
        ctx = ErrorContext(
            ctx.operation, ctx.bucket, ctx.key, ctx.part, status, request_id or ctx.request_id
        )
        return _translate_client_error(code, message, status, ctx, key_sent, writing)
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return CredentialsError(
            "no S3 credentials found",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use --profile with a "
            "profile from ~/.aws/credentials",
            context=ctx,
        )
    if isinstance(exc, bx.ProfileNotFound):
        return UsageError(str(exc), hint="list profiles with `aws configure list-profiles`")
    if isinstance(exc, bx.SSLError):
        return EndpointError(
            "the endpoint's TLS certificate could not be verified",
            hint="if the server uses a private CA, pass --ca-bundle CA.pem (or AWS_CA_BUNDLE)",
            context=ctx,
        )
    if isinstance(exc, bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return no_answer(exc, ctx)
    if isinstance(exc, bx.EndpointConnectionError):
        return EndpointError(
            f"cannot connect to the endpoint ({exc})",
            hint="check --endpoint-url and the network; the transfer can be rerun safely",
            context=ctx,
        )
    if isinstance(
        exc,
        bx.ReadTimeoutError
        | bx.ResponseStreamingError
        | bx.ConnectionError
        | bx.ConnectionClosedError
        | aiohttp.ClientError
        | TimeoutError
        | ConnectionError,
    ):
        return TransferFailedError(
            f"the connection broke during the transfer ({type(exc).__name__})",
            hint="rerun the command; nothing partial was kept",
            context=ctx,
        )
    return TransferFailedError(f"{type(exc).__name__}: {exc}", context=ctx)


def no_answer(
    exc: bx.ConnectTimeoutError | bx.ReadTimeoutError,
    ctx: ErrorContext,
    record: Attempts | None = None,
) -> NoAnswerError:
    """A request the server left unanswered: where, how long it waited, what to change.
    `record` (else the one botocore's attempts left on `exc`, see `s3.timeouts`) says how
    many attempts it made and whether the bound per request stopped them."""
    record = record or attempts_of(exc)
    host = record.host if record else host_of(exc.kwargs.get("endpoint_url"))
    rerun = "the command can be rerun safely"
    if isinstance(exc, bx.ConnectTimeoutError):
        what = f"no answer from {host} while connecting"
        each = f"{record.connect_timeout:g} s (--connect-timeout)" if record else ""
        hint = (
            "check --endpoint-url (host and port), that the server is up and that no firewall "
            f"drops the connection; on a slow link raise --connect-timeout; {rerun}"
        )
    else:
        stalled = isinstance(exc.kwargs.get("error"), WriteStalled)
        what = f"{host} stopped taking data" if stalled else f"no answer from {host}"
        each = f"{record.read_timeout:g} s (--read-timeout)" if record else ""
        if stalled:
            silence = "the server stopped reading the upload: check that it is healthy"
        else:
            silence = (
                "the server accepted the connection but went silent: check that "
                "--endpoint-url is its S3 port and that the server is healthy"
            )
        hint = (
            f"{silence}; on a slow link or a busy server raise --read-timeout (and "
            f"--request-timeout); {rerun}"
        )
    if record is None:
        return NoAnswerError(what, hint=hint, context=ctx)
    tries = f"{record.attempts} attempt{'s' if record.attempts != 1 else ''}"
    message = f"{what}: {tries}, each waiting up to {each}"
    if record.cut:
        message += (
            f"; gave up after {record.silent:.0f} s without progress "
            f"(--request-timeout {record.request_timeout:g})"
        )
    else:
        message += f", {record.silent:.0f} s without progress in all"
    return NoAnswerError(message, hint=hint, context=ctx)


def _translate_client_error(
    code: str, message: str, status: int | None, ctx: ErrorContext, key_sent: bool, writing: bool
) -> SSECTransferError:
    lowered = message.lower()
    if code == "NoSuchBucket":
        return NoSuchBucketError(
            f"bucket {ctx.bucket!r} does not exist",
            hint="check the bucket name and the endpoint",
            context=ctx,
        )
    if code == "NoSuchVersion":
        return NoSuchVersionError(
            "that version does not exist",
            hint="list the object's versions with `ssec-transfer ls --versions`",
            context=ctx,
        )
    if code in ("NoSuchKey", "404") or status == 404:
        return NoSuchObjectError(
            "object does not exist", hint="list the bucket to check the key", context=ctx
        )
    if code in ("PreconditionFailed", "412") or status == 412:
        return ObjectChangedError(
            "the object changed while it was being read",
            hint="rerun to read the new version, or pin one with --version-id",
            context=ctx,
        )
    if "md5" in lowered and "did not match" in lowered and key_sent:
        return WrongKeyError("the key does not match this object", hint=KEY_HINT, context=ctx)
    if "not applicable" in lowered and key_sent:
        return UnexpectedKeyError(
            "a key was given but the object is not SSE-C encrypted",
            hint="read it without --key-file",
            context=ctx,
        )
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return AccessDeniedError(
            f"the server rejected the credentials ({code})",
            hint="check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --profile",
            context=ctx,
        )
    if status == 403 or code in ("AccessDenied", "403"):
        if writing and key_sent and "encrypt" in lowered:
            return SSECBlockedError(
                "the bucket blocks SSE-C writes",
                hint="its owner must allow SSE-C in the bucket's encryption configuration "
                "(AWS BlockedEncryptionTypes, blocking SSE-C by default since April 2026)",
                context=ctx,
            )
        hint = "check the credentials' permissions on this bucket"
        if writing and key_sent:
            hint += (
                "; on AWS, buckets block SSE-C writes by default since April 2026 "
                "(BlockedEncryptionTypes in the bucket encryption configuration)"
            )
        return AccessDeniedError(f"access denied{_detail(message)}", hint=hint, context=ctx)
    if status == 501:
        return TransferFailedError(
            f"the server does not implement this request ({code or status}){_detail(message)}",
            hint="rerunning will not help; `ssec-transfer doctor` shows what this server supports",
            context=ctx,
        )
    if status is not None and status >= 500:
        return TransferFailedError(
            f"server error {code or status}{_detail(message)}",
            hint="the server failed; rerun later",
            context=ctx,
        )
    return TransferFailedError(
        f"{code or 'error'}{_detail(message)}", hint=_fallback_hint(status, key_sent), context=ctx
    )


def _fallback_hint(status: int | None, key_sent: bool) -> str:
    """What to try for an answer no rule above recognised."""
    if status == 400 and not key_sent:
        return (
            "if the object is SSE-C encrypted, pass its key with --key-file FILE or --key-env NAME"
        )
    if status == 411:
        return (
            "the server wants a Content-Length and refuses streamed checksums (Ceph RGW 16); "
            "rerun without --checksum"
        )
    if status is not None and 400 <= status < 500:  # the request itself was refused
        return (
            "the same request will be refused again: check the bucket and object names; "
            "`ssec-transfer doctor` shows what this server accepts"
        )
    return "rerun; if it persists, give the request id to the server's operator"


def _detail(message: str) -> str:
    return f": {message}" if message and not message.isdigit() else ""


async def diagnose_key_failure(
    client: Any,
    ctx: ErrorContext,
    *,
    key_sent: bool,
    version_id: str | None,
    failure: BaseException | None = None,
) -> SSECTransferError | None:
    """Ask the server, with a key-less HEAD, whether a 400/403 read failure is about the key.
    The error returned names the status and request id of `failure`, the answer it explains
    (what a support ticket to the provider needs), not those of the diagnosing HEAD."""
    if isinstance(failure, bx.ClientError):
        _, _, status, request_id = _error_fields(failure)
        ctx = replace(ctx, status=status, request_id=request_id)
    params: dict[str, Any] = {"Bucket": ctx.bucket, "Key": ctx.key}
    if version_id:
        params["VersionId"] = version_id
    try:
        head = await client.head_object(**params)
    except bx.ClientError as exc:
        status = _error_fields(exc)[2]
        if status == 400:  # the object needs a key
            if key_sent:
                return WrongKeyError(
                    "the key does not match this object", hint=KEY_HINT, context=ctx
                )
            return MissingKeyError(
                "the object is SSE-C encrypted and no key was given",
                hint="pass --key-file FILE or --key-env NAME with the object's key",
                context=ctx,
            )
        if status == 403:
            return AccessDeniedError(
                "access denied", hint="check the credentials' permissions", context=ctx
            )
        if status == 404:
            return translate(exc, ctx, key_sent=key_sent)
        return None
    except Exception:
        return None
    if key_sent and "SSECustomerAlgorithm" not in head:
        return UnexpectedKeyError(
            "a key was given but the object is not SSE-C encrypted",
            hint="read it without --key-file",
            context=ctx,
        )
    return None


# What the server or the network can fail a request with; anything else is not ours to translate.
S3_FAILURES: tuple[type[Exception], ...] = (bx.BotoCoreError, bx.ClientError, aiohttp.ClientError)


@contextmanager
def translated(ctx: ErrorContext, *, key_sent: bool, writing: bool = False) -> Iterator[None]:
    """Re-raise any non-tool exception as the matching tool error."""
    try:
        yield
    except SSECTransferError:
        raise
    except S3_FAILURES as exc:
        raise translate(exc, ctx, key_sent=key_sent, writing=writing) from exc
