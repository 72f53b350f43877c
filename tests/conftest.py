"""Shared fixtures: one real HTTPS S3 server per test session (SeaweedFS, or Ceph RGW with
`--server ceph`), a fresh bucket per test, and helpers to run the CLI as users do."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.servers.base import ServerInfo


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--server",
        choices=("seaweedfs", "ceph"),
        default="seaweedfs",
        help="real S3 server for the integration tests (default: seaweedfs)",
    )


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the config file of the user running it (`cli.config_file`); a test of
    the config file points SSEC_TRANSFER_CONFIG at its own."""
    monkeypatch.setenv("SSEC_TRANSFER_CONFIG", os.devnull)


@pytest.fixture(scope="session")
def s3_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerInfo]:
    kind = request.config.getoption("--server")
    workdir = tmp_path_factory.mktemp(f"{kind}-server")
    if kind == "ceph":
        from ssec_transfer.servers.ceph import CephRGW, ensure_ceph_installed

        ensure_ceph_installed()
        with CephRGW(workdir) as info:
            yield info
    else:
        from ssec_transfer.servers.seaweedfs import SeaweedFS

        with SeaweedFS(workdir) as info:
            yield info


@pytest.fixture(scope="session")
def server_env(s3_server: ServerInfo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for CLI subprocesses: the AWS variables and nothing that points elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3_server.env())
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["SSEC_TRANSFER_CONFIG"] = os.devnull  # the config file of whoever runs the tests
    # Keep the ledger and the capability cache of test runs out of the user's home.
    state = tmp_path_factory.mktemp("xdg")
    env["XDG_DATA_HOME"] = str(state / "data")
    env["XDG_CACHE_HOME"] = str(state / "cache")
    env["XDG_STATE_HOME"] = str(state / "state")
    return env


@pytest.fixture
def s3_env(server_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The server's AWS variables, also in this process (for API and in-process CLI tests)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in server_env.items():
        if name.startswith(("AWS_", "XDG_")):
            monkeypatch.setenv(name, value)
    return server_env


@pytest.fixture(scope="session")
def admin(s3_server: ServerInfo):  # type: ignore[no-untyped-def]
    """A plain botocore client for setting up and inspecting server state in tests."""
    import botocore.session
    from botocore.config import Config

    session = botocore.session.get_session()
    return session.create_client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name=s3_server.region,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        verify=str(s3_server.ca_bundle),
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
        ),
    )


@pytest.fixture
def bucket(admin) -> Iterator[str]:  # type: ignore[no-untyped-def]
    name = f"t-{uuid.uuid4().hex[:20]}"
    admin.create_bucket(Bucket=name)
    yield name
    # Leave the server clean: objects and any multipart uploads a test left behind.
    for upload in admin.list_multipart_uploads(Bucket=name).get("Uploads", []):
        admin.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in admin.get_paginator("list_objects_v2").paginate(Bucket=name):
        for obj in page.get("Contents", []):
            admin.delete_object(Bucket=name, Key=obj["Key"])
    # Versioned buckets keep every version and delete marker until each is deleted by id.
    for page in admin.get_paginator("list_object_versions").paginate(Bucket=name):
        for version in page.get("Versions", []) + page.get("DeleteMarkers", []):
            admin.delete_object(Bucket=name, Key=version["Key"], VersionId=version["VersionId"])
    admin.delete_bucket(Bucket=name)


@pytest.fixture
def key_file(tmp_path: Path) -> tuple[Path, SSECustomerKey]:
    key = SSECustomerKey.generate()
    path = tmp_path / "sse-c.key"
    key.write_new_file(path)
    return path, key


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def engine_kwargs(s3_server: ServerInfo, s3_env: dict[str, str]) -> dict[str, str]:
    """Connection arguments for TransferEngine pointing at the test server."""
    return {"endpoint_url": s3_server.endpoint_url, "ca_bundle": str(s3_server.ca_bundle)}
