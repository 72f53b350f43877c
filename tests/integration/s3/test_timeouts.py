"""Nothing waits forever: servers that never speak, never answer, stop sending a body or stop
taking one are given up on within the timeouts, with a line on stderr while retrying, a clear
error at the end, and nothing written.

The silent endpoints are plain listeners in this process (one holds TCP connections without a
word, one completes TLS and then says nothing); the stalls mid-body come from the fault proxy
in front of the real server. Timeouts are scaled down (--connect-timeout 1 --read-timeout 2)
so each case takes seconds; the defaults are the same arithmetic at 60 s per silence.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssec_transfer.core.plan import MiB
from ssec_transfer.s3.sse import sse_params
from ssec_transfer.servers.base import ServerInfo
from ssec_transfer.servers.tls import make_tls
from tests.support.faultproxy import FaultPlan, FaultProxy, ScriptedFault
from tests.support.helpers import random_file, run_cli

pytestmark = pytest.mark.integration

FAST = ("--connect-timeout", "1", "--read-timeout", "2", "--max-attempts", "2")
# Python's start-up and imports (~1 s), two attempts (<= 2 x 2 s) and botocore's backoff
# (< 1 s): far below the minutes a hang would take, and well above a loaded machine's jitter.
BOUND = 15.0


class SilentServer:
    """A listener on 127.0.0.1 that accepts connections and never sends a byte; with `tls`,
    it completes the TLS handshake first (with a throwaway CA, in `ca_bundle`)."""

    def __init__(self, directory: Path, *, tls: bool) -> None:
        self._context: ssl.SSLContext | None = None
        self.ca_bundle: Path | None = None
        if tls:
            files = make_tls(directory / "silent-tls")
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._context.load_cert_chain(files.cert, files.key)
            self.ca_bundle = files.ca_cert
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._listener.settimeout(0.1)  # so that `close` ends the accepting thread at once
        self.connections = 0
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            conn.settimeout(5)  # a handshake that never comes ends its thread
            with self._lock:
                self.connections += 1
                self._held.append(conn)
            if self._context is not None:
                worker = threading.Thread(target=self._handshake, args=(conn,), daemon=True)
                self._threads.append(worker)
                worker.start()

    def _handshake(self, conn: socket.socket) -> None:
        assert self._context is not None
        try:
            tls = self._context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            return
        with self._lock:
            self._held.append(tls)  # holds the TLS session open, silent

    def close(self) -> None:
        self._closed.set()
        self._threads[0].join(timeout=5)
        self._listener.close()
        with self._lock:
            held, self._held = self._held, []
        for conn in held:
            conn.close()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture(params=["tcp", "tls"])
def silent(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SilentServer]:
    server = SilentServer(tmp_path, tls=request.param == "tls")
    try:
        yield server
    finally:
        server.close()


def _env(server_env: dict[str, str], server: SilentServer) -> dict[str, str]:
    env = dict(server_env, AWS_ENDPOINT_URL=server.url)
    if server.ca_bundle is not None:
        env["AWS_CA_BUNDLE"] = str(server.ca_bundle)
    return env


def _timed(*args: str | Path, env: dict[str, str]) -> tuple[float, str, str, int]:
    started = time.monotonic()
    result = run_cli(*args, env=env, timeout=120)
    return time.monotonic() - started, result.stdout, result.stderr, result.returncode


def _retry_line(silent: SilentServer, operation: str, url: str) -> str:
    """The line said before the second attempt, as the README documents it."""
    waited = "2 s" if silent.ca_bundle is not None else "1 s while connecting"
    return (
        f"no answer from 127.0.0.1:{silent.port} for {waited} ({operation} {url}), attempt 2 of 2"
    )


def test_head_of_a_silent_server_ends_within_the_timeouts(
    silent: SilentServer, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    elapsed, out, err, code = _timed(
        "head", "s3://b/k", "--key-file", key_path, *FAST, env=_env(server_env, silent)
    )
    assert code == 1, err
    assert elapsed < BOUND
    assert _retry_line(silent, "HeadObject", "s3://b/k") in err
    assert re.search(
        rf"error: HeadObject s3://b/k: no answer from 127\.0\.0\.1:{silent.port}"
        rf"( while connecting)?: 2 attempts", err
    ), err  # fmt: skip
    assert "hint:" in err
    assert ("--read-timeout" if silent.ca_bundle else "--connect-timeout") in err
    assert out == ""
    assert silent.connections == 2  # one connection per attempt, no more


def test_get_from_a_silent_server_ends_within_the_timeouts_and_writes_nothing(
    silent: SilentServer, tmp_path: Path, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dest = out_dir / "d.bin"
    dest.write_bytes(b"keep me")
    elapsed, _, err, code = _timed(
        "get", "s3://b/k", dest, "--key-file", key_path, *FAST, env=_env(server_env, silent)
    )
    assert code == 1, err
    assert elapsed < BOUND
    assert _retry_line(silent, "GetObject", "s3://b/k") in err  # a download starts with a GET
    assert f"no answer from 127.0.0.1:{silent.port}" in err.split("error:", 1)[1]
    assert dest.read_bytes() == b"keep me"
    assert [p.name for p in out_dir.iterdir()] == ["d.bin"]  # no temporary file either


@pytest.mark.parametrize("silent", ["tls"], indirect=True)
def test_request_timeout_stops_the_retries_early(
    silent: SilentServer, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    elapsed, _, err, code = _timed(
        "head", "s3://b/k", "--key-file", key_path, "--read-timeout", "1",
        "--max-attempts", "10", "--request-timeout", "2.5", env=_env(server_env, silent),
    )  # fmt: skip
    assert code == 1, err
    assert elapsed < BOUND
    attempts = re.findall(r"attempt (\d+) of 10", err)
    assert attempts, err
    assert len(attempts) < 5, err  # not the 10 attempts --max-attempts allows
    assert "gave up after" in err
    assert "(--request-timeout 2.5)" in err


@pytest.mark.parametrize("silent", ["tls"], indirect=True)
def test_json_error_on_stdout_retry_line_on_stderr(
    silent: SilentServer, tmp_path: Path, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    _, out, err, code = _timed(
        "get", "s3://b/k", tmp_path / "d.bin", "--key-file", key_path, "--json", *FAST,
        env=_env(server_env, silent),
    )  # fmt: skip
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 1
    error = json.loads(lines[0])
    assert error["error_type"] == "NoAnswerError"
    assert error["exit_code"] == 1
    assert "attempt 2 of 2" not in out
    assert "WARNING: no answer from" in err


# -- stalls in the middle of a body, through the fault proxy ---------------------------------


@pytest.fixture
def proxy(s3_server: ServerInfo) -> Iterator[FaultProxy]:
    with FaultProxy(s3_server.endpoint_url, s3_server.ca_bundle) as running:
        yield running


def _stall_every(method: str, direction: str = "response") -> FaultPlan:
    """Every request of `method` stalls (for a minute) before the first byte of its body."""
    faults = [
        ScriptedFault("stall", nth=n, method=method, direction=direction, at=0.0,  # type: ignore[arg-type]
                      stall_seconds=60)
        for n in range(1, 30)
    ]  # fmt: skip
    return FaultPlan.scripted(*faults)


def _proxied(server_env: dict[str, str], proxy: FaultProxy) -> dict[str, str]:
    return dict(server_env, AWS_ENDPOINT_URL=proxy.endpoint_url, AWS_CA_BUNDLE=str(proxy.ca_bundle))


def test_a_body_that_stalls_once_is_fetched_again(
    proxy: FaultProxy, bucket: str, admin, tmp_path: Path, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, key = key_file
    data = b"x" * 300_000
    admin.put_object(Bucket=bucket, Key="obj", Body=data, **sse_params(key))
    proxy.plan = FaultPlan.scripted(
        ScriptedFault("stall", nth=1, method="GET", at=0.5, stall_seconds=60)
    )
    dest = tmp_path / "d.bin"
    elapsed, _, err, code = _timed(
        "get", f"s3://{bucket}/obj", dest, "--key-file", key_path, "--read-timeout", "1",
        env=_proxied(server_env, proxy),
    )  # fmt: skip
    assert code == 0, err
    assert elapsed < BOUND
    assert dest.read_bytes() == data
    port = proxy.endpoint_url.rsplit(":", 1)[1]
    assert f"no answer from 127.0.0.1:{port} for 1 s (GetObject s3://{bucket}/obj)" in err


def test_a_server_that_answers_every_get_and_sends_nothing_is_given_up_on(
    proxy: FaultProxy, bucket: str, admin, tmp_path: Path, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, key = key_file
    admin.put_object(Bucket=bucket, Key="obj", Body=b"y" * 300_000, **sse_params(key))
    proxy.plan = _stall_every("GET")
    dest = tmp_path / "d.bin"
    dest.write_bytes(b"keep me")
    # Headers arrive every time; only bytes of the body count as progress, so the silence
    # adds up over the range's GETs until --request-timeout, well before 10 attempts.
    elapsed, _, err, code = _timed(
        "get", f"s3://{bucket}/obj", dest, "--key-file", key_path, "--read-timeout", "1",
        "--max-attempts", "10", "--request-timeout", "3", env=_proxied(server_env, proxy),
    )  # fmt: skip
    assert code == 1, err
    assert elapsed < BOUND
    assert "attempt 2 of 10" in err
    assert "attempt 6 of 10" not in err
    final = err.split("error:", 1)[1]
    assert f"GetObject s3://{bucket}/obj: no answer from" in final
    assert "(--request-timeout 3)" in final
    assert dest.read_bytes() == b"keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".d.bin")] == []


def test_a_server_that_stops_taking_an_upload_is_given_up_on(
    proxy: FaultProxy, bucket: str, admin, tmp_path: Path, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    # Bigger than what the kernel and TLS buffers absorb on loopback, so the writes block.
    src = random_file(tmp_path / "big.bin", 48 * MiB)
    proxy.plan = _stall_every("PUT", direction="request")
    elapsed, _, err, code = _timed(
        "put", src, f"s3://{bucket}/big.bin", "--key-file", key_path, "--multipart-threshold",
        "64MiB", "--no-ledger", *FAST, env=_proxied(server_env, proxy),
    )  # fmt: skip
    assert code == 1, err
    assert elapsed < BOUND + 5
    port = proxy.endpoint_url.rsplit(":", 1)[1]
    assert f"127.0.0.1:{port} took no data for 2 s (PutObject s3://{bucket}/big.bin)" in err
    assert "stopped taking data" in err.split("error:", 1)[1]
    assert admin.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_a_server_that_takes_every_upload_and_never_answers_is_given_up_on(
    proxy: FaultProxy, bucket: str, tmp_path: Path, server_env: dict[str, str], key_file
) -> None:  # type: ignore[no-untyped-def]
    key_path, _ = key_file
    src = random_file(tmp_path / "f.bin", 3 * MiB)
    proxy.plan = _stall_every("PUT")  # the server stores each body; its answer never comes
    # Sending the same body again is not progress: the silence adds up across the attempts
    # until --request-timeout, well before the 10 attempts allowed.
    elapsed, _, err, code = _timed(
        "put", src, f"s3://{bucket}/f.bin", "--key-file", key_path, "--read-timeout", "1",
        "--max-attempts", "10", "--request-timeout", "3", "--no-ledger",
        env=_proxied(server_env, proxy),
    )  # fmt: skip
    assert code == 1, err
    assert elapsed < BOUND
    assert "attempt 2 of 10" in err
    assert "attempt 6 of 10" not in err
    final = err.split("error:", 1)[1]
    assert f"PutObject s3://{bucket}/f.bin: no answer from" in final
    assert "(--request-timeout 3)" in final
