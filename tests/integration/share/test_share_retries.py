"""post and get/put --url on a bad network: a reset connection, a body cut or corrupted in
transit and a busy server's 500/503 are retried, the object arrives byte-identical, and the
retry is said on stderr. Through the fault proxy, between the uploader and the real server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer.s3.sse import sse_params
from ssec_transfer.servers.base import ServerInfo
from tests.support.faultproxy import FaultPlan, FaultProxy, ScriptedFault
from tests.support.helpers import random_file, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(s3_server: ServerInfo) -> Iterator[FaultProxy]:
    with FaultProxy(s3_server.endpoint_url, s3_server.ca_bundle) as running:
        yield running


@pytest.fixture
def via_proxy(server_env: dict[str, str], proxy: FaultProxy) -> dict[str, str]:
    """The granter's environment, with the proxy as the endpoint (grants and URLs name it)."""
    return dict(server_env, AWS_ENDPOINT_URL=proxy.endpoint_url, AWS_CA_BUNDLE=str(proxy.ca_bundle))


@pytest.fixture
def holder_env(server_env: dict[str, str]) -> dict[str, str]:
    """The uploader's or URL holder's environment: no AWS_* at all."""
    env = {k: v for k, v in server_env.items() if not k.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env


def _read(admin: Any, bucket: str, key: str, sse: Any) -> bytes:
    body: bytes = admin.get_object(Bucket=bucket, Key=key, **sse_params(sse))["Body"].read()
    return body


@pytest.mark.parametrize("fault", ["internal_error", "reset"])
def test_post_retries_a_failed_attempt(
    tmp_path: Path, bucket: str, admin: Any, key_file: Any, proxy: FaultProxy,
    via_proxy: dict[str, str], holder_env: dict[str, str], fault: str,
) -> None:  # fmt: skip
    key_path, key = key_file
    grant = tmp_path / "grant.json"
    made = run_cli("grant", f"s3://{bucket}/in/", "--key-file", key_path, "--expires", "1h",
                   "--out", grant, env=via_proxy)  # fmt: skip
    assert made.returncode == 0, made.stderr
    src = random_file(tmp_path / "obs.nc", 3 << 20)
    direction = "request" if fault == "reset" else "response"
    proxy.plan = FaultPlan.scripted(ScriptedFault(fault, method="POST", direction=direction))  # type: ignore[arg-type]
    sent = run_cli("post", src, "--grant", grant, "--key-file", key_path, "--json",
                   "--ca-bundle", proxy.ca_bundle, env=holder_env)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert "attempt 2 of 5" in sent.stderr
    assert json.loads(sent.stdout.splitlines()[0])["status"] == "ok"
    assert proxy.stats.injected()
    assert _read(admin, bucket, "in/obs.nc", key) == src.read_bytes()


@pytest.mark.parametrize(
    ("fault", "checksum"),
    [("internal_error", "auto"), ("truncate", "auto"), ("corrupt", "auto"),
     # No checksum kept by the server: the CRC32C sealed in the object's metadata catches it.
     ("corrupt", "none")],
)  # fmt: skip
def test_get_url_retries_into_a_new_temporary_file(
    tmp_path: Path, bucket: str, key_file: Any, proxy: FaultProxy, server_env: dict[str, str],
    via_proxy: dict[str, str], holder_env: dict[str, str], fault: str, checksum: str,
) -> None:  # fmt: skip
    key_path, _ = key_file
    src = random_file(tmp_path / "data.bin", 2 << 20)
    assert run_cli("put", src, f"s3://{bucket}/d.bin", "--key-file", key_path,
                   "--checksum", checksum, env=server_env).returncode == 0  # fmt: skip
    made = run_cli("presign", f"s3://{bucket}/d.bin", "--key-file", key_path, "--json",
                   env=via_proxy)  # fmt: skip
    assert made.returncode == 0, made.stderr
    url = json.loads(made.stdout)["url"]
    proxy.plan = FaultPlan.scripted(ScriptedFault(fault, method="GET"))  # type: ignore[arg-type]
    out = tmp_path / "out"
    out.mkdir()
    got = run_cli("get", "--url", url, out / "d.bin", "--key-file", key_path,
                  "--ca-bundle", proxy.ca_bundle, env=holder_env)  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert "attempt 2 of 5" in got.stderr
    assert (out / "d.bin").read_bytes() == src.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["d.bin"]  # no temporary file left


def test_put_url_retries_a_busy_server_and_gives_up_on_a_refusal(
    tmp_path: Path, bucket: str, admin: Any, key_file: Any, proxy: FaultProxy,
    via_proxy: dict[str, str], holder_env: dict[str, str],
) -> None:  # fmt: skip
    key_path, key = key_file
    made = run_cli("presign", f"s3://{bucket}/up.bin", "--key-file", key_path, "--put",
                   "--json", env=via_proxy)  # fmt: skip
    assert made.returncode == 0, made.stderr
    url = json.loads(made.stdout)["url"]
    src = random_file(tmp_path / "up.bin", 1 << 20)
    proxy.plan = FaultPlan.scripted(ScriptedFault("slowdown", method="PUT"))
    put = run_cli("put", src, "--url", url, "--key-file", key_path,
                  "--ca-bundle", proxy.ca_bundle, env=holder_env)  # fmt: skip
    assert put.returncode == 0, put.stderr
    assert "attempt 2 of 5" in put.stderr
    assert _read(admin, bucket, "up.bin", key) == src.read_bytes()
    # Five busy answers in a row: the last one is the error, after five attempts.
    proxy.plan = FaultPlan.scripted(
        *(ScriptedFault("internal_error", nth=n, method="PUT") for n in range(1, 6))
    )
    failed = run_cli("put", src, "--url", url, "--key-file", key_path,
                     "--ca-bundle", proxy.ca_bundle, env=holder_env)  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "attempt 5 of 5" in failed.stderr
    assert "attempt 6" not in failed.stderr
