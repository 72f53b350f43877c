"""The embedded SeaweedFS really speaks HTTPS only, checks SSE-C keys and encrypts at rest."""

from __future__ import annotations

import http.client
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ssec_transfer.servers.base import ServerInfo
from ssec_transfer.servers.seaweedfs import SeaweedFS

pytestmark = pytest.mark.integration

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
BUCKET = "ssec-test"


def s3_client(info: ServerInfo) -> Any:
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=info.endpoint_url,
        region_name=info.region,
        aws_access_key_id=info.access_key,
        aws_secret_access_key=info.secret_key,
        verify=str(info.ca_bundle),
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
        ),
    )


def sse(key: bytes) -> dict[str, Any]:
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


def status_of(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def port_of(info: ServerInfo) -> int:
    return int(info.endpoint_url.rsplit(":", 1)[1])


def files_containing(root: Path, needles: list[bytes]) -> list[Path]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            blob = path.read_bytes()
            if any(n in blob for n in needles):
                hits.append(path)
    return hits


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SeaweedFS]:
    srv = SeaweedFS(tmp_path / "weed")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_sse_c_put_and_key_checks(server: SeaweedFS) -> None:
    client = s3_client(server.info)
    try:
        client.create_bucket(Bucket=BUCKET)
        body = os.urandom(64 * 1024)
        client.put_object(Bucket=BUCKET, Key="obj", Body=body, **sse(KEY))

        got = client.get_object(Bucket=BUCKET, Key="obj", **sse(KEY))
        assert got["Body"].read() == body

        with pytest.raises(ClientError) as no_key:
            client.get_object(Bucket=BUCKET, Key="obj")
        assert status_of(no_key) == 400

        with pytest.raises(ClientError) as wrong_key:
            client.get_object(Bucket=BUCKET, Key="obj", **sse(OTHER_KEY))
        assert status_of(wrong_key) == 403
    finally:
        client.close()


def test_plain_http_gets_no_s3_answer(server: SeaweedFS) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server.info), timeout=10)
    try:
        conn.request("GET", f"/{BUCKET}/obj")
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    # Go's TLS server answers a plaintext request with a canned 400, never an S3 response.
    assert resp.status == 400
    assert b"HTTPS" in body
    assert b"<Error>" not in body
    assert resp.getheader("x-amz-request-id") is None


def test_sse_c_data_is_not_on_disk_in_plaintext(server: SeaweedFS) -> None:
    client = s3_client(server.info)
    secret = os.urandom(256 * 1024)  # random: SeaweedFS compresses compressible data
    control = os.urandom(256 * 1024)
    small_secret = os.urandom(300)  # small objects may be inlined in the filer's store
    try:
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="secret", Body=secret, **sse(KEY))
        client.put_object(Bucket=BUCKET, Key="small", Body=small_secret, **sse(KEY))
        client.put_object(Bucket=BUCKET, Key="control", Body=control)  # no SSE-C
    finally:
        client.close()
    server.stop()  # flush everything to disk before looking

    def windows(data: bytes) -> list[bytes]:
        return [data[i : i + 32] for i in range(0, len(data) - 32, max(1, len(data) // 8))]

    # The scan works: the unencrypted control object is found in plaintext...
    assert files_containing(server.data_dir, windows(control))
    # ...but no 32-byte window of the SSE-C objects is.
    assert files_containing(server.data_dir, windows(secret) + windows(small_secret)) == []


def test_stop_ends_process_and_closes_port(tmp_path: Path) -> None:
    srv = SeaweedFS(tmp_path / "weed")
    with srv as info:
        pid = srv.pid
        assert pid is not None
        assert srv.is_running()
        port = port_of(info)
    assert not srv.is_running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped by stop(), so the pid is gone
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    srv.stop()  # idempotent
