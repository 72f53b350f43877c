"""No key material anywhere: every command at -vv (engine and botocore DEBUG logs on), with a
known key, and every file the tool wrote, scanned for the key in each form it could take."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.helpers import random_file, run_cli, run_cli_bytes

pytestmark = pytest.mark.integration

# A passphrase-style key: its raw form is printable, so it could leak as plain text too.
KEY = b"KnownTestKey-0123456789abcdefXYZ"
NEW = b"AnotherTestKey-9876543210zyxwvUT"
assert len(KEY) == len(NEW) == 32


def _forms(raw: bytes) -> list[bytes]:
    b64, urlsafe = base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw).rstrip(b"=")
    return [raw, b64, urlsafe, raw.hex().encode(), repr(raw).encode()]  # unpadded: either way


def _write_key(path: Path, raw: bytes) -> Path:
    path.write_bytes(raw)
    path.chmod(0o600)
    return path


def test_no_key_in_any_output_or_file(
    tmp_path: Path, bucket: str, server_env: dict[str, str]
) -> None:
    home = tmp_path / "home"
    env = dict(
        server_env,
        XDG_DATA_HOME=str(home / "data"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CACHE_HOME=str(home / "cache"),
    )
    keys = tmp_path / "keys"
    keys.mkdir()
    key_path = _write_key(keys / "k.key", KEY)
    new_path = _write_key(keys / "new.key", NEW)
    wrong = _write_key(keys / "wrong.key", b"W" * 32)
    work = tmp_path / "work"
    small = random_file(work / "tree" / "small.bin", 1000)
    big = random_file(work / "tree" / "big.bin", 11 * 1024 * 1024)
    url = f"s3://{bucket}"
    k = ["--key-file", key_path]
    b64 = base64.urlsafe_b64encode(NEW).decode()
    runs: list[list[object]] = [
        ["put", small, f"{url}/small.bin", *k, "--json"],
        ["put", big, f"{url}/big.bin", *k, "--part-size", "5MiB", "--resume"],
        ["get", f"{url}/big.bin", work / "out.bin", *k, "--part-size", "5MiB", "--json"],
        ["head", f"{url}/small.bin", *k],
        ["get", f"{url}/big.bin", work / "bad.bin", "--key-file", wrong, "--json"],
        ["put", work / "tree", f"{url}/tree/", "--recursive", *k, "--json", "--skip-existing"],
        ["get", f"{url}/tree/", work / "copy", "--recursive", *k, "--json"],
        ["cp", f"{url}/small.bin", f"{url}/copy.bin", "--source-key-file", key_path,
         "--key-file", new_path, "--json"],
        ["rotate", f"{url}/copy.bin", "--key-file", new_path, "--new-key-file", key_path,
         "--json"],
        ["mv", random_file(work / "mv.bin", 2000), f"{url}/mv/", *k, "--json"],
        ["mv", f"{url}/mv/mv.bin", work / "mv-back.bin", *k, "--json"],
        ["mv", f"{url}/copy.bin", f"{url}/moved.bin", "--source-key-file", key_path,
         "--key-file", new_path, "--json"],
        ["ls", f"{url}/", "--versions", "--json"],
        ["doctor", "--bucket", bucket, "--json"],
        ["cleanup", f"{url}/", "--dry-run", "--json"],
        ["put", small, f"{url}/x", "--key-file", KEY.decode()],
        ["put", small, f"{url}/x", "--sse-c-key", KEY.decode()],
        # key material typed where a name belongs, or where nothing does (refused, not echoed)
        ["put", small, f"{url}/x", "--key-env", b64, "--json"],
        ["put", small, f"{url}/x", "--key-file", KEY.hex(), "--json"],
        ["get", f"{url}/small.bin", work / "o.bin", "--key-env", KEY.decode(), "--json"],
        ["cp", f"{url}/small.bin", f"{url}/c.bin", "--source-key-env", b64, "--json"],
        ["rotate", f"{url}/small.bin", *k, "--new-key-env", b64, "--json"],
        ["rotate", f"{url}/small.bin", *k, "--new-key-file", b64, "--json"],
        ["keyring", "add", "typed", "--key-env", b64],
        ["get", f"{url}/small.bin", work / "o.bin", f"--key={b64}", "--json"],
        ["get", f"{url}/small.bin", work / "o.bin", b64, "--json"],
        ["head", b64],
    ]  # fmt: skip
    outputs: list[bytes] = []
    for args in runs:
        result = run_cli("-vv", *args, env=env)  # type: ignore[arg-type]
        outputs.append((result.stdout + result.stderr).encode())
    piped = run_cli_bytes("-vv", "put", "-", f"{url}/piped.bin", *k, env=env, input=os.urandom(99))
    outputs.append(piped.stdout + piped.stderr)
    fetched = run_cli_bytes("-vv", "get", f"{url}/piped.bin", "-", *k, env=env)
    outputs.append(fetched.stderr)  # stdout is the object's bytes

    # watch, stopped with SIGINT after it uploaded something
    inbox = work / "inbox"
    random_file(inbox / "product.nc", 5000)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "ssec_transfer", "-vv", "watch", str(inbox), f"{url}/in/",
         "--key-file", str(key_path), "--settle", "0.2", "--interval", "0.1", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(4)
    watcher.send_signal(signal.SIGINT)
    out, err = watcher.communicate(timeout=60)
    outputs.append(out + err)

    combined = b"\n".join(outputs)
    assert b"botocore" in combined  # the wire logs really were on
    assert b"x-amz-server-side-encryption-customer-key" in combined.lower()
    assert combined.count(b"this looks like key material") >= 8  # every typed key refused
    assert b'"status": "ok"' in out  # watch did its job
    for raw in (KEY, NEW):
        for form in _forms(raw):
            assert form not in combined, f"key material ({form[:4]!r}...) leaked into output"

    # Every file the tool wrote: ledger, journal, caches, watch state, downloads.
    written = [p for p in [*home.rglob("*"), *work.rglob("*")] if p.is_file()]
    assert any(p.name == "ledger.sqlite" for p in written)
    assert any(p.name.startswith(".ssec-transfer-watch") for p in written)
    for path in written:
        data = path.read_bytes()
        for raw in (KEY, NEW):
            for form in _forms(raw):
                assert form not in data, f"key material found in {path}"
    assert (work / "out.bin").read_bytes() == big.read_bytes()
    assert not (work / "bad.bin").exists()
