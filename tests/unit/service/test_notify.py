"""sd_notify against a real datagram socket, as systemd listens: what a `Type=notify` unit
receives at start, while running, and at stop."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssec_transfer.service.notify import SystemdNotifier, watchdog_interval


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound AF_UNIX datagram socket, like systemd's notify socket, and its path."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.5)
    yield sock, path
    sock.close()


def received(sock: socket.socket) -> list[dict[str, str]]:
    """Every datagram waiting, each as its NAME=VALUE lines."""
    out = []
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(4096)
            out.append(dict(line.split("=", 1) for line in data.decode().split("\n")))
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(0.5)
    return out


def test_no_notify_socket_no_notifier() -> None:
    assert SystemdNotifier.from_environ({}) is None
    assert SystemdNotifier.from_environ({"NOTIFY_SOCKET": ""}) is None


def test_ready_status_and_stopping_reach_the_socket(
    systemd: tuple[socket.socket, str],
) -> None:
    sock, path = systemd
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": path})
    assert notifier is not None
    notifier.ready()
    first = sock.recv(4096).decode().split("\n")
    assert first[0] == "READY=1"
    assert first[1] == "STATUS=uploading 0, waiting 0, last success none yet"

    notifier.queue(seen=20, settling=10, in_flight=3, failing=2)
    notifier.queue(seen=20, settling=10, in_flight=3, failing=2)  # unchanged: not resent
    status = "uploading 3, waiting 12 (2 to retry), last success none yet"
    assert received(sock) == [{"STATUS": status}]

    notifier.uploaded(size=10, seconds=1.0)
    (message,) = received(sock)
    assert message["STATUS"].startswith("uploading 3, waiting 12 (2 to retry), last success 20")

    notifier.stopping()
    (stop,) = received(sock)
    assert stop["STOPPING"] == "1"
    assert stop["STATUS"].startswith("stopping: finishing 3 upload(s) in flight, last success")
    notifier.notifier.close()


def test_watchdog_pings_at_most_every_half_period(systemd: tuple[socket.socket, str]) -> None:
    sock, path = systemd
    clock = FakeClock()
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"}  # 10 s: ping every 5 s
    notifier = SystemdNotifier.from_environ(env, pid=os.getpid())
    assert notifier is not None
    notifier.clock = clock
    for _ in range(3):
        notifier.alive()
    clock.now += 4.9
    notifier.alive()
    assert received(sock) == [{"WATCHDOG": "1"}]
    clock.now += 0.1
    notifier.alive()
    assert received(sock) == [{"WATCHDOG": "1"}]
    notifier.notifier.close()


def test_watchdog_only_for_our_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "2000000"}, 42) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "42"}, 42) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "7"}, 42) is None
    assert watchdog_interval({}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, 42) is None


def test_no_watchdog_asked_no_ping(systemd: tuple[socket.socket, str]) -> None:
    sock, path = systemd
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": path})
    assert notifier is not None
    notifier.alive()
    assert received(sock) == []
    notifier.notifier.close()


def test_abstract_namespace_socket() -> None:
    """ "@name" is the abstract namespace, as systemd uses for user managers and containers."""
    name = f"ssec-transfer-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    try:
        notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notifier is not None
        notifier.stopping()
        assert sock.recv(4096).decode().startswith("STOPPING=1\nSTATUS=stopping")
        notifier.notifier.close()
    finally:
        sock.close()


def test_a_vanished_socket_never_fails_the_watch(tmp_path: Path) -> None:
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier is not None
    assert notifier.notifier.send("READY=1") is False
    notifier.ready()
    notifier.stopping()
    notifier.notifier.close()
