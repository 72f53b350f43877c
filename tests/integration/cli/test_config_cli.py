"""The config file against a real server: put and get with the endpoint, CA bundle, key file
and part size only in config.toml round-trip byte for byte, and command-line flags win."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ssec_transfer.keys.customer import SSECustomerKey
from tests.support.helpers import make_key_file, random_file, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def configured(tmp_path: Path, server_env: dict[str, str]) -> tuple[dict[str, str], Path, Path]:
    """An environment whose endpoint, CA bundle and key exist only in a config file (the
    credentials stay in the AWS variables), with relative paths beside the file."""
    folder = tmp_path / "conf"
    folder.mkdir()
    shutil.copy(server_env["AWS_CA_BUNDLE"], folder / "ca.pem")
    key_path, _ = make_key_file(folder, "sse-c.key")
    config = folder / "config.toml"
    config.write_text(
        f'endpoint_url = "{server_env["AWS_ENDPOINT_URL"]}"\n'
        'ca_bundle = "ca.pem"\n'
        'key_file = "sse-c.key"\n'
        "\n[put]\n"
        'part_size = "5MiB"\n'
        'multipart_threshold = "5MiB"\n'
    )
    env = {k: v for k, v in server_env.items() if k not in ("AWS_ENDPOINT_URL", "AWS_CA_BUNDLE")}
    env["SSEC_TRANSFER_CONFIG"] = str(config)
    return env, config, key_path


def test_put_and_get_with_endpoint_and_key_only_in_the_config(
    tmp_path: Path, bucket: str, configured: tuple[dict[str, str], Path, Path]
) -> None:
    env, config, key_path = configured
    src = random_file(tmp_path / "data.bin", 12 * 1024 * 1024 + 17)
    put = run_cli("-v", "put", src, f"s3://{bucket}/data.bin", "--json", env=env)
    assert put.returncode == 0, put.stderr
    assert (
        f"defaults from {config}: endpoint_url, ca_bundle, key_file, part_size [put], "
        "multipart_threshold [put]" in put.stderr
    )
    assert json.loads(put.stdout)["parts"] == 3  # [put] part_size = "5MiB"

    out = tmp_path / "out.bin"
    get = run_cli("get", f"s3://{bucket}/data.bin", out, env=env)
    assert get.returncode == 0, get.stderr
    assert out.read_bytes() == src.read_bytes()

    # The object is under the config's key: head with that key file, named on the command
    # line, reports its fingerprint.
    head = run_cli("head", f"s3://{bucket}/data.bin", "--key-file", key_path, "--json", env=env)
    assert head.returncode == 0, head.stderr
    assert (
        json.loads(head.stdout)["key_fingerprint"] == SSECustomerKey.from_file(key_path).fingerprint
    )


def test_flags_override_the_config(
    tmp_path: Path, bucket: str, configured: tuple[dict[str, str], Path, Path]
) -> None:
    env, _, _ = configured
    src = random_file(tmp_path / "small.bin", 1000)
    assert run_cli("put", src, f"s3://{bucket}/small.bin", env=env).returncode == 0

    # Another key by --key-env: no "not allowed with --key-file", and the config's key is
    # not used in its place (the server refuses the other key).
    _, other = make_key_file(tmp_path, "other.key")
    wrong = run_cli(
        "get",
        f"s3://{bucket}/small.bin",
        tmp_path / "x.bin",
        "--key-env",
        "OTHER_KEY",
        env={**env, "OTHER_KEY": other.export_base64()},
    )
    assert wrong.returncode == 3, wrong.stderr
    assert "does not match" in wrong.stderr
    assert not (tmp_path / "x.bin").exists()

    # Another endpoint by flag: the config's endpoint is not tried.
    elsewhere = run_cli(
        "head",
        f"s3://{bucket}/small.bin",
        "--endpoint-url",
        "https://127.0.0.1:9",
        "--max-attempts",
        "1",
        env=env,
    )
    assert elsewhere.returncode == 1
    assert "cannot connect" in elsewhere.stderr
    assert "127.0.0.1:9" in elsewhere.stderr

    # The same object with the config's defaults again.
    out = tmp_path / "back.bin"
    assert run_cli("get", f"s3://{bucket}/small.bin", out, env=env).returncode == 0
    assert out.read_bytes() == src.read_bytes()
