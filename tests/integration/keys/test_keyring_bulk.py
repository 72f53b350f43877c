"""--keyring on a recursive get finds each object's key; an unsaved key draws a warning."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.support.helpers import random_file, run_cli

pytestmark = pytest.mark.integration


def test_recursive_get_with_keyring_and_unsaved_key_warning(
    tmp_path: Path, bucket: str, server_env: dict[str, str]
) -> None:
    env = dict(server_env, SSEC_TRANSFER_KEYRING_PASSPHRASE="correct horse battery staple")
    for name in ("one", "two"):
        made = run_cli("keyring", "generate", name, env=env)
        assert made.returncode == 0, made.stderr
    exported = {}
    for name in ("one", "two"):
        out = tmp_path / f"{name}.key"
        assert run_cli("keyring", "export", name, "--to", out, env=env).returncode == 0
        exported[name] = out
    a = random_file(tmp_path / "src" / "a.bin", 3000)
    b = random_file(tmp_path / "src" / "b.bin", 4000)
    assert run_cli("put", a, f"s3://{bucket}/p/a.bin", "--key-file", exported["one"],
                   env=env).returncode == 0  # fmt: skip
    # b goes up with a key from an environment variable: the tool warns it is saved nowhere
    env_b = dict(env, B_KEY=base64.b64encode(exported["two"].read_bytes()).decode())
    up = run_cli("put", b, f"s3://{bucket}/p/b.bin", "--key-env", "B_KEY", env=env_b)
    assert up.returncode == 0, up.stderr
    assert "saved nowhere else" in up.stderr

    out = tmp_path / "out"
    got = run_cli("get", f"s3://{bucket}/p/", out, "--recursive", "--keyring", env=env)
    assert got.returncode == 0, got.stderr
    assert (out / "a.bin").read_bytes() == a.read_bytes()
    assert (out / "b.bin").read_bytes() == b.read_bytes()
