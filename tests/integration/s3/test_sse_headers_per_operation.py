"""Which SSE-C headers each request really carries, as it leaves for the real server.

A botocore `before-send` hook on the engine's own client records, for every request, the
operation and which of the three `x-amz-server-side-encryption-customer-*` headers and the
three `x-amz-copy-source-server-side-encryption-customer-*` headers it carries; the key value
itself is never kept, only the MD5 of it, so an assertion message never shows a key. The rules:

- every request on an object's data (PUT, GET, HEAD, create/part/complete of a multipart
  upload, copies) carries all three headers, and they agree with each other;
- one object, one key: every part of one upload carries the same key;
- a copy names the old key in the copy-source headers and the new key in the target headers;
- requests that touch no object data (abort, listings) carry none;
- the only key-less HEAD is the diagnosis after a read was refused (`diagnose_key_failure`);
- no key value ever reaches a log record, even with botocore's DEBUG wire logs on.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
import pytest

from ssec_transfer import SSECustomerKey, TransferConfig, TransferEngine
from ssec_transfer.core.plan import MiB
from tests.support.helpers import random_file

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PART = 5 * MiB  # the smallest part S3 allows
TARGET = "x-amz-server-side-encryption-customer-"
SOURCE = "x-amz-copy-source-server-side-encryption-customer-"

# Requests on an object's data: the key goes with every one of them.
KEYED = frozenset(
    {
        "PutObject",
        "GetObject",
        "HeadObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "CopyObject",
        "UploadPartCopy",
    }
)
# Requests that touch no object data: a key there would only be one more copy of it in transit.
KEYLESS = frozenset(
    {
        "AbortMultipartUpload",
        "ListObjectsV2",
        "ListObjectVersions",
        "ListMultipartUploads",
        "DeleteObject",
        "HeadBucket",
    }
)
COPIES = frozenset({"CopyObject", "UploadPartCopy"})


@dataclass(frozen=True)
class SSEHeaders:
    """One request's three SSE-C headers of one kind, the key replaced by its MD5."""

    algorithm: str | None
    key_digest: str | None  # base64 MD5 of the key the `-key` header carried
    key_md5: str | None  # the `-key-MD5` header

    @classmethod
    def of(cls, headers: dict[str, str], prefix: str) -> SSEHeaders:
        key = headers.get(prefix + "key")
        digest = None
        if key is not None:
            try:
                raw = base64.b64decode(key, validate=True)
            except binascii.Error:
                digest = "not base64"
            else:
                digest = base64.b64encode(hashlib.md5(raw).digest()).decode()
        return cls(headers.get(prefix + "algorithm"), digest, headers.get(prefix + "key-md5"))

    @property
    def absent(self) -> bool:
        return self == SSEHeaders(None, None, None)

    def names(self, key: SSECustomerKey) -> bool:
        """All three headers present, consistent, and naming `key`."""
        return self == SSEHeaders("AES256", key.fingerprint, key.fingerprint)


NONE = SSEHeaders(None, None, None)


@dataclass(frozen=True)
class Sent:
    operation: str
    method: str
    object_key: str  # the object's name ("" for bucket-level requests)
    query: str
    target: SSEHeaders
    source: SSEHeaders

    def __str__(self) -> str:  # what an assertion shows: no key, only fingerprints
        return f"{self.operation} {self.object_key!r} target={self.target} source={self.source}"


@dataclass(frozen=True)
class Answered:
    operation: str
    status: int | None


class Recorder:
    """Records every request the client sends and the status of every answer, in order."""

    def __init__(self) -> None:
        self.events: list[Sent | Answered] = []
        self.bucket = ""

    def install(self, client: Any, bucket: str) -> None:
        self.bucket = bucket
        client.meta.events.register("before-send.s3", self.on_send)
        client.meta.events.register("response-received.s3", self.on_answer)

    def on_send(self, request: Any, event_name: str, **_: Any) -> None:
        headers = {
            str(name).lower(): value.decode() if isinstance(value, bytes) else str(value)
            for name, value in request.headers.items()
        }
        url = urlsplit(request.url)
        path = unquote(url.path).lstrip("/")
        host_bucket = url.hostname is not None and url.hostname.startswith(self.bucket + ".")
        object_key = path if host_bucket else path.partition("/")[2]
        self.events.append(
            Sent(
                event_name.rsplit(".", 1)[-1],
                request.method,
                object_key,
                url.query,
                SSEHeaders.of(headers, TARGET),
                SSEHeaders.of(headers, SOURCE),
            )
        )

    def on_answer(
        self, event_name: str, response_dict: dict[str, Any] | None = None, **_: Any
    ) -> None:
        status = response_dict.get("status_code") if response_dict else None
        self.events.append(Answered(event_name.rsplit(".", 1)[-1], status))

    def take(self) -> list[Sent]:
        """The requests sent since the last call, after checking the key-less HEADs."""
        events, self.events = self.events, []
        check_keyless_heads(events)
        return [e for e in events if isinstance(e, Sent)]


def check_keyless_heads(events: list[Sent | Answered]) -> None:
    """A HeadObject without a key is only ever the diagnosis of a refused read: the last read
    answered before it (bucket-level requests aside: botocore itself sends a HeadBucket after
    a HEAD answered 400, to look for a region redirect) was a 400/403 to a keyed read of the
    same object."""
    last_sent: dict[str, Sent] = {}
    last_read: Answered | None = None
    for event in events:
        if isinstance(event, Answered):
            if event.operation in ("HeadObject", "GetObject"):
                last_read = event
            continue
        if event.operation == "HeadObject" and event.target.absent:
            assert last_read is not None, f"{event}: a key-less HEAD that diagnoses nothing"
            assert last_read.status in (400, 403), f"{event} after {last_read}"
            refused = last_sent.get(event.object_key)
            assert refused is not None, f"{event}: no read of this object before it"
            assert not refused.target.absent, f"{event} after the key-less {refused}"
        if event.operation in ("HeadObject", "GetObject"):
            last_sent[event.object_key] = event


def check_rules(sent: list[Sent]) -> None:
    """The rules that hold for every request, whatever the operation."""
    assert sent, "no request was recorded"
    for request in sent:
        assert request.operation in KEYED | KEYLESS, f"unclassified operation: {request}"
        if request.operation in KEYLESS:
            assert request.target == NONE, f"a key on a request that needs none: {request}"
            assert request.source == NONE, str(request)
            continue
        if request.operation == "HeadObject" and request.target.absent:
            continue  # the diagnosis, checked by `check_keyless_heads`
        # all three target headers, and the key they carry is the one the MD5 names
        assert request.target.algorithm == "AES256", str(request)
        assert request.target.key_digest is not None, str(request)
        assert request.target.key_digest == request.target.key_md5, str(request)
        if request.operation in COPIES:
            assert request.source.algorithm == "AES256", str(request)
            assert request.source.key_digest == request.source.key_md5, str(request)
            assert request.source.key_md5 is not None, str(request)
        else:
            assert request.source == NONE, f"copy-source headers on a non-copy: {request}"


def of(sent: list[Sent], operation: str, object_key: str | None = None) -> list[Sent]:
    return [
        s
        for s in sent
        if s.operation == operation and (object_key is None or s.object_key == object_key)
    ]


@asynccontextmanager
async def recorded_engine(
    engine_kwargs: dict[str, str], bucket: str, *, concurrency: int = 4
) -> AsyncIterator[tuple[TransferEngine, Recorder]]:
    config = TransferConfig(part_size=PART, multipart_threshold=PART, concurrency=concurrency)
    recorder = Recorder()
    async with TransferEngine(config=config, **engine_kwargs) as engine:
        recorder.install(engine.client, bucket)
        yield engine, recorder


@pytest.fixture
def wire_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record at DEBUG, botocore's wire logs (signed headers) included."""
    for name in (None, "ssec_transfer", "botocore", "aiobotocore"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


async def let_cut_connections_close() -> None:
    """TLS connections cut mid-request finish closing after the engine has closed (as in
    tests/integration/transfer/test_streams.py); wait for them, or the event loop's end
    finds them unclosed (ResourceWarning, an error under `filterwarnings = error`)."""
    for _ in range(100):  # 5 s at most
        if not open_transports():
            return
        await anyio.sleep(0.05)


def open_transports() -> int:
    count = 0
    for obj in gc.get_objects():
        try:
            count += isinstance(obj, asyncio.Transport) and not obj.is_closing()
        except ReferenceError:  # a dead weak proxy
            continue
    return count


def assert_no_key_in_logs(caplog: pytest.LogCaptureFixture, *keys: SSECustomerKey) -> None:
    text = "\n".join(r.getMessage() for r in caplog.records)
    # The capture really held the wire logs, where the key header appears by name...
    assert "x-amz-server-side-encryption-customer-key" in text.lower()
    for key in keys:  # ... and never with its value.
        secret = key.export_base64()
        assert secret not in text, "an SSE-C key reached a log record"
        raw = base64.b64decode(secret)
        assert repr(raw)[2:-1] not in text
        assert raw.hex() not in text


# -- uploads ---------------------------------------------------------------------------------


async def test_single_put_sends_the_key(
    tmp_path: Path, bucket: str, engine_kwargs: dict[str, str], wire_logs: Any
) -> None:
    key = SSECustomerKey.generate()
    src = random_file(tmp_path / "small.bin", 1000)
    async with recorded_engine(engine_kwargs, bucket) as (engine, recorder):
        await engine.upload(src, bucket, "small", sse_key=key)
        sent = recorder.take()
    check_rules(sent)
    puts = of(sent, "PutObject", "small")
    assert len(puts) == 1
    assert puts[0].target.names(key)
    assert not of(sent, "CreateMultipartUpload")
    assert_no_key_in_logs(wire_logs, key)


async def test_multipart_upload_pins_one_key_on_every_request(
    tmp_path: Path, bucket: str, engine_kwargs: dict[str, str], wire_logs: Any
) -> None:
    key = SSECustomerKey.generate()
    src = random_file(tmp_path / "big.bin", 2 * PART + 1000)  # three parts
    async with recorded_engine(engine_kwargs, bucket) as (engine, recorder):
        result = await engine.upload(src, bucket, "big", sse_key=key)
        sent = recorder.take()
    check_rules(sent)
    assert result.parts == 3
    creates = of(sent, "CreateMultipartUpload", "big")
    parts = of(sent, "UploadPart", "big")
    completes = of(sent, "CompleteMultipartUpload", "big")
    assert len(creates) == 1
    assert len({p.query for p in parts}) == 3  # every part number, each once (or retried)
    assert completes
    # One object, one key: the create, every part and the complete name the same key.
    assert {s.target for s in creates + parts + completes} == {
        SSEHeaders("AES256", key.fingerprint, key.fingerprint)
    }
    assert not of(sent, "AbortMultipartUpload")
    assert_no_key_in_logs(wire_logs, key)


async def test_aborted_multipart_upload_sends_no_key_with_the_abort(
    tmp_path: Path, bucket: str, engine_kwargs: dict[str, str], admin: Any, wire_logs: Any
) -> None:
    """Cancelled after its first part (as Ctrl-C would), the upload is aborted: the abort
    names the upload only."""
    key = SSECustomerKey.generate()
    src = random_file(tmp_path / "big.bin", 2 * PART + 1000)
    async with recorded_engine(engine_kwargs, bucket, concurrency=1) as (engine, recorder):
        with anyio.CancelScope() as scope:

            def cancel_after_the_first_part(done: int, total: int) -> None:
                if done:
                    scope.cancel()

            await engine.upload(src, bucket, "big", sse_key=key,
                                progress=cancel_after_the_first_part)  # fmt: skip
        sent = recorder.take()
    await let_cut_connections_close()
    assert scope.cancelled_caught
    check_rules(sent)
    aborts = of(sent, "AbortMultipartUpload", "big")
    assert len(aborts) == 1
    assert aborts[0].target == aborts[0].source == NONE
    assert of(sent, "UploadPart", "big")
    assert all(s.target.names(key) for s in of(sent, "UploadPart"))
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert_no_key_in_logs(wire_logs, key)


# -- downloads and listings ------------------------------------------------------------------


async def test_ranged_download_sends_the_key_on_the_first_get_and_every_range(
    tmp_path: Path, bucket: str, engine_kwargs: dict[str, str], wire_logs: Any
) -> None:
    key = SSECustomerKey.generate()
    src = random_file(tmp_path / "big.bin", 2 * PART + 1000)
    async with recorded_engine(engine_kwargs, bucket) as (engine, recorder):
        await engine.upload(src, bucket, "big", sse_key=key)
        recorder.take()
        result = await engine.download(bucket, "big", tmp_path / "copy.bin", sse_key=key)
        sent = recorder.take()
    check_rules(sent)
    assert (tmp_path / "copy.bin").read_bytes() == src.read_bytes()
    assert result.parts == 3
    gets = of(sent, "GetObject", "big")
    assert not of(sent, "HeadObject", "big")  # the first, whole-object GET did its job
    assert len(gets) >= 4
    assert all(s.target.names(key) for s in gets)
    assert_no_key_in_logs(wire_logs, key)


async def test_listings_carry_no_key(
    tmp_path: Path, bucket: str, engine_kwargs: dict[str, str], wire_logs: Any
) -> None:
    key = SSECustomerKey.generate()
    src = random_file(tmp_path / "small.bin", 1000)
    async with recorded_engine(engine_kwargs, bucket) as (engine, recorder):
        await engine.upload(src, bucket, "small", sse_key=key)
        recorder.take()
        listed = [obj async for obj in engine.ls(bucket)]
        sent = recorder.take()
    check_rules(sent)
    assert [obj.key for obj in listed] == ["small"]
    assert [s.operation for s in sent] == ["ListObjectsV2"]
    assert sent[0].target == sent[0].source == NONE
    assert_no_key_in_logs(wire_logs, key)


# -- copies and rotation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("same_key", "via"),
    [
        pytest.param(False, "auto", id="new key, auto"),
        pytest.param(False, "stream", id="new key, streamed"),
        pytest.param(True, "auto", id="same key, auto"),
    ],
)
async def test_copy_names_the_old_key_as_source_and_the_new_as_target(
    same_key: bool,
    via: Any,
    tmp_path: Path,
    bucket: str,
    engine_kwargs: dict[str, str],
    admin: Any,
    wire_logs: Any,
) -> None:
    old = SSECustomerKey.generate()
    new = old if same_key else SSECustomerKey.generate()
    src = random_file(tmp_path / "big.bin", 2 * PART + 1000)
    async with recorded_engine(engine_kwargs, bucket) as (engine, recorder):
        await engine.upload(src, bucket, "big", sse_key=old)
        recorder.take()
        result = await engine.copy(
            bucket, "big", bucket, "big-copy", source_key=old, target_key=new, via=via
        )
        sent = recorder.take()
        await engine.download(bucket, "big-copy", tmp_path / "copy.bin", sse_key=new)
    check_rules(sent)
    assert (tmp_path / "copy.bin").read_bytes() == src.read_bytes()
    # Every request on the source names the old key; every request on the copy, the new one.
    for request in sent:
        if request.operation in KEYLESS or request.target.absent:
            continue
        expected = old if request.object_key == "big" else new
        assert request.object_key in ("big", "big-copy"), str(request)
        assert request.target.names(expected), str(request)
    copies = [s for s in sent if s.operation in COPIES]
    assert all(s.object_key == "big-copy" for s in copies)
    assert all(s.source.names(old) and s.target.names(new) for s in copies)
    if result.via == "stream":
        assert of(sent, "GetObject", "big")  # read with the old key ...
        assert of(sent, "UploadPart", "big-copy") or of(sent, "PutObject", "big-copy")
    else:
        assert copies, f"a server-side copy ({result.via}) without a copy request"
    if via == "stream":
        assert result.via == "stream"
        assert not copies
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert_no_key_in_logs(wire_logs, old, new)


async def test_rotation_reads_with_the_old_key_and_writes_with_the_new(
    tmp_path: Path, bucket: str, engine_kwargs: dict[str, str], wire_logs: Any
) -> None:
    old, new = SSECustomerKey.generate(), SSECustomerKey.generate()
    src = random_file(tmp_path / "small.bin", 1000)
    async with recorded_engine(engine_kwargs, bucket) as (engine, recorder):
        await engine.upload(src, bucket, "small", sse_key=old)
        recorder.take()
        result = await engine.rotate(bucket, "small", old_key=old, new_key=new)
        sent = recorder.take()  # also checks the key-less HEAD that proves the old key fails
    check_rules(sent)
    assert result.old_key_refused
    writes = [s for s in sent if s.operation in KEYED - {"GetObject", "HeadObject"}]
    assert writes
    assert all(s.target.names(new) for s in writes)
    assert all(s.source.names(old) for s in writes if s.operation in COPIES)
    reads = [s for s in sent if s.operation in ("GetObject", "HeadObject")]
    assert {s.target.key_md5 for s in reads} >= {old.fingerprint, new.fingerprint}
    # The check that the old key no longer opens the object, and its key-less diagnosis.
    assert [s for s in reads if s.target.absent]
    assert_no_key_in_logs(wire_logs, old, new)
