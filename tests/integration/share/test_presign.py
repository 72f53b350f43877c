"""Presigned URLs with SSE-C, end to end on a real server: `presign` with credentials, then
`get --url` / `put --url` (and curl) in a process without any S3 credentials. Every refusal
has its exit code, says what to do, and leaves nothing behind: no file, no temporary file, no
object."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ssec_transfer.servers.base import ServerInfo
from tests.support.helpers import make_key_file, random_file, run_cli

pytestmark = pytest.mark.integration

DATA = b"shared without credentials\n" * 1000


@pytest.fixture
def bare_env(server_env: dict[str, str], s3_server: ServerInfo) -> dict[str, str]:
    """What the URL's holder has: no AWS_* variable at all (no credentials, no endpoint)."""
    env = {k: v for k, v in server_env.items() if not k.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env


@pytest.fixture
def stored(bucket: str, server_env: dict[str, str], key_file: Any, tmp_path: Path) -> str:
    """s3://bucket/dir/shared.bin holding DATA under the fixture's key."""
    src = tmp_path / "shared.bin"
    src.write_bytes(DATA)
    target = f"s3://{bucket}/dir/shared.bin"
    assert run_cli("put", src, target, "--key-file", key_file[0], env=server_env).returncode == 0
    return target


def presign(target: str, key: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    done = run_cli("presign", target, "--key-file", key, "--json", *extra, env=env)
    assert done.returncode == 0, done.stderr
    record: dict[str, Any] = json.loads(done.stdout)
    return record


def ca(s3_server: ServerInfo) -> list[str]:
    return ["--ca-bundle", str(s3_server.ca_bundle)]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def keys_in(admin: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_get_url_downloads_without_credentials(
    stored: str, key_file: Any, server_env: dict[str, str], bare_env: dict[str, str],
    s3_server: ServerInfo, tmp_path: Path,
) -> None:  # fmt: skip
    key_path, key = key_file
    record = presign(stored, key_path, server_env, "--expires", "10m")
    assert record["type"] == "presign"
    assert record["method"] == "GET"
    assert record["key_fingerprint"] == key.fingerprint
    assert record["url"].startswith("https://")
    assert key.export_base64() not in record["url"]
    assert "x-amz-server-side-encryption-customer-key-md5" in record["signed_headers"]
    assert 590 <= record["expires_in"] <= 600
    out = tmp_path / "out"
    out.mkdir()
    done = run_cli("get", "--url", record["url"], out, "--key-file", key_path, "--json",
                   *ca(s3_server), env=bare_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "shared.bin").read_bytes() == DATA
    assert listing(out) == ["shared.bin"]
    line = json.loads(done.stdout)
    assert line["operation"] == "download"
    assert line["status"] == "ok"
    assert line["size"] == len(DATA)
    assert line["key_fingerprint"] == key.fingerprint
    assert "X-Amz-Signature" not in done.stdout + done.stderr  # the URL's credential


def test_put_url_uploads_and_a_normal_get_reads_it(
    bucket: str, key_file: Any, server_env: dict[str, str], bare_env: dict[str, str],
    s3_server: ServerInfo, tmp_path: Path,
) -> None:  # fmt: skip
    key_path, _ = key_file
    target = f"s3://{bucket}/in/upload.bin"
    record = presign(target, key_path, server_env, "--put")
    assert record["method"] == "PUT"
    src = random_file(tmp_path / "upload.bin", 3 * 1024 * 1024 + 7)
    done = run_cli("put", src, "--url", record["url"], "--key-file", key_path, *ca(s3_server),
                   env=bare_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    back = tmp_path / "back.bin"
    assert run_cli("get", target, back, "--key-file", key_path, env=server_env).returncode == 0
    assert back.read_bytes() == src.read_bytes()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_reads_the_headers_from_a_0600_file(
    stored: str, key_file: Any, server_env: dict[str, str], s3_server: ServerInfo,
    tmp_path: Path,
) -> None:  # fmt: skip
    key_path, key = key_file
    headers = tmp_path / "sse-c.headers"
    done = run_cli("presign", stored, "--key-file", key_path, "--curl-headers", headers,
                   env=server_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert stat.S_IMODE(headers.stat().st_mode) == 0o600
    assert key.export_base64() in headers.read_text()
    assert key.export_base64() not in done.stdout + done.stderr
    assert f"-H @{headers}" in done.stderr
    out = tmp_path / "curl.bin"
    fetched = subprocess.run(
        ["curl", "-fsS", "--cacert", str(s3_server.ca_bundle), "-H", f"@{headers}",
         "-o", str(out), url.split("#", 1)[0]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    assert out.read_bytes() == DATA
    # An existing headers file is never replaced (nor its mode trusted).
    again = run_cli("presign", stored, "--key-file", key_path, "--curl-headers", headers,
                    env=server_env)  # fmt: skip
    assert again.returncode == 2
    assert "refusing to overwrite" in again.stderr


def test_a_wrong_key_is_refused_before_sending(
    stored: str, bucket: str, admin: Any, key_file: Any, server_env: dict[str, str],
    bare_env: dict[str, str], s3_server: ServerInfo, tmp_path: Path,
) -> None:  # fmt: skip
    key_path, key = key_file
    other_path, other = make_key_file(tmp_path)
    record = presign(stored, key_path, server_env)
    out = tmp_path / "out"
    out.mkdir()
    done = run_cli("get", "--url", record["url"], out / "x.bin", "--key-file", other_path,
                   *ca(s3_server), env=bare_env)  # fmt: skip
    assert done.returncode == 3
    assert key.fingerprint in done.stderr
    assert other.fingerprint in done.stderr
    assert "nothing was sent" in done.stderr
    assert listing(out) == []
    put_url = presign(f"s3://{bucket}/in/new.bin", key_path, server_env, "--put")["url"]
    src = tmp_path / "new.bin"
    src.write_bytes(b"x")
    done = run_cli("put", src, "--url", put_url, "--key-file", other_path, *ca(s3_server),
                   env=bare_env)  # fmt: skip
    assert done.returncode == 3
    assert keys_in(admin, bucket) == ["dir/shared.bin"]
    # Without the fragment the server is the judge: its refusal is said, nothing is kept.
    done = run_cli("get", "--url", record["url"].split("#")[0], out / "x.bin", "--key-file",
                   other_path, *ca(s3_server), env=bare_env)  # fmt: skip
    assert done.returncode in (1, 3), done.stderr
    assert "another key" in done.stderr or "refused the key" in done.stderr
    assert listing(out) == []


def test_an_expired_url_is_refused_locally_and_by_the_server(
    stored: str, key_file: Any, server_env: dict[str, str], bare_env: dict[str, str],
    s3_server: ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    key_path, _ = key_file
    record = presign(stored, key_path, server_env, "--expires", "1s")
    time.sleep(2.5)
    dest = tmp_path / "late.bin"
    done = run_cli("get", "--url", record["url"], dest, "--key-file", key_path,
                   *ca(s3_server), env=bare_env)  # fmt: skip
    assert done.returncode == 2
    assert "expired at" in done.stderr
    assert "nothing was sent" in done.stderr
    assert not dest.exists()
    # With this machine's clock behind, the local check passes and the server refuses.
    from ssec_transfer.cli.main import main
    from ssec_transfer.share import presign as presign_module

    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(presign_module, "_now", lambda: time.time() - 3600)
    code = main(["get", "--url", record["url"], str(dest), "--key-file", str(key_path),
                 *ca(s3_server)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    if s3_server.name == "ceph":  # Ceph: a bare AccessDenied, so every cause is named
        assert "the URL may have expired by the server's clock" in err
    else:
        assert "the server says the URL has expired" in err
    assert not dest.exists()
    assert [p for p in tmp_path.iterdir() if ".ssec-transfer-" in p.name] == []


def test_a_get_url_used_for_put_is_refused(
    stored: str, bucket: str, admin: Any, key_file: Any, server_env: dict[str, str],
    bare_env: dict[str, str], s3_server: ServerInfo, tmp_path: Path,
) -> None:  # fmt: skip
    key_path, _ = key_file
    url = presign(stored, key_path, server_env)["url"]
    src = tmp_path / "replacement.bin"
    src.write_bytes(b"not the object")
    done = run_cli("put", src, "--url", url, "--key-file", key_path, *ca(s3_server),
                   env=bare_env)  # fmt: skip
    assert done.returncode == 2
    assert "presigned for GET, not PUT" in done.stderr
    # Without the fragment, the server refuses the signature (the method is signed).
    done = run_cli("put", src, "--url", url.split("#")[0], "--key-file", key_path,
                   *ca(s3_server), env=bare_env)  # fmt: skip
    assert done.returncode == 1
    assert "refused the URL's signature" in done.stderr
    back = tmp_path / "back.bin"
    assert run_cli("get", stored, back, "--key-file", key_path, env=server_env).returncode == 0
    assert back.read_bytes() == DATA


def test_http_is_refused_before_the_key_is_sent(
    stored: str, key_file: Any, server_env: dict[str, str], bare_env: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    key_path, _ = key_file
    url = presign(stored, key_path, server_env)["url"]
    plain = "http://" + url.removeprefix("https://")
    done = run_cli("get", "--url", plain, tmp_path / "x", "--key-file", key_path, env=bare_env)
    assert done.returncode == 2
    assert "refusing to send an SSE-C key" in done.stderr
    assert not (tmp_path / "x").exists()
    env = {**server_env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    done = run_cli("presign", stored, "--key-file", key_path, env=env)
    assert done.returncode == 2
    assert "SSE-C requires HTTPS" in done.stderr


def test_a_tampered_signature_is_refused_and_nothing_is_written(
    stored: str, key_file: Any, server_env: dict[str, str], bare_env: dict[str, str],
    s3_server: ServerInfo, tmp_path: Path,
) -> None:  # fmt: skip
    key_path, _ = key_file
    url = presign(stored, key_path, server_env)["url"]
    head, _, fragment = url.partition("#")
    last = head[-1]
    tampered = head[:-1] + ("0" if last != "0" else "1") + "#" + fragment
    out = tmp_path / "out"
    out.mkdir()
    done = run_cli("get", "--url", tampered, out / "x.bin", "--key-file", key_path,
                   *ca(s3_server), env=bare_env)  # fmt: skip
    assert done.returncode == 1
    assert "refused the URL's signature" in done.stderr
    assert "hint:" in done.stderr
    assert "X-Amz-Signature" not in done.stderr
    assert listing(out) == []


def test_refusals_before_any_request(
    stored: str, key_file: Any, server_env: dict[str, str], bare_env: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    key_path, _ = key_file
    done = run_cli("presign", stored, "--key-file", key_path, "--expires", "8d", env=server_env)
    assert done.returncode == 2
    assert "longer than 7 days" in done.stderr
    url = presign(stored, key_path, server_env)["url"]
    cases = [
        (["get", "--url", url, tmp_path / "d", "--recursive"], "--recursive"),
        (["get", "--url", url, tmp_path / "d", "--version-id", "v"], "--version-id"),
        (["get", "--url", url, tmp_path / "d", "--resume"], "--resume"),
        (["get", "--url", url, stored, tmp_path / "d"], "instead of s3://BUCKET/KEY"),
        (["get", "--url", url], "one DEST"),
        (["get", "--url", url.split("?")[0], tmp_path / "d"], "not a SigV4 presigned URL"),
    ]
    for argv, message in cases:
        done = run_cli(*argv, "--key-file", key_path, env=bare_env)
        assert done.returncode == 2, (argv, done.stderr)
        assert message in done.stderr, (argv, done.stderr)
    assert listing(tmp_path) == ["shared.bin", "sse-c.key"]  # the source of `stored`
