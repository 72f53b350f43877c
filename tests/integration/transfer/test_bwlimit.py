"""--bwlimit on a real server: every path a payload byte takes is held to RATE, and the bytes
arrive intact. Timings are lower bounds only (this machine is slow and shared): 6 MiB at
2 MiB/s cannot take less than (6 MiB - one burst of 128 KiB) / 2 MiB/s = 2.94 s; 2.5 s is
asserted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ssec_transfer.keys.customer import SSECustomerKey
from tests.support.helpers import random_file, run_cli, run_cli_bytes

pytestmark = pytest.mark.integration

KeyFile = tuple[Path, SSECustomerKey]
MiB = 1024 * 1024
SIZE = 6 * MiB
AT_LEAST = 2.5  # seconds, for SIZE at 2 MiB/s


def _transfer(*args: str | Path, env: dict[str, str]) -> float:
    """Run one CLI transfer; the seconds it reports for the object."""
    result = run_cli(*args, "--bwlimit", "2MiB", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return float(json.loads(result.stdout.splitlines()[-1])["seconds"])


@pytest.mark.parametrize(
    "sizes",
    [
        pytest.param([], id="single-request"),  # one PutObject, one GetObject read whole
        pytest.param(  # UploadPart from the file, ranged GETs
            ["--multipart-threshold", "1MiB", "--part-size", "5MiB"], id="multipart"
        ),
    ],
)
def test_put_and_get_are_held_to_the_rate_and_round_trip(
    tmp_path: Path,
    bucket: str,
    server_env: dict[str, str],
    key_file: KeyFile,
    sizes: list[str],
) -> None:
    key_path, _ = key_file
    src = random_file(tmp_path / "f.bin", SIZE)
    url = f"s3://{bucket}/f.bin"
    up = _transfer("put", src, url, "--key-file", key_path, *sizes, env=server_env)
    assert up >= AT_LEAST
    out = tmp_path / "out.bin"
    down = _transfer("get", url, out, "--key-file", key_path, *sizes, env=server_env)
    assert down >= AT_LEAST
    assert out.read_bytes() == src.read_bytes()


def test_streams_through_pipes_are_held_to_the_rate(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: KeyFile
) -> None:
    key_path, _ = key_file
    data = random_file(tmp_path / "f.bin", SIZE).read_bytes()
    url = f"s3://{bucket}/piped.bin"
    started = time.monotonic()
    up = run_cli_bytes("put", "-", url, "--key-file", key_path, "--bwlimit", "2MiB",
                       env=server_env, input=data)  # fmt: skip
    assert up.returncode == 0, up.stderr.decode()
    assert time.monotonic() - started >= AT_LEAST
    started = time.monotonic()
    down = run_cli_bytes("get", url, "-", "--key-file", key_path, "--bwlimit", "2MiB",
                         env=server_env)  # fmt: skip
    assert down.returncode == 0, down.stderr.decode()
    assert time.monotonic() - started >= AT_LEAST
    assert down.stdout == data


def test_a_copy_streamed_through_the_client_is_charged_both_ways(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: KeyFile
) -> None:
    """6 MiB read and 6 MiB written again (plus the verifying read) at 4 MiB/s: at least
    (12 MiB - one burst) / 4 MiB/s, about 2.97 s."""
    key_path, _ = key_file
    src = random_file(tmp_path / "f.bin", SIZE)
    put = run_cli("put", src, f"s3://{bucket}/a.bin", "--key-file", key_path, env=server_env)
    assert put.returncode == 0, put.stderr
    started = time.monotonic()
    cp = run_cli("cp", f"s3://{bucket}/a.bin", f"s3://{bucket}/b.bin", "--source-key-file",
                 key_path, "--key-file", key_path,
                 "--via", "stream", "--bwlimit", "4MiB", "--json", env=server_env)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert time.monotonic() - started >= AT_LEAST
    out = tmp_path / "out.bin"
    get = run_cli("get", f"s3://{bucket}/b.bin", out, "--key-file", key_path, env=server_env)
    assert get.returncode == 0, get.stderr
    assert out.read_bytes() == src.read_bytes()
