"""What a user sees when the server (or the network) says no: the error-translation table.

Each row is one answer a real server gives, and the error the tool turns it into: the class,
the exit code the CLI returns for it, a message naming the operation and the object, and a
hint. The servers disagree on how they say "wrong key" (AWS and SeaweedFS: 403 AccessDenied;
Ceph RGW: 400 with "The calculated MD5 hash of the key did not match"); reads settle it with a
key-less HEAD (`diagnose_key_failure`), tested at the end with a fake client.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import aiohttp
import botocore.exceptions as bx
import pytest

from ssec_transfer.cli import main as cli
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
from ssec_transfer.engine import TransferEngine
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.errors import (
    KEY_HINT,
    diagnose_key_failure,
    error_code,
    status_of,
    translate,
    translated,
)
from tests.support.json_schema import validate_lines

BUCKET, KEY = "products", "l1/scene.nc"
URL = f"s3://{BUCKET}/{KEY}"
REQUEST_ID = "tx000000000000000000001-0065f0a1b2"
RAW_KEY = secrets.token_bytes(32)
KEY_MATERIAL = SSECustomerKey(RAW_KEY)

# The texts the servers really send (ceph/src/rgw/rgw_crypt.cc, AWS documentation).
CEPH_WRONG_KEY = "The calculated MD5 hash of the key did not match the hash that was provided."
AWS_MISSING_KEY = (
    "The object was stored using a form of Server Side Encryption. The correct parameters "
    "must be provided to retrieve the object."
)
CEPH_MISSING_KEY = (
    "Requests specifying Server Side Encryption with Customer provided keys must provide an "
    "appropriate secret key."
)
NOT_APPLICABLE = "The encryption parameters are not applicable to this object."
BLOCKED = "Server-side encryption with customer-provided keys (SSE-C) is blocked for this bucket"


def client_error(
    status: int, code: str, message: str, operation: str = "GetObject"
) -> bx.ClientError:
    """A ClientError shaped like botocore's: HEAD errors have no body, so Code is the status
    and Message the reason phrase."""
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {
            "HTTPStatusCode": status,
            "RequestId": REQUEST_ID,
            "HTTPHeaders": {"x-amz-request-id": REQUEST_ID},
        },
    }
    return bx.ClientError(response, operation)  # type: ignore[arg-type]


def assert_user_facing(err: SSECTransferError, operation: str, *, status: int | None) -> None:
    """The message names the operation and the object, and nothing secret."""
    text = str(err)
    assert text.startswith(f"{operation} {URL}: "), text
    assert err.context.operation == operation
    assert err.context.url == URL
    if status is not None:
        assert f"HTTP {status}" in text
        assert REQUEST_ID in text
    as_json = json.dumps(err.to_dict())
    for secret in (KEY_MATERIAL.export_base64(), RAW_KEY.hex(), repr(RAW_KEY)[2:-1]):
        assert secret not in text
        assert secret not in as_json


# -- the table: what a server answers -> what the user gets ------------------------------------

# (id, operation, HTTP status, S3 code, server message, key sent, writing, error class, exit code)
CLIENT_ERRORS = [
    # Wrong key: the servers disagree. A 403 alone cannot tell a wrong key from missing
    # permissions (reads then ask `diagnose_key_failure`); Ceph's 400 text names the key.
    ("wrong key, AWS/SeaweedFS GET", "GetObject", 403, "AccessDenied", "Access Denied",
     True, False, AccessDeniedError, 1),
    ("wrong key, AWS/SeaweedFS HEAD (no body)", "HeadObject", 403, "403", "Forbidden",
     True, False, AccessDeniedError, 1),
    ("wrong key, Ceph GET", "GetObject", 400, "InvalidArgument", CEPH_WRONG_KEY,
     True, False, WrongKeyError, 3),
    ("wrong key, Ceph UploadPart", "UploadPart", 400, "InvalidArgument", CEPH_WRONG_KEY,
     True, True, WrongKeyError, 3),
    ("key for a plain object", "GetObject", 400, "InvalidRequest", NOT_APPLICABLE,
     True, False, UnexpectedKeyError, 3),
    # AWS BlockedEncryptionTypes (default for new buckets since April 2026): 403 on writes.
    ("SSE-C blocked, message says so", "PutObject", 403, "AccessDenied", BLOCKED,
     True, True, SSECBlockedError, 3),
    ("SSE-C blocked, bare Access Denied", "CreateMultipartUpload", 403, "AccessDenied",
     "Access Denied", True, True, AccessDeniedError, 1),
    ("403 on a read mentioning encryption", "GetObject", 403, "AccessDenied", BLOCKED,
     True, False, AccessDeniedError, 1),
    ("bad access key", "PutObject", 403, "InvalidAccessKeyId",
     "The AWS Access Key Id you provided does not exist in our records.",
     True, True, AccessDeniedError, 1),
    ("bad secret key", "GetObject", 403, "SignatureDoesNotMatch",
     "The request signature we calculated does not match the signature you provided.",
     True, False, AccessDeniedError, 1),
    # Not found.
    ("404 NoSuchKey", "GetObject", 404, "NoSuchKey", "The specified key does not exist.",
     True, False, NoSuchObjectError, 1),
    ("404 HEAD (no body)", "HeadObject", 404, "404", "Not Found",
     True, False, NoSuchObjectError, 1),
    ("404 NoSuchBucket", "PutObject", 404, "NoSuchBucket", "The specified bucket does not exist",
     True, True, NoSuchBucketError, 1),
    # The object changed under a pinned read (If-Match).
    ("412 PreconditionFailed", "GetObject", 412, "PreconditionFailed",
     "At least one of the pre-conditions you specified did not hold",
     True, False, ObjectChangedError, 1),
    ("412 HEAD (no body)", "HeadObject", 412, "412", "Precondition Failed",
     True, False, ObjectChangedError, 1),
    # The server is overloaded or failing.
    ("503 SlowDown", "UploadPart", 503, "SlowDown", "Please reduce your request rate.",
     True, True, TransferFailedError, 1),
    ("500 InternalError", "GetObject", 500, "InternalError",
     "We encountered an internal error. Please try again.",
     True, False, TransferFailedError, 1),
    ("501 NotImplemented", "UploadPartCopy", 501, "NotImplemented",
     "A header you provided implies functionality that is not implemented",
     True, True, TransferFailedError, 1),
]  # fmt: skip

# Answers the catch-all translates: the class and exit code are right, the hint is missing.
FALLBACK_CLIENT_ERRORS = [
    # The MD5 text without a key sent is not about our key.
    ("MD5 text, no key sent", "GetObject", 400, "InvalidArgument", CEPH_WRONG_KEY,
     False, False, TransferFailedError, 1),
    ("missing key, AWS GET", "GetObject", 400, "InvalidRequest", AWS_MISSING_KEY,
     False, False, TransferFailedError, 1),
    ("missing key, Ceph/SeaweedFS GET", "GetObject", 400, "InvalidArgument", CEPH_MISSING_KEY,
     False, False, TransferFailedError, 1),
    ("411 MissingContentLength (Ceph, streamed checksums)", "PutObject", 411,
     "MissingContentLength", "You must provide the Content-Length HTTP header.",
     True, True, TransferFailedError, 1),
    ("404 NoSuchVersion", "GetObject", 404, "NoSuchVersion",
     "The specified version does not exist.", True, False, NoSuchVersionError, 1),
]  # fmt: skip


def _rows(rows: list[tuple[Any, ...]], *marks: pytest.MarkDecorator) -> list[Any]:
    return [pytest.param(*row[1:], id=row[0], marks=marks) for row in rows]


ROW_NAMES = "operation,status,code,message,key_sent,writing,expected,exit_code"


@pytest.mark.parametrize(ROW_NAMES, _rows(CLIENT_ERRORS) + _rows(FALLBACK_CLIENT_ERRORS))
def test_server_answer_becomes_one_clear_error(
    operation: str,
    status: int,
    code: str,
    message: str,
    key_sent: bool,
    writing: bool,
    expected: type[SSECTransferError],
    exit_code: int,
) -> None:
    exc = client_error(status, code, message, operation)
    err = translate(exc, ErrorContext(operation, BUCKET, KEY), key_sent=key_sent, writing=writing)
    assert type(err) is expected
    assert err.exit_code == exit_code
    assert err.to_dict()["exit_code"] == exit_code
    assert err.context.status == status
    assert err.context.request_id == REQUEST_ID
    assert_user_facing(err, operation, status=status)
    assert error_code(exc) == code
    assert status_of(exc) == status


@pytest.mark.parametrize(ROW_NAMES, _rows(CLIENT_ERRORS) + _rows(FALLBACK_CLIENT_ERRORS))
def test_every_translated_server_answer_carries_a_hint(
    operation: str,
    status: int,
    code: str,
    message: str,
    key_sent: bool,
    writing: bool,
    expected: type[SSECTransferError],
    exit_code: int,
) -> None:
    exc = client_error(status, code, message, operation)
    err = translate(exc, ErrorContext(operation, BUCKET, KEY), key_sent=key_sent, writing=writing)
    assert err.hint
    assert f"\n  hint: {err.hint}" in str(err)


def test_wrong_key_hint_points_at_the_fingerprint() -> None:
    err = translate(
        client_error(400, "InvalidArgument", CEPH_WRONG_KEY),
        ErrorContext("GetObject", BUCKET, KEY),
        key_sent=True,
    )
    assert err.hint == KEY_HINT
    assert "ssec-transfer head" in str(err)


def test_blocked_writes_name_the_bucket_setting() -> None:
    """Blocked SSE-C writes must point at the bucket's encryption configuration, whether or
    not the server's 403 says why."""
    ctx = ErrorContext("PutObject", BUCKET, KEY)
    explicit = translate(
        client_error(403, "AccessDenied", BLOCKED, "PutObject"), ctx, key_sent=True, writing=True
    )
    bare = translate(
        client_error(403, "AccessDenied", "Access Denied", "PutObject"),
        ctx,
        key_sent=True,
        writing=True,
    )
    read = translate(client_error(403, "AccessDenied", "Access Denied"), ctx, key_sent=True)
    assert explicit.message == "the bucket blocks SSE-C writes"
    assert explicit.hint is not None
    assert "BlockedEncryptionTypes" in explicit.hint
    assert bare.hint is not None
    assert "BlockedEncryptionTypes" in bare.hint
    assert read.hint is not None
    assert "BlockedEncryptionTypes" not in read.hint


def test_server_message_is_shown_but_a_bare_status_is_not_repeated() -> None:
    ctx = ErrorContext("GetObject", BUCKET, KEY)
    slow = translate(client_error(503, "SlowDown", "Please reduce your request rate."), ctx,
                     key_sent=True)  # fmt: skip
    head = translate(client_error(503, "503", "503", "HeadObject"), ctx, key_sent=True)
    assert slow.message == "server error SlowDown: Please reduce your request rate."
    assert head.message == "server error 503"


def test_part_number_is_named() -> None:
    err = translate(
        client_error(503, "SlowDown", "Please reduce your request rate.", "UploadPart"),
        ErrorContext("UploadPart", BUCKET, KEY, part=7),
        key_sent=True,
        writing=True,
    )
    assert str(err).startswith(f"UploadPart {URL} part 7: server error SlowDown")


def test_server_request_id_wins_over_the_context() -> None:
    err = translate(
        client_error(404, "NoSuchKey", "The specified key does not exist."),
        ErrorContext("GetObject", BUCKET, KEY, request_id="earlier"),
        key_sent=True,
    )
    assert err.context.request_id == REQUEST_ID


# -- the network and the local configuration ---------------------------------------------------

ENDPOINT = "https://s3.example.test"

# (id, exception, error class, exit code, words the user reads)
OTHER_FAILURES = [
    ("connection refused", bx.EndpointConnectionError(endpoint_url=ENDPOINT),
     EndpointError, 1, "cannot connect to the endpoint"),
    ("connect timeout", bx.ConnectTimeoutError(endpoint_url=ENDPOINT),
     NoAnswerError, 1, "no answer from s3.example.test while connecting"),
    ("untrusted certificate", bx.SSLError(endpoint_url=ENDPOINT, error="CERTIFICATE_VERIFY_FAILED"),
     EndpointError, 1, "TLS certificate could not be verified"),
    ("read timeout", bx.ReadTimeoutError(endpoint_url=ENDPOINT),
     NoAnswerError, 1, "no answer from s3.example.test"),
    ("body stream broke", bx.ResponseStreamingError(error="Connection reset by peer"),
     TransferFailedError, 1, "the connection broke during the transfer (ResponseStreamingError)"),
    ("aiohttp payload cut", aiohttp.ClientPayloadError("Response payload is not completed"),
     TransferFailedError, 1, "the connection broke during the transfer (ClientPayloadError)"),
    ("aiohttp server disconnected", aiohttp.ServerDisconnectedError(),
     TransferFailedError, 1, "the connection broke during the transfer (ServerDisconnectedError)"),
    ("no credentials", bx.NoCredentialsError(),
     CredentialsError, 2, "no S3 credentials found"),
    ("partial credentials",
     bx.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
     CredentialsError, 2, "no S3 credentials found"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("exc", "expected", "exit_code", "words"),
    [pytest.param(*row[1:], id=row[0]) for row in OTHER_FAILURES],
)
def test_network_and_configuration_failures(
    exc: BaseException, expected: type[SSECTransferError], exit_code: int, words: str
) -> None:
    err = translate(exc, ErrorContext("GetObject", BUCKET, KEY), key_sent=True)
    assert type(err) is expected
    assert err.exit_code == exit_code
    assert words in err.message
    assert err.hint
    assert_user_facing(err, "GetObject", status=None)


def test_tls_failure_suggests_the_ca_bundle() -> None:
    err = translate(
        bx.SSLError(endpoint_url=ENDPOINT, error="CERTIFICATE_VERIFY_FAILED"),
        ErrorContext("connect"),
        key_sent=False,
    )
    assert err.hint is not None
    assert "--ca-bundle" in err.hint


def test_connection_closed_reads_like_the_other_broken_connections() -> None:
    """botocore's ConnectionClosedError (a retried body error, like ReadTimeoutError) reads
    like the other broken connections, with a hint."""
    err = translate(
        bx.ConnectionClosedError(endpoint_url=ENDPOINT),
        ErrorContext("GetObject", BUCKET, KEY),
        key_sent=True,
    )
    assert type(err) is TransferFailedError
    assert err.hint


def test_unknown_profile_is_a_usage_error() -> None:
    err = translate(bx.ProfileNotFound(profile="eumetsat"), ErrorContext("connect"), key_sent=False)
    assert type(err) is UsageError
    assert err.exit_code == 2
    assert "eumetsat" in err.message
    assert err.hint is not None
    assert "list-profiles" in err.hint


def test_anything_else_becomes_a_transfer_failure_naming_the_object() -> None:
    err = translate(RuntimeError("boom"), ErrorContext("GetObject", BUCKET, KEY), key_sent=True)
    assert type(err) is TransferFailedError
    assert err.exit_code == 1
    assert str(err) == f"GetObject {URL}: RuntimeError: boom"


def test_tool_errors_pass_through_unchanged() -> None:
    original = WrongKeyError("the key does not match this object", hint=KEY_HINT)
    assert translate(original, ErrorContext("GetObject", BUCKET, KEY), key_sent=True) is original


# -- translated(): the context manager used around each request --------------------------------


def test_translated_raises_the_tool_error_with_the_cause_kept() -> None:
    exc = client_error(412, "PreconditionFailed", "At least one of the pre-conditions failed")
    with (
        pytest.raises(ObjectChangedError) as raised,
        translated(ErrorContext("GetObject", BUCKET, KEY), key_sent=True),
    ):
        raise exc
    assert raised.value.__cause__ is exc
    assert str(raised.value).startswith(f"GetObject {URL}: the object changed")


def test_translated_passes_writing_on() -> None:
    with (
        pytest.raises(SSECBlockedError),
        translated(ErrorContext("PutObject", BUCKET, KEY), key_sent=True, writing=True),
    ):
        raise client_error(403, "AccessDenied", BLOCKED, "PutObject")


def test_translated_catches_aiohttp_errors() -> None:
    with (
        pytest.raises(TransferFailedError, match="connection broke"),
        translated(ErrorContext("GetObject", BUCKET, KEY), key_sent=True),
    ):
        raise aiohttp.ServerDisconnectedError()


def test_translated_leaves_tool_errors_and_other_exceptions_alone() -> None:
    ctx = ErrorContext("GetObject", BUCKET, KEY)
    original = NoSuchObjectError("object does not exist", context=ctx)
    with pytest.raises(NoSuchObjectError) as raised, translated(ctx, key_sent=True):
        raise original
    assert raised.value is original
    with pytest.raises(ValueError, match="not an S3 failure"), translated(ctx, key_sent=True):
        raise ValueError("not an S3 failure")


def test_error_code_and_status_of_anything_else_are_none() -> None:
    exc = bx.EndpointConnectionError(endpoint_url=ENDPOINT)
    assert error_code(exc) is None
    assert status_of(exc) is None
    assert error_code(ValueError("x")) is None
    bare = bx.ClientError({}, "GetObject")  # type: ignore[arg-type]
    assert error_code(bare) == ""
    assert status_of(bare) is None


# -- the exit code a user's shell sees ---------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`main` reconfigures logging for the process; put it back afterwards."""
    root = logging.getLogger()
    ours = logging.getLogger("ssec_transfer")
    saved = (list(root.handlers), root.level, ours.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    ours.setLevel(saved[2])


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    ("exc", "key_sent", "writing", "exit_code"),
    [
        pytest.param(client_error(400, "InvalidArgument", CEPH_WRONG_KEY), True, False, 3,
                     id="wrong key -> 3"),
        pytest.param(client_error(403, "AccessDenied", BLOCKED, "PutObject"), True, True, 3,
                     id="SSE-C blocked -> 3"),
        pytest.param(client_error(404, "NoSuchKey", "The specified key does not exist."),
                     True, False, 1, id="not found -> 1"),
        pytest.param(client_error(503, "SlowDown", "Please reduce your request rate."),
                     True, False, 1, id="server error -> 1"),
        pytest.param(bx.NoCredentialsError(), False, False, 2, id="no credentials -> 2"),
    ],
)  # fmt: skip
def test_cli_exits_with_the_class_exit_code(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException,
    key_sent: bool,
    writing: bool,
    exit_code: int,
) -> None:
    """The CLI turns the translated error into its exit code, the message on stderr and,
    with --json, an error object on stdout."""
    err = translate(exc, ErrorContext("GetObject", BUCKET, KEY), key_sent=key_sent,
                    writing=writing)  # fmt: skip

    async def failing(self: TransferEngine) -> TransferEngine:
        raise err

    # Every command goes through `async with TransferEngine(...)`: fail right there.
    monkeypatch.setattr(TransferEngine, "__aenter__", failing)
    assert cli.main(["ls", f"s3://{BUCKET}/", "--json"]) == exit_code
    out, stderr = capsys.readouterr()
    assert stderr.startswith(f"ssec-transfer: error: GetObject {URL}: ")
    assert "\n  hint: " in stderr
    [reported] = validate_lines(out)
    assert (reported["type"], reported["command"]) == ("error", "ls")
    assert reported["error_type"] == type(err).__name__
    assert reported["exit_code"] == exit_code
    assert (reported["request"], reported["bucket"], reported["key"]) == ("GetObject", BUCKET,
                                                                         KEY)  # fmt: skip
    assert reported["error"] == stderr.removeprefix("ssec-transfer: error: ").split("\n")[0]
    assert reported["hint"] == err.hint
    assert (reported["http_status"], reported["request_id"]) == (
        err.context.status,
        err.context.request_id,
    )
    assert KEY_MATERIAL.export_base64() not in out + stderr


# -- diagnose_key_failure: a key-less HEAD settles what a 400/403 read meant -------------------


class FakeHeadClient:
    """Answers head_object the way a server does for an object, and records what was asked."""

    def __init__(self, answer: dict[str, Any] | BaseException) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    async def head_object(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


SSEC_HEAD = {"ContentLength": 10, "SSECustomerAlgorithm": "AES256"}
PLAIN_HEAD = {"ContentLength": 10}

# (id, the key-less HEAD's answer, key sent with the failed read, what the user gets)
DIAGNOSES = [
    ("SSE-C object, key sent: wrong key", client_error(400, "400", "Bad Request", "HeadObject"),
     True, WrongKeyError),
    ("SSE-C object, no key: missing key", client_error(400, "400", "Bad Request", "HeadObject"),
     False, MissingKeyError),
    ("HEAD forbidden too: permissions", client_error(403, "403", "Forbidden", "HeadObject"),
     True, AccessDeniedError),
    ("gone meanwhile", client_error(404, "404", "Not Found", "HeadObject"),
     True, NoSuchObjectError),
    ("plain object, key sent: unexpected key", PLAIN_HEAD, True, UnexpectedKeyError),
]  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "key_sent", "expected"), [pytest.param(*row[1:], id=row[0]) for row in DIAGNOSES]
)
async def test_key_failure_diagnosis(
    answer: dict[str, Any] | BaseException, key_sent: bool, expected: type[SSECTransferError]
) -> None:
    client = FakeHeadClient(answer)
    ctx = ErrorContext("GetObject", BUCKET, KEY)
    err = await diagnose_key_failure(client, ctx, key_sent=key_sent, version_id=None)
    assert type(err) is expected
    assert err.hint
    assert_user_facing(err, "GetObject", status=404 if expected is NoSuchObjectError else None)
    # The question is asked without any key.
    assert client.calls == [{"Bucket": BUCKET, "Key": KEY}]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(SSEC_HEAD, id="the object reads with no key: not the key's fault"),
        pytest.param(client_error(500, "500", "Internal Server Error", "HeadObject"),
                     id="server error: undecided"),
        pytest.param(bx.EndpointConnectionError(endpoint_url=ENDPOINT),
                     id="network down: undecided"),
    ],
)  # fmt: skip
async def test_key_failure_diagnosis_undecided(answer: dict[str, Any] | BaseException) -> None:
    """No verdict: the caller then reports the original failure."""
    client = FakeHeadClient(answer)
    ctx = ErrorContext("GetObject", BUCKET, KEY)
    assert await diagnose_key_failure(client, ctx, key_sent=True, version_id=None) is None


@pytest.mark.anyio
async def test_key_failure_diagnosis_asks_about_the_same_version() -> None:
    client = FakeHeadClient(client_error(400, "400", "Bad Request", "HeadObject"))
    ctx = ErrorContext("GetObject", BUCKET, KEY)
    err = await diagnose_key_failure(client, ctx, key_sent=True, version_id="v-42")
    assert isinstance(err, WrongKeyError)
    assert client.calls == [{"Bucket": BUCKET, "Key": KEY, "VersionId": "v-42"}]


@pytest.mark.anyio
async def test_wrong_key_is_reported_the_same_on_every_server() -> None:
    """AWS/SeaweedFS (403) and Ceph (400 with the MD5 text) fail a wrong-key GET differently;
    after the key-less HEAD (400 on every server for an SSE-C object) the user sees the same
    error, with exit code 3."""
    ctx = ErrorContext("GetObject", BUCKET, KEY)
    head_says = client_error(400, "400", "Bad Request", "HeadObject")
    seen = []
    for get_says in (
        client_error(403, "AccessDenied", "Access Denied"),
        client_error(400, "InvalidArgument", CEPH_WRONG_KEY),
    ):
        assert status_of(get_says) in (400, 403)  # what makes the caller diagnose
        err = await diagnose_key_failure(
            FakeHeadClient(head_says), ctx, key_sent=True, version_id=None
        )
        assert err is not None
        seen.append((type(err), err.exit_code, str(err)))
    assert seen[0] == seen[1]
    assert seen[0][:2] == (WrongKeyError, 3)
