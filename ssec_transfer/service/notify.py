"""systemd's notify protocol (`sd_notify`), for `Type=notify` units: readiness, watchdog
pings, the stopping notice and a one-line status for `systemctl status`.

The protocol is one datagram of `NAME=VALUE` lines to the AF_UNIX socket named by
`$NOTIFY_SOCKET` (a leading "@" names the abstract namespace). A dozen lines of our own
instead of a dependency; without `$NOTIFY_SOCKET` (not under systemd) there is no notifier.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

from ssec_transfer.apps.watch_observer import WatchObserver


def _address(path: str) -> str | bytes:
    """The socket address for `$NOTIFY_SOCKET`: "@name" is "\\0name" in the abstract
    namespace (Linux), anything else a path in the file system."""
    return b"\0" + path[1:].encode() if path.startswith("@") else path


class Notifier:
    """Sends notify datagrams; never blocks and never fails the service.

    A full or vanished socket loses that one message rather than stalling the event loop:
    watchdog pings and status lines repeat, and systemd reports a lost READY=1 as a start
    timeout, which names the cause."""

    def __init__(self, path: str) -> None:
        self.address = _address(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.setblocking(False)

    def send(self, *lines: str) -> bool:
        """Send `lines` as one datagram; False if it could not be sent."""
        try:
            self.sock.sendto("\n".join(lines).encode(), self.address)
        except OSError:
            return False
        return True

    def close(self) -> None:
        self.sock.close()


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between watchdog pings (half of `$WATCHDOG_USEC`, as sd_watchdog_enabled
    advises), or None when systemd expects none from this process."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    watchdog_pid = environ.get("WATCHDOG_PID", "")
    if watchdog_pid and watchdog_pid != str(pid):
        return None  # meant for another process (a wrapper that exec'd us keeps its pid)
    return int(usec) / 2e6


class SystemdNotifier(WatchObserver):
    """A `WatchObserver` that keeps systemd informed: READY=1 once the first scan is done,
    WATCHDOG=1 as polls go round (at most every WATCHDOG_USEC/2), STOPPING=1 at the stop
    signal, and STATUS= "uploading 3, waiting 12, last success 14:02:11" when it changes."""

    def __init__(
        self,
        notifier: Notifier,
        *,
        watchdog: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.notifier = notifier
        self.watchdog = watchdog
        self.clock = clock
        self.wall_clock = wall_clock
        self._last_ping: float | None = None
        self._in_flight = 0
        self._waiting = 0
        self._failing = 0
        self._last_success: float | None = None
        self._status = ""
        self._stopping = False

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, *, pid: int | None = None
    ) -> SystemdNotifier | None:
        """The notifier systemd asked for through the environment, or None outside systemd."""
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        if not path:
            return None
        interval = watchdog_interval(env, os.getpid() if pid is None else pid)
        return cls(Notifier(path), watchdog=interval)

    def status(self) -> str:
        """The STATUS= line: what is uploading, what waits, when an upload last succeeded."""
        if self._stopping:
            text = f"stopping: finishing {self._in_flight} upload(s) in flight"
        else:
            text = f"uploading {self._in_flight}, waiting {self._waiting}"
            if self._failing:
                text += f" ({self._failing} to retry)"
        when = "none yet"
        if self._last_success is not None:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self._last_success))
        return f"{text}, last success {when}"

    def _send_status(self, *extra: str) -> None:
        status = self.status()
        if status != self._status or extra:
            self._status = status
            self.notifier.send(*extra, f"STATUS={status}")

    def ready(self) -> None:
        self._send_status("READY=1")

    def alive(self) -> None:
        if self.watchdog is None:
            return
        now = self.clock()
        if self._last_ping is None or now - self._last_ping >= self.watchdog:
            self._last_ping = now
            self.notifier.send("WATCHDOG=1")

    def queue(self, *, seen: int, settling: int, in_flight: int, failing: int) -> None:
        self._in_flight = in_flight
        self._waiting = settling + failing
        self._failing = failing
        self._send_status()

    def uploaded(self, *, size: int, seconds: float) -> None:
        self._last_success = self.wall_clock()
        self._send_status()

    def stopping(self) -> None:
        self._stopping = True
        self._send_status("STOPPING=1")
