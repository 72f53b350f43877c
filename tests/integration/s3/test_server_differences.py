"""Where the servers truly differ, named in one table, each row verified by the doctor.

Everything else in the integration suite is identical on every server; this table is the one
place that says how SeaweedFS and Ceph RGW (and, for reference, AWS) answer differently, and
the README's table is written from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssec_transfer.s3.sse import sse_params
from ssec_transfer.servers.base import ServerInfo
from tests.support.helpers import random_file, run_cli

pytestmark = pytest.mark.integration

# check -> expected `doctor --json` value per server. AWS values are documented, not tested.
SERVER_DIFFERENCES: dict[str, dict[str, str]] = {
    "wrong_key": {"seaweedfs": "403 AccessDenied", "ceph": "400 InvalidArgument",
                  "aws": "403 AccessDenied"},
    "missing_key": {"seaweedfs": "400 InvalidArgument", "ceph": "400 InvalidArgument",
                    "aws": "400 InvalidRequest"},
    "part_keys": {"seaweedfs": "not-checked", "ceph": "checked", "aws": "checked"},
    "copy_object": {"seaweedfs": "supported", "ceph": "501 NotImplemented", "aws": "supported"},
    "upload_part_copy": {"seaweedfs": "501 NotImplemented", "ceph": "supported",
                         "aws": "supported"},
    "flexible_checksums": {"seaweedfs": "verified", "ceph": "ignored", "aws": "verified"},
    "streamed_checksums": {"seaweedfs": "accepted", "ceph": "411 MissingContentLength",
                           "aws": "accepted"},
    "etag": {"seaweedfs": "md5-of-plaintext", "ceph": "md5-of-plaintext", "aws": "opaque"},
    "conditional_writes": {"seaweedfs": "supported", "ceph": "supported", "aws": "supported"},
    "conditional_complete": {"seaweedfs": "supported", "ceph": "ignored", "aws": "supported"},
}  # fmt: skip


def test_doctor_finds_each_documented_difference(
    s3_server: ServerInfo, bucket: str, server_env: dict[str, str], admin, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    env = dict(server_env, XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = run_cli("doctor", "--bucket", bucket, "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    found = {f["check"]: f["value"] for f in report["findings"]}
    assert found["tls"] == "verified"
    assert found["credentials"] == "accepted"
    assert found["sse_c_writes"] == "accepted"
    for check, expected in SERVER_DIFFERENCES.items():
        assert found[check] == expected[s3_server.name], check
    # The probes cleaned up after themselves.
    assert admin.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # ... and their findings are cached for the engine.
    cache = json.loads((tmp_path / "cache" / "ssec-transfer" / "capabilities.json").read_text())
    assert cache[report["endpoint"]]["flexible_checksums"] == found["flexible_checksums"]


@pytest.mark.parametrize("size", [1000, 12 * 1024 * 1024])
def test_explicit_checksum_is_never_silently_dropped(
    s3_server: ServerInfo,
    bucket: str,
    server_env: dict[str, str],
    admin,
    key_file,
    tmp_path: Path,
    size: int,
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    src = random_file(tmp_path / "f.bin", size)
    env = dict(server_env, XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = run_cli("put", src, f"s3://{bucket}/f.bin", "--key-file", key_path,
                     "--checksum", "crc32c", "--json", env=env)  # fmt: skip
    verifies = SERVER_DIFFERENCES["flexible_checksums"][s3_server.name] == "verified"
    if verifies:
        assert result.returncode == 0, result.stderr
        assert admin.head_object(Bucket=bucket, Key="f.bin", **_params(key_path))["ContentLength"]
    else:
        assert result.returncode == 2, result.stderr
        assert "does not verify flexible checksums; nothing was uploaded" in result.stderr
        assert "--checksum auto" in result.stderr
        assert admin.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    # The default (auto) works everywhere, sending CRC32C where the server can check it.
    auto = run_cli("put", src, f"s3://{bucket}/g.bin", "--key-file", key_path, env=env)
    assert auto.returncode == 0, auto.stderr
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def _params(key_path: Path) -> dict[str, str]:
    from ssec_transfer.keys.customer import SSECustomerKey

    return sse_params(SSECustomerKey.from_file(key_path))


def test_http_port_never_reached_with_a_key(
    s3_server: ServerInfo,
    bucket: str,
    server_env: dict[str, str],
    admin,
    key_file,
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]
    """Ceph has a plain-HTTP port that would refuse SSE-C (400) only after seeing the key;
    the client guard fires first. SeaweedFS has no such port: the same URL scheme is tried
    against its HTTPS port, and refused the same way, before any connection."""
    key_path, _ = key_file
    http = s3_server.http_endpoint_url or s3_server.endpoint_url.replace("https://", "http://")
    src = random_file(tmp_path / "f.bin", 100)
    for args in (
        ["put", src, f"s3://{bucket}/f.bin"],
        ["get", f"s3://{bucket}/f.bin", tmp_path / "out.bin"],
        ["head", f"s3://{bucket}/f.bin"],
    ):
        result = run_cli(*args, "--key-file", key_path, "--endpoint-url", http, env=server_env)
        assert result.returncode == 2, result.stderr
        assert "SSE-C requires HTTPS" in result.stderr
    assert admin.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert not (tmp_path / "out.bin").exists()
