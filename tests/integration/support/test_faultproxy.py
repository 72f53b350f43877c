"""The fault-injection proxy itself, against the real server: each fault does what it says,
clean traffic passes byte-identical, and seeded plans are reproducible."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from ssec_transfer.servers.base import ServerInfo
from tests.support.faultproxy import FaultPlan, FaultProxy, ScriptedFault

pytestmark = pytest.mark.integration

MiB = 1 << 20
# What a client sees when a connection breaks (botocore wraps urllib3's errors; a reset while
# sending may surface as ConnectionClosedError or as SSLError, depending on timing).
BROKEN = (HTTPClientError, BotocoreConnectionError, IncompleteReadError, ResponseStreamingError)


def make_client(proxy: FaultProxy, server: ServerInfo, **config: Any) -> Any:
    """A plain botocore client through the proxy, with no retries so every fault shows."""
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=proxy.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        verify=str(proxy.ca_bundle),
        config=Config(
            retries={"total_max_attempts": 1},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path", **config.pop("s3", {})},
            **config,
        ),
    )


@pytest.fixture
def proxy(s3_server: ServerInfo) -> Iterator[FaultProxy]:
    with FaultProxy(s3_server.endpoint_url, s3_server.ca_bundle) as running:
        yield running
    assert running.stats.errors == []  # no proxy bug hid behind a fault


@pytest.fixture
def client(proxy: FaultProxy, s3_server: ServerInfo) -> Iterator[Any]:
    c = make_client(proxy, s3_server)
    yield c
    c.close()


def _exists(admin: Any, bucket: str, key: str) -> bool:
    listed = admin.list_objects_v2(Bucket=bucket, Prefix=key)
    return any(obj["Key"] == key for obj in listed.get("Contents", []))


def test_clean_traffic_round_trips_over_keep_alive(
    proxy: FaultProxy, client: Any, bucket: str
) -> None:
    data = os.urandom(MiB)
    client.put_object(Bucket=bucket, Key="a", Body=data)
    assert client.get_object(Bucket=bucket, Key="a")["Body"].read() == data
    assert client.head_object(Bucket=bucket, Key="a")["ContentLength"] == MiB
    listed = client.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["a"]
    stats = proxy.stats
    assert stats.requests == 4
    assert stats.connections == 1  # four exchanges framed correctly on one connection
    assert stats.methods == {"PUT": 1, "GET": 2, "HEAD": 1}
    assert stats.bytes_to_upstream > MiB
    assert stats.bytes_to_client > MiB
    assert stats.faults == []


def test_scripted_error_answers_never_reach_the_server(
    proxy: FaultProxy, client: Any, bucket: str, admin: Any
) -> None:
    proxy.plan = FaultPlan.scripted(
        ScriptedFault("slowdown", method="PUT"),
        ScriptedFault("internal_error", method="GET"),
    )
    with pytest.raises(ClientError) as slow:
        client.put_object(Bucket=bucket, Key="a", Body=os.urandom(100_000))
    assert slow.value.response["Error"]["Code"] == "SlowDown"
    assert slow.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert not _exists(admin, bucket, "a")  # the request was answered by the proxy
    client.put_object(Bucket=bucket, Key="a", Body=b"x")  # same connection, body discarded
    with pytest.raises(ClientError) as internal:
        client.get_object(Bucket=bucket, Key="a")
    assert internal.value.response["Error"]["Code"] == "InternalError"
    assert client.get_object(Bucket=bucket, Key="a")["Body"].read() == b"x"
    assert proxy.stats.injected() == {"slowdown": 1, "internal_error": 1}
    assert proxy.stats.connections == 1
    assert proxy.stats.statuses[503] == 1
    assert proxy.stats.statuses[500] == 1


def test_truncated_download_raises(proxy: FaultProxy, client: Any, bucket: str, admin: Any) -> None:
    data = os.urandom(MiB)
    admin.put_object(Bucket=bucket, Key="a", Body=data)
    proxy.plan = FaultPlan.scripted(ScriptedFault("truncate", method="GET", nth=2, at=0.5))
    assert client.get_object(Bucket=bucket, Key="a")["Body"].read() == data
    body = client.get_object(Bucket=bucket, Key="a")["Body"]
    with pytest.raises((IncompleteReadError, ResponseStreamingError)):
        body.read()
    body.close()
    [fault] = proxy.stats.faults
    assert (fault.kind, fault.method, fault.request, fault.offset, fault.applied) == (
        "truncate",
        "GET",
        2,
        MiB // 2,
        True,
    )
    assert client.get_object(Bucket=bucket, Key="a")["Body"].read() == data  # recovers


def test_reset_mid_upload_and_mid_download(
    proxy: FaultProxy, client: Any, bucket: str, admin: Any
) -> None:
    data = os.urandom(MiB)
    proxy.plan = FaultPlan.scripted(
        ScriptedFault("reset", method="PUT", direction="request", at=0.5),
        ScriptedFault("reset", method="GET", direction="response", at=0.25),
    )
    with pytest.raises(BROKEN):
        client.put_object(Bucket=bucket, Key="a", Body=data)
    assert not _exists(admin, bucket, "a")  # the server saw half a body, then RST
    client.put_object(Bucket=bucket, Key="a", Body=data)
    with pytest.raises(BROKEN):
        client.get_object(Bucket=bucket, Key="a")["Body"].read()
    assert client.get_object(Bucket=bucket, Key="a")["Body"].read() == data
    assert [(f.kind, f.direction, f.offset) for f in proxy.stats.faults] == [
        ("reset", "request", MiB // 2),
        ("reset", "response", MiB // 4),
    ]


def test_corrupt_flips_one_byte_each_way(
    proxy: FaultProxy, client: Any, bucket: str, admin: Any
) -> None:
    data = os.urandom(MiB)
    proxy.plan = FaultPlan.scripted(
        ScriptedFault("corrupt", method="GET", at=0.75),
        ScriptedFault("corrupt", method="PUT", direction="request", at=0.1),
    )
    admin.put_object(Bucket=bucket, Key="a", Body=data)
    got = client.get_object(Bucket=bucket, Key="a")["Body"].read()
    assert len(got) == len(data)
    assert [i for i in range(len(data)) if got[i] != data[i]] == [3 * MiB // 4]

    # Signed payload (botocore's default here): a server that checks the SHA-256 refuses it
    # (Ceph); one that does not stores the flipped byte (SeaweedFS). Either way it shows.
    refused = None
    try:
        client.put_object(Bucket=bucket, Key="b", Body=data)
    except ClientError as exc:
        refused = exc.response["Error"]["Code"]
    if refused is not None:
        assert refused in ("XAmzContentSHA256Mismatch", "BadDigest")
        assert not _exists(admin, bucket, "b")
    else:
        stored = admin.get_object(Bucket=bucket, Key="b")["Body"].read()
        assert [i for i in range(len(data)) if stored[i] != data[i]] == [MiB // 10]
    assert proxy.stats.injected() == {"corrupt": 2}


def test_corrupt_upload_with_unsigned_payload_is_stored_wrong(
    proxy: FaultProxy, s3_server: ServerInfo, bucket: str, admin: Any
) -> None:
    """Like the engine (UNSIGNED-PAYLOAD, no checksum): nothing on the way catches it."""
    data = os.urandom(MiB)
    proxy.plan = FaultPlan.scripted(ScriptedFault("corrupt", direction="request", at=0.1))
    unsigned = make_client(proxy, s3_server, s3={"payload_signing_enabled": False})
    try:
        unsigned.put_object(Bucket=bucket, Key="b", Body=data)
    finally:
        unsigned.close()
    stored = admin.get_object(Bucket=bucket, Key="b")["Body"].read()
    assert [i for i in range(len(data)) if stored[i] != data[i]] == [MiB // 10]


def test_stall_triggers_the_clients_read_timeout(
    proxy: FaultProxy, s3_server: ServerInfo, bucket: str, admin: Any
) -> None:
    admin.put_object(Bucket=bucket, Key="a", Body=b"x")
    proxy.plan = FaultPlan.scripted(ScriptedFault("stall", method="HEAD", stall_seconds=2.0))
    impatient = make_client(proxy, s3_server, read_timeout=0.5)
    try:
        with pytest.raises(ReadTimeoutError):
            impatient.head_object(Bucket=bucket, Key="a")
        assert impatient.head_object(Bucket=bucket, Key="a")["ContentLength"] == 1
    finally:
        impatient.close()
    assert proxy.stats.injected() == {"stall": 1}


def test_stops_promptly_and_survives_bad_handshakes(
    s3_server: ServerInfo, bucket: str, admin: Any
) -> None:
    """Exiting the context ends everything at once, even a 30 s stall in progress, and a
    client that does not trust the proxy's CA costs one handshake, not the proxy."""
    admin.put_object(Bucket=bucket, Key="a", Body=b"x" * 1000)
    plan = FaultPlan.scripted(ScriptedFault("stall", method="GET", stall_seconds=30))
    with FaultProxy(s3_server.endpoint_url, s3_server.ca_bundle, plan) as proxy:
        port = int(proxy.endpoint_url.rsplit(":", 1)[1])
        untrusting = ssl.create_default_context(cafile=str(s3_server.ca_bundle))
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            untrusting.wrap_socket(raw, server_hostname="127.0.0.1")
        impatient = make_client(proxy, s3_server, read_timeout=0.5)
        try:
            assert impatient.head_object(Bucket=bucket, Key="a")["ContentLength"] == 1000
            with pytest.raises(ReadTimeoutError):
                impatient.get_object(Bucket=bucket, Key="a")["Body"].read()
            started = time.monotonic()
        finally:
            impatient.close()
    assert time.monotonic() - started < 5
    assert proxy.stats.tls_failures == 1
    assert proxy.stats.errors == []


def test_filters_select_which_requests_may_fault(
    proxy: FaultProxy, client: Any, bucket: str
) -> None:
    proxy.plan = FaultPlan(slowdown=1.0, only_methods={"GET"}, only_after_requests=2, max_faults=1)
    client.put_object(Bucket=bucket, Key="a", Body=b"x")  # 1: not a GET
    client.get_object(Bucket=bucket, Key="a")["Body"].read()  # 2: not after 2 requests
    with pytest.raises(ClientError, match="SlowDown"):
        client.get_object(Bucket=bucket, Key="a")  # 3
    client.put_object(Bucket=bucket, Key="a", Body=b"y")
    assert client.get_object(Bucket=bucket, Key="a")["Body"].read() == b"y"  # max_faults=1
    assert [(f.request, f.kind) for f in proxy.stats.faults] == [(3, "slowdown")]


def test_faults_in_listing_responses(
    proxy: FaultProxy, client: Any, bucket: str, admin: Any, s3_server: ServerInfo
) -> None:
    """Ceph sends listings with chunked transfer coding, SeaweedFS with a Content-Length:
    faults land inside the body either way, never in the chunk framing."""
    for i in range(20):
        admin.put_object(Bucket=bucket, Key=f"key-{i:04d}", Body=b"x")
    proxy.plan = FaultPlan.scripted(
        ScriptedFault("truncate", method="GET", nth=1),
        ScriptedFault("stall", method="GET", nth=2, stall_seconds=0.2),
    )
    # A short chunked body breaks the connection (Ceph); a short XML body with a length may
    # reach botocore's parser, which calls an unparsable 200 a 500 (SeaweedFS).
    with pytest.raises((ClientError, *BROKEN)):
        client.list_objects_v2(Bucket=bucket)
    listed = client.list_objects_v2(Bucket=bucket)  # stalled mid-body, then complete
    assert len(listed["Contents"]) == 20
    truncate, stall = proxy.stats.faults
    assert truncate.applied
    assert stall.applied
    assert truncate.offset == stall.offset > 0


def test_chunked_request_body_keeps_the_connection_framed(
    proxy: FaultProxy, client: Any, bucket: str, s3_server: ServerInfo
) -> None:
    """A chunked upload (raw http.client, presigned) is framed correctly: the next request
    on the same connection gets its own well-formed answer, whatever the server said."""
    put_url = client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "c"})
    get_url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "c"})
    port = int(proxy.endpoint_url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(proxy.ca_bundle))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        body = [b"a" * 5000, b"b" * 7000]
        conn.request("PUT", urlsplit(put_url).path + "?" + urlsplit(put_url).query, iter(body))
        put = conn.getresponse()
        put.read()
        # SeaweedFS stores it; Ceph answers 411 MissingContentLength (S3 wants a length).
        assert put.status in (200, 411)
        conn.request("GET", urlsplit(get_url).path + "?" + urlsplit(get_url).query)
        get = conn.getresponse()
        got = get.read()
        if put.status == 200:
            assert (get.status, got) == (200, b"".join(body))
        else:
            # Ceph may answer before reading the body; then the connection is not reused.
            assert get.status == 404
    finally:
        conn.close()
    assert proxy.stats.requests == 2
    if put.status == 200:
        assert proxy.stats.connections == 1


def test_plan_validation() -> None:
    with pytest.raises(ValueError, match="add up"):
        FaultPlan(reset=0.6, slowdown=0.6)
    with pytest.raises(ValueError, match="truncated"):
        ScriptedFault("truncate", direction="request")
    with pytest.raises(ValueError, match="no direction"):
        FaultPlan(slowdown={"request": 0.1})  # type: ignore[arg-type]
    assert FaultPlan(only_methods=["get"]).only_methods == frozenset({"GET"})
    assert FaultPlan(reset={"request": 0.5}, corrupt=0.5)  # per direction


def _workload(client: Any, bucket: str) -> list[str]:
    """A fixed sequence of requests; returns what each one ended with."""
    outcomes = []
    for i in range(15):
        body = bytes([i]) * (64 * 1024 + i)
        for op in ("put", "get"):
            try:
                if op == "put":
                    client.put_object(Bucket=bucket, Key=f"k{i}", Body=body)
                    outcomes.append("ok")
                else:
                    got = client.get_object(Bucket=bucket, Key=f"k{i}")["Body"].read()
                    outcomes.append("ok" if got == body else "differs")
            except ClientError as exc:
                outcomes.append(exc.response["Error"]["Code"])
            except BROKEN:
                outcomes.append("broken")
    return outcomes


def test_seeded_random_plan_is_reproducible(
    proxy: FaultProxy, s3_server: ServerInfo, bucket: str, admin: Any
) -> None:
    runs = []
    for seed in (11, 11, 12):
        proxy.plan = FaultPlan(
            seed=seed, reset=0.1, slowdown=0.1, internal_error=0.05, truncate=0.05, corrupt=0.1
        )
        proxy.reset_stats()
        for page in admin.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                admin.delete_object(Bucket=bucket, Key=obj["Key"])
        fresh = make_client(proxy, s3_server)  # no connection state carried between runs
        try:
            outcomes = _workload(fresh, bucket)
        finally:
            fresh.close()
        assert proxy.stats.requests == 30
        runs.append((proxy.stats.fault_signatures(), outcomes, proxy.stats.injected()))
    (first, outcomes1, injected), (second, outcomes2, _), (other, _, _) = runs
    assert first == second
    assert outcomes1 == outcomes2
    assert other != first
    assert sum(injected.values()) >= 5  # the plan really did something
    assert outcomes1.count("ok") >= 10


@pytest.mark.anyio
async def test_async_context_manager_with_aiobotocore(s3_server: ServerInfo, bucket: str) -> None:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    plan = FaultPlan.scripted(ScriptedFault("slowdown", method="PUT"))
    config = AioConfig(
        retries={"mode": "standard", "total_max_attempts": 3},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"},
    )
    data = os.urandom(300_000)
    async with (
        FaultProxy(s3_server.endpoint_url, s3_server.ca_bundle, plan) as proxy,
        AioSession().create_client(
            "s3",
            endpoint_url=proxy.endpoint_url,
            region_name=s3_server.region,
            aws_access_key_id=s3_server.access_key,
            aws_secret_access_key=s3_server.secret_key,
            verify=str(proxy.ca_bundle),
            config=config,
        ) as s3,
    ):
        await s3.put_object(Bucket=bucket, Key="a", Body=data)  # retried past the 503
        response = await s3.get_object(Bucket=bucket, Key="a")
        async with response["Body"] as stream:
            assert await stream.read() == data
    assert proxy.stats.injected() == {"slowdown": 1}
    assert proxy.stats.methods == {"PUT": 2, "GET": 1}
    assert proxy.stats.errors == []
