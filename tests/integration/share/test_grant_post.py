"""`grant` and `post` against the real server: an upload through a grant needs no S3
credentials, reads back byte-identical with the key, and every bad input gets its exit code,
one clear message and nothing stored.

The server's own refusals (a grant edited by hand, a clock far off) cannot be reached through
the CLI, whose checks come first: those cases call `share.post.post_file` directly, which
makes no local checks, and show what the server answers and how it is translated.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from botocore.credentials import ReadOnlyCredentials

from ssec_transfer.core.errors import AccessDeniedError, LocalIOError, WrongKeyError
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.servers.base import ServerInfo
from ssec_transfer.share import post
from ssec_transfer.share.grant import build_grant, parse_grant
from ssec_transfer.share.https import open_session
from tests.support.helpers import make_key_file, random_file, run_cli
from tests.support.json_schema import validate_lines

pytestmark = pytest.mark.integration

KeyFile = tuple[Path, SSECustomerKey]


def keys_left(admin: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", []))


@pytest.fixture
def uploader_env(server_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """What the person posting has: no AWS variable at all, and no ~/.aws either."""
    env = {k: v for k, v in server_env.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path / "home")
    return env


def grant_cli(
    bucket: str, key_path: Path, out: Path, env: dict[str, str], *extra: str | Path
) -> Any:
    return run_cli("grant", f"s3://{bucket}/incoming/", "--key-file", key_path,
                   "--expires", "1h", "--out", out, *extra, env=env)  # fmt: skip


def post_cli(
    server: ServerInfo, grant: Path, key_path: Path, env: dict[str, str], *args: str | Path
) -> Any:
    return run_cli("post", *args, "--grant", grant, "--key-file", key_path,
                   "--ca-bundle", str(server.ca_bundle), env=env)  # fmt: skip


@pytest.fixture
def granted(tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: KeyFile) -> Path:
    key_path, _ = key_file
    out = tmp_path / "grant.json"
    done = grant_cli(bucket, key_path, out, server_env, "--max-size", "1MiB")
    assert done.returncode == 0, done.stderr
    return out


def test_round_trip_without_credentials(
    tmp_path: Path, bucket: str, s3_server: ServerInfo, server_env: dict[str, str],
    uploader_env: dict[str, str], key_file: KeyFile, admin: Any,
) -> None:  # fmt: skip
    key_path, key = key_file
    out = tmp_path / "grant.json"
    done = grant_cli(bucket, key_path, out, server_env, "--json")
    assert done.returncode == 0, done.stderr
    [line] = validate_lines(done.stdout)
    assert line["type"] == "grant"
    assert line["bucket"] == bucket
    assert line["prefix"] == "incoming/"
    assert line["key_fingerprint"] == key.fingerprint
    assert line["file"] == str(out)
    assert line["max_size"] == 5 * 1024**3
    assert line["url"].startswith("https://")

    small = random_file(tmp_path / "a.bin", 1000)
    large = random_file(tmp_path / "b.bin", 3 * 1024 * 1024 + 17)  # several slices
    sent = post_cli(s3_server, out, key_path, uploader_env, small, large, "--jobs", "2", "--json")
    assert sent.returncode == 0, sent.stderr
    records = validate_lines(sent.stdout)
    summary = records.pop()
    assert summary["type"] == "summary"
    assert summary["ok"] == 2
    assert summary["failed"] == 0
    assert {r["key"] for r in records} == {"incoming/a.bin", "incoming/b.bin"}
    for record in records:
        assert record["status"] == "ok"
        assert record["via"] == "post"
        assert record["etag"]
        assert record["key_fingerprint"] == key.fingerprint

    for src in (small, large):
        dest = tmp_path / f"back-{src.name}"
        got = run_cli("get", f"s3://{bucket}/incoming/{src.name}", dest, "--key-file", key_path,
                      env=server_env)  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert dest.read_bytes() == src.read_bytes()
    # Encrypted under the key: without it the object cannot be read.
    without = run_cli("get", f"s3://{bucket}/incoming/a.bin", tmp_path / "x", env=server_env)
    assert without.returncode == 3


def test_name_puts_the_object_in_a_folder_of_the_prefix(
    tmp_path: Path, bucket: str, s3_server: ServerInfo, uploader_env: dict[str, str],
    granted: Path, key_file: KeyFile, admin: Any,
) -> None:  # fmt: skip
    src = random_file(tmp_path / "obs.nc", 2000)
    sent = post_cli(s3_server, granted, key_file[0], uploader_env, src, "--name", "2026/obs.nc")
    assert sent.returncode == 0, sent.stderr
    assert "incoming/2026/obs.nc" in sent.stderr
    assert keys_left(admin, bucket) == ["incoming/2026/obs.nc"]


def test_grant_holds_no_key_and_no_secret(
    granted: Path,
    s3_server: ServerInfo,
    key_file: KeyFile,
) -> None:
    _, key = key_file
    text = granted.read_text()
    assert key.export_base64() not in text
    assert s3_server.secret_key not in text
    grant = json.loads(text)
    assert grant["key_fingerprint"] == key.fingerprint
    assert "x-amz-server-side-encryption-customer-key" not in grant["fields"]
    assert grant["url"].startswith("https://")


def test_wrong_key_is_refused_before_sending(
    tmp_path: Path, bucket: str, s3_server: ServerInfo, uploader_env: dict[str, str],
    granted: Path, admin: Any,
) -> None:  # fmt: skip
    other_path, other = make_key_file(tmp_path)
    src = random_file(tmp_path / "a.bin", 1000)
    sent = post_cli(s3_server, granted, other_path, uploader_env, src, "--json")
    assert sent.returncode == 3
    [error] = validate_lines(sent.stdout)
    assert error["type"] == "error"
    assert error["error_type"] == "WrongKeyError"
    assert other.fingerprint in sent.stderr
    assert "nothing was sent" in sent.stderr
    assert keys_left(admin, bucket) == []


def test_expired_grant_is_refused_before_sending(
    tmp_path: Path, bucket: str, s3_server: ServerInfo, server_env: dict[str, str],
    uploader_env: dict[str, str], key_file: KeyFile, admin: Any,
) -> None:  # fmt: skip
    key_path, _ = key_file
    out = tmp_path / "grant.json"
    made = run_cli("grant", f"s3://{bucket}/incoming/", "--key-file", key_path, "--expires",
                   "1s", "--out", out, env=server_env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    time.sleep(2.1)
    sent = post_cli(s3_server, out, key_path, uploader_env, random_file(tmp_path / "a", 10))
    assert sent.returncode == 2
    assert "expired at" in sent.stderr
    assert "new grant" in sent.stderr
    assert keys_left(admin, bucket) == []


def test_file_over_the_size_range_is_refused_before_sending(
    tmp_path: Path, bucket: str, s3_server: ServerInfo, uploader_env: dict[str, str],
    granted: Path, key_file: KeyFile, admin: Any,
) -> None:  # fmt: skip
    small = random_file(tmp_path / "small.bin", 10)
    big = random_file(tmp_path / "big.bin", 1024 * 1024 + 1)
    sent = post_cli(s3_server, granted, key_file[0], uploader_env, small, big)
    assert sent.returncode == 2
    assert "big.bin is 1048577 bytes, outside the grant's size range 0..1048576" in sent.stderr
    assert keys_left(admin, bucket) == []  # not even the file that fits: all checked first


@pytest.mark.parametrize("name", ["../escape.bin", "/abs.bin", "a//b.bin", "./x"])
def test_name_outside_the_prefix_is_refused(
    name: str, tmp_path: Path, bucket: str, s3_server: ServerInfo,
    uploader_env: dict[str, str], granted: Path, key_file: KeyFile, admin: Any,
) -> None:  # fmt: skip
    src = random_file(tmp_path / "a.bin", 10)
    sent = post_cli(s3_server, granted, key_file[0], uploader_env, src, "--name", name)
    assert sent.returncode == 2
    assert "is not a name under the grant's prefix 'incoming/'" in sent.stderr
    assert keys_left(admin, bucket) == []


def test_http_endpoint_is_refused_by_grant_and_post(
    tmp_path: Path, bucket: str, s3_server: ServerInfo, server_env: dict[str, str],
    uploader_env: dict[str, str], granted: Path, key_file: KeyFile, admin: Any,
) -> None:  # fmt: skip
    key_path, _ = key_file
    plain = s3_server.endpoint_url.replace("https://", "http://")
    out = tmp_path / "plain.json"
    made = run_cli("grant", f"s3://{bucket}/incoming/", "--key-file", key_path, "--expires",
                   "1h", "--out", out, "--endpoint-url", plain, env=server_env)  # fmt: skip
    assert made.returncode == 2
    assert "refusing to grant uploads to http://" in made.stderr
    assert not out.exists()

    edited = json.loads(granted.read_text())
    edited["url"] = edited["url"].replace("https://", "http://")
    out.write_text(json.dumps(edited))
    sent = post_cli(s3_server, out, key_path, uploader_env, random_file(tmp_path / "a", 10))
    assert sent.returncode == 2
    assert "not an https:// URL" in sent.stderr
    assert keys_left(admin, bucket) == []


def test_tampered_policy_is_refused_by_the_server(
    tmp_path: Path, bucket: str, s3_server: ServerInfo, uploader_env: dict[str, str],
    granted: Path, key_file: KeyFile, admin: Any,
) -> None:  # fmt: skip
    """Someone raises the size limit in the policy and the grant alike: the local checks
    pass, the signature no longer matches."""
    grant = json.loads(granted.read_text())
    policy = json.loads(base64.b64decode(grant["fields"]["policy"]))
    policy["conditions"] = [
        ["content-length-range", 0, 4 << 20]
        if isinstance(c, list) and c[0] == "content-length-range"
        else c
        for c in policy["conditions"]
    ]
    grant["fields"]["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
    grant["max_size"] = 4 << 20
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(grant))
    src = random_file(tmp_path / "big.bin", 2 << 20)
    sent = post_cli(s3_server, edited, key_file[0], uploader_env, src, "--json")
    assert sent.returncode == 1
    [record] = validate_lines(sent.stdout)
    assert record["status"] == "failed"
    assert record["error_type"] == "AccessDeniedError"
    assert record["http_status"] == 403
    if s3_server.name == "ceph":  # a bare AccessDenied: every cause is named
        assert "changed after it was signed" in record["error"]
    else:
        assert "grant's signature" in record["error"]
    assert keys_left(admin, bucket) == []


def test_edited_grant_that_disagrees_with_its_policy_is_refused_locally(
    tmp_path: Path, bucket: str, s3_server: ServerInfo, uploader_env: dict[str, str],
    granted: Path, key_file: KeyFile, admin: Any,
) -> None:  # fmt: skip
    grant = json.loads(granted.read_text())
    grant["max_size"] = 4 << 20  # the policy still says 1 MiB
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(grant))
    sent = post_cli(s3_server, edited, key_file[0], uploader_env, random_file(tmp_path / "a", 9))
    assert sent.returncode == 2
    assert "not what its signed policy pins" in sent.stderr
    assert keys_left(admin, bucket) == []


def test_grant_checks_the_bucket_and_never_replaces_a_file(
    tmp_path: Path,
    bucket: str,
    server_env: dict[str, str],
    granted: Path,
    key_file: KeyFile,
) -> None:
    key_path, _ = key_file
    missing = run_cli("grant", "s3://no-such-bucket-here/in/", "--key-file", key_path,
                      "--expires", "1h", "--out", tmp_path / "g2.json", env=server_env)  # fmt: skip
    assert missing.returncode == 1
    assert "bucket 'no-such-bucket-here' does not exist" in missing.stderr
    assert not (tmp_path / "g2.json").exists()

    before = granted.read_text()
    again = grant_cli(bucket, key_path, granted, server_env)
    assert again.returncode == 2
    assert "exists; no grant was written" in again.stderr
    assert granted.read_text() == before
    forced = grant_cli(bucket, key_path, granted, server_env, "--force", "--html",
                       tmp_path / "upload.html")  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    assert granted.read_text() != before
    assert (tmp_path / "upload.html").exists()


# -- the server's own refusals, past the local checks -------------------------------------------


def _grant(server: ServerInfo, bucket: str, key: SSECustomerKey, **given: Any) -> Any:
    made: dict[str, Any] = {
        "endpoint_url": server.endpoint_url, "bucket": bucket, "prefix": "incoming/",
        "fingerprint": key.fingerprint, "region": server.region, "now": time.time(),
        "expires_in": 3600, "max_size": 4096,
        "credentials": ReadOnlyCredentials(server.access_key, server.secret_key, None),
    }  # fmt: skip
    return parse_grant(build_grant(**(made | given)), "test grant")


def _post(server: ServerInfo, grant: Any, path: Path, object_key: str, key: SSECustomerKey,
          progress: Any = None) -> Any:  # fmt: skip
    async def run() -> Any:
        async with open_session(
            str(server.ca_bundle), connect_timeout=10, read_timeout=60, connections=1
        ) as session:
            return await post.post_file(session, grant, str(path), object_key, key,
                                        progress=progress)  # fmt: skip

    return anyio.run(run)


def test_server_refusals_are_translated(
    tmp_path: Path,
    bucket: str,
    s3_server: ServerInfo,
    key_file: KeyFile,
    admin: Any,
) -> None:
    """Measured on SeaweedFS 4.48: a wrong key 400 InvalidArgument "The provided customer
    encryption key MD5 does not match the key."; too large 400 EntityTooLarge; outside the
    prefix 403 AccessDenied "Invalid according to Policy: Policy Condition failed"; expired
    403 AccessDenied "Invalid according to Policy: Policy expired"."""
    _, key = key_file
    seaweed = s3_server.name.lower().startswith("seaweed")
    small = random_file(tmp_path / "small.bin", 100)
    grant = _grant(s3_server, bucket, key)

    with pytest.raises(WrongKeyError) as wrong:
        _post(s3_server, grant, small, "incoming/w.bin", SSECustomerKey.generate())
    assert wrong.value.exit_code == 3
    assert wrong.value.context.status == 400
    if seaweed:
        assert "MD5 does not match" in str(wrong.value)

    big = random_file(tmp_path / "big.bin", 5000)
    with pytest.raises(AccessDeniedError) as large:
        _post(s3_server, grant, big, "incoming/big.bin", key)
    assert "size range" in str(large.value)
    assert large.value.context.status in (400, 403)

    with pytest.raises(AccessDeniedError) as outside:
        _post(s3_server, grant, small, "elsewhere/x.bin", key)
    assert outside.value.context.status == 403
    if seaweed:
        assert "does not meet the grant's conditions" in str(outside.value)

    expired = _grant(s3_server, bucket, key, now=time.time() - 7200)
    with pytest.raises(AccessDeniedError) as late:
        _post(s3_server, expired, small, "incoming/late.bin", key)
    assert late.value.context.status == 403
    if seaweed:
        assert "expired" in str(late.value)
    assert keys_left(admin, bucket) == []


def test_file_changed_while_posting_is_a_failure(
    tmp_path: Path,
    bucket: str,
    s3_server: ServerInfo,
    key_file: KeyFile,
) -> None:
    _, key = key_file
    grant = _grant(s3_server, bucket, key, max_size=8 << 20)
    src = random_file(tmp_path / "growing.bin", 2 << 20)

    def grow(_: int) -> None:
        with src.open("ab") as f:
            f.write(os.urandom(10))

    with pytest.raises(LocalIOError) as changed:
        _post(s3_server, grant, src, "incoming/growing.bin", key, progress=grow)
    assert "changed while it was being sent" in str(changed.value)
    assert "may exist" in str(changed.value)
