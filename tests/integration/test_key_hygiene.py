"""No key material in any output, even with engine and botocore DEBUG logs on."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.helpers import random_file, run_cli

pytestmark = pytest.mark.integration

# A passphrase-style key: its raw form is printable, so it could leak as plain text too.
PASSPHRASE = b"KnownTestKey-0123456789abcdefXYZ"
assert len(PASSPHRASE) == 32


def _forms() -> list[str]:
    return [
        PASSPHRASE.decode(),
        base64.b64encode(PASSPHRASE).decode(),
        repr(PASSPHRASE),
    ]


def test_no_key_in_debug_output(tmp_path: Path, bucket: str, server_env: dict[str, str]) -> None:
    key_path = tmp_path / "k.key"
    key_path.write_bytes(PASSPHRASE)
    key_path.chmod(0o600)
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(b"W" * 32)
    wrong.chmod(0o600)
    small = random_file(tmp_path / "small.bin", 1000)
    big = random_file(tmp_path / "big.bin", 11 * 1024 * 1024)
    url = f"s3://{bucket}"
    runs = [
        ("-vv", "put", small, f"{url}/small.bin", "--key-file", key_path, "--json"),
        ("-vv", "put", big, f"{url}/big.bin", "--key-file", key_path, "--part-size", "5MiB"),
        ("-vv", "get", f"{url}/big.bin", tmp_path / "out.bin", "--key-file", key_path,
         "--part-size", "5MiB", "--json"),
        ("-vv", "head", f"{url}/small.bin", "--key-file", key_path),
        ("-vv", "get", f"{url}/big.bin", tmp_path / "bad.bin", "--key-file", wrong, "--json"),
        ("-vv", "put", small, f"{url}/x", "--key-file", "KnownTestKey-0123456789abcdefXYZ"),
    ]  # fmt: skip
    outputs = []
    for args in runs:
        result = run_cli(*args, env=server_env)
        outputs.append(result.stdout + result.stderr)
    combined = "\n".join(outputs)
    assert "botocore" in combined  # the wire logs really were on
    assert "x-amz-server-side-encryption-customer-key" in combined.lower()
    for form in _forms():
        assert form not in combined, f"key material ({form[:4]}...) leaked into the output"
    # The files the tool wrote hold data, never the key.
    assert (tmp_path / "out.bin").read_bytes() == big.read_bytes()
    assert not (tmp_path / "bad.bin").exists()
