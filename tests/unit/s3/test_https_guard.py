"""A key is never sent to an http:// endpoint: refused before any connection is opened."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.helpers import make_key_file, run_cli


@pytest.fixture
def recording_listener() -> Iterator[tuple[str, list[bytes]]]:
    """A TCP listener that records every connection (and what arrives on it)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    seen: list[bytes] = []
    stop = threading.Event()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    seen.append(conn.recv(65536))
                except OSError:
                    seen.append(b"")

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", seen
    stop.set()
    thread.join()
    server.close()


def _env(endpoint: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y", AWS_ENDPOINT_URL=endpoint)
    return env


@pytest.mark.parametrize("command", ["put", "get", "head"])
def test_http_endpoint_refused_before_any_connection(
    tmp_path: Path, recording_listener: tuple[str, list[bytes]], command: str
) -> None:
    endpoint, seen = recording_listener
    key_path, _ = make_key_file(tmp_path)
    src = tmp_path / "data.bin"
    src.write_bytes(b"x" * 1000)
    args = {
        "put": ["put", src, "s3://bucket/data.bin"],
        "get": ["get", "s3://bucket/data.bin", tmp_path / "out.bin"],
        "head": ["head", "s3://bucket/data.bin"],
    }[command]
    for how in (["--endpoint-url", endpoint], []):  # flag, then AWS_ENDPOINT_URL
        result = run_cli(*args, "--key-file", key_path, *how, env=_env(endpoint))
        assert result.returncode == 2, result.stderr
        assert "SSE-C requires HTTPS" in result.stderr
    assert seen == []
    assert not (tmp_path / "out.bin").exists()
