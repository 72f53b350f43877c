"""A throwaway Ceph RGW cluster starts, enforces SSE-C like the providers do, and stops cleanly."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.session import get_session

from ssec_transfer.servers.base import ServerInfo
from ssec_transfer.servers.ceph import CephRGW

pytestmark = [pytest.mark.integration, pytest.mark.ceph]

BUCKET = "ceph-ssec"


def _client(info: ServerInfo, endpoint_url: str | None = None) -> Any:
    return get_session().create_client(
        "s3",
        endpoint_url=endpoint_url or info.endpoint_url,
        region_name=info.region,
        aws_access_key_id=info.access_key,
        aws_secret_access_key=info.secret_key,
        verify=str(info.ca_bundle),
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
        ),
    )


def _sse(key: bytes) -> dict[str, str]:
    """SSE-C request parameters, with the key and its MD5 spelled out (no botocore magic)."""
    return {
        "SSECustomerAlgorithm": "AES256",
        "SSECustomerKey": base64.b64encode(key).decode(),
        "SSECustomerKeyMD5": base64.b64encode(
            hashlib.md5(key, usedforsecurity=False).digest()
        ).decode(),
    }


@pytest.fixture(scope="module")
def ceph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CephRGW, ServerInfo]]:
    server = CephRGW(tmp_path_factory.mktemp("ceph"), memstore_bytes=1024**3)
    info = server.start()
    try:
        _client(info).create_bucket(Bucket=BUCKET)
        yield server, info
    finally:
        server.stop()


def test_server_info(ceph: tuple[CephRGW, ServerInfo]) -> None:
    _, info = ceph
    assert info.name == "ceph"
    assert info.endpoint_url.startswith("https://127.0.0.1:")
    assert info.http_endpoint_url is not None
    assert info.http_endpoint_url.startswith("http://127.0.0.1:")
    assert info.ca_bundle.is_file()


def test_ssec_round_trip_and_wrong_key(ceph: tuple[CephRGW, ServerInfo]) -> None:
    _, info = ceph
    s3 = _client(info)
    key, other = os.urandom(32), os.urandom(32)
    body = os.urandom(100_000)
    s3.put_object(Bucket=BUCKET, Key="one", Body=body, **_sse(key))

    got = s3.get_object(Bucket=BUCKET, Key="one", **_sse(key))
    assert got["Body"].read() == body
    assert got["SSECustomerAlgorithm"] == "AES256"

    with pytest.raises(ClientError) as wrong:
        s3.get_object(Bucket=BUCKET, Key="one", **_sse(other))
    assert wrong.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "MD5" in wrong.value.response["Error"]["Message"]

    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=BUCKET, Key="one")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_ssec_over_plain_http_is_refused(ceph: tuple[CephRGW, ServerInfo]) -> None:
    _, info = ceph
    assert info.http_endpoint_url is not None
    plain = _client(info, endpoint_url=info.http_endpoint_url)
    plain.head_bucket(Bucket=BUCKET)  # the port itself works; only SSE-C is refused
    with pytest.raises(ClientError) as refused:
        plain.put_object(Bucket=BUCKET, Key="clear", Body=b"x", **_sse(os.urandom(32)))
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_ssec_multipart(ceph: tuple[CephRGW, ServerInfo]) -> None:
    _, info = ceph
    s3 = _client(info)
    key, other = os.urandom(32), os.urandom(32)
    part1, part2 = os.urandom(5 * 1024 * 1024), os.urandom(1)
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="multi", **_sse(key))
    upload_id = upload["UploadId"]

    with pytest.raises(ClientError) as wrong:
        s3.upload_part(
            Bucket=BUCKET, Key="multi", UploadId=upload_id, PartNumber=2, Body=part2, **_sse(other)
        )
    assert wrong.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    parts = []
    for number, data in ((1, part1), (2, part2)):
        resp = s3.upload_part(
            Bucket=BUCKET,
            Key="multi",
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            **_sse(key),
        )
        parts.append({"PartNumber": number, "ETag": resp["ETag"]})
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key="multi", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    got = s3.get_object(Bucket=BUCKET, Key="multi", **_sse(key))
    assert got["Body"].read() == part1 + part2


def test_stop_ends_every_process(tmp_path: Path) -> None:
    server = CephRGW(tmp_path, memstore_bytes=256 * 1024**2)
    with server as info:
        assert info.endpoint_url.startswith("https://")
        procs = list(server._procs.values())
        assert len(procs) == 3
        assert all(p.poll() is None for p in procs)
    assert all(p.poll() is not None for p in procs)
    for p in procs:
        with pytest.raises(ProcessLookupError):
            os.killpg(p.pid, 0)  # the whole process group is gone
    server.stop()  # idempotent
