"""Run one command and measure what its user pays: wall time, CPU time and peak memory.

`os.wait4` returns the resource usage of the child *including* every descendant it waited
for, so wrapper scripts that spawn the real tool are charged in full. Nothing of the harness's
own work is counted.

Peak RSS needs care: Linux carries a process's high-water mark across `exec`, so a child forked
from this (large) Python process starts with the harness's RSS as its `ru_maxrss` floor. GNU
`time` (a 2 MiB C program) therefore launches the tool when it is installed and reports the
tool's own peak (`%M`: the largest process of its tree); without it the wait4 figure is kept
and flagged as an upper bound.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measurement:
    """One run of one command."""

    wall_s: float
    user_s: float
    sys_s: float
    max_rss_bytes: int
    returncode: int
    timed_out: bool = False
    rss_exact: bool = True  # False: includes the harness's own RSS (no GNU time)

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def _maxrss_bytes(value: int) -> int:
    # Linux reports KiB, macOS bytes.
    return value if sys.platform == "darwin" else value * 1024


GNU_TIME = Path("/usr/bin/time")


def gnu_time() -> Path | None:
    """GNU time, if installed (Debian package `time`); BSD/macOS time has no `-f`."""
    for candidate in (GNU_TIME, Path(shutil.which("time") or "/nonexistent")):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            probe = subprocess.run(
                [str(candidate), "-f", "%M", "true"], capture_output=True, check=False
            )
            if probe.returncode == 0 and probe.stderr.strip().isdigit():
                return candidate
    return None


def ensure_gnu_time() -> Path | None:
    """GNU time, installed with apt-get (package `time`) when missing and we are root."""
    found = gnu_time()
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "time"],
            capture_output=True,
            check=False,
            timeout=600,
        )
        found = gnu_time()
    return found


def _read_time_rss(path: Path) -> int | None:
    """The `%M` line GNU time wrote (KiB); it may follow a 'terminated by signal' line."""
    try:
        lines = path.read_text().split()
    except OSError:
        return None
    return int(lines[-1]) * 1024 if lines and lines[-1].isdigit() else None


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdout: Path,
    stderr: Path,
    timeout: float,
    cwd: Path | None = None,
    time_binary: Path | None = None,
) -> Measurement:
    """Run `argv` to completion and return its cost; output goes to files, not pipes.

    Files rather than pipes: a pipe would need a reader thread in this process while the
    child runs, and a full pipe would stall the child and distort its wall time.
    """
    rss_file = stderr.with_name(stderr.name + ".rss")
    rss_file.unlink(missing_ok=True)
    command = list(argv)
    if time_binary is not None:
        command = [str(time_binary), "-f", "%M", "-o", str(rss_file), "--", *command]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            # Its own process group, so a timeout kills the tree; but the harness's session,
            # so it shares the harness's scheduling autogroup (see `prioritise`).
            process_group=0,
        )
        fired = threading.Event()

        def on_timeout() -> None:
            fired.set()
            _kill_group(proc.pid)

        timer = threading.Timer(timeout, on_timeout)
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            _kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
    # Reaped by wait4 above; tell Popen so it never waits for the pid again.
    proc.returncode = os.waitstatus_to_exitcode(status)
    exact_rss = _read_time_rss(rss_file) if time_binary is not None else None
    rss_file.unlink(missing_ok=True)
    return Measurement(
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        max_rss_bytes=exact_rss if exact_rss is not None else _maxrss_bytes(usage.ru_maxrss),
        returncode=proc.returncode,
        timed_out=fired.is_set(),
        rss_exact=exact_rss is not None,
    )


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int | None) -> float | None:
    """User+system CPU seconds a running process (e.g. the embedded server) has used so far.

    Read from /proc, so Linux only; None elsewhere or when the process is gone.
    """
    if pid is None:
        return None
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces) start at field 3, "state".
    fields = text.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores have spent busy since boot (Linux /proc/stat; None elsewhere).

    Busy minus the client's and the server's CPU over a run is what *other* processes took:
    a run that shared the machine with a build or a test suite shows up instead of hiding.
    """
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal ...
    values = [int(v) for v in fields[1:9]]
    busy = sum(values) - values[3] - values[4]
    return busy / _CLOCK_TICKS


def prioritise(pid: int, nice: int) -> str | None:
    """Give process `pid` (and what it starts) the CPU before other work on the machine.

    Linux's scheduler first shares the CPU between *autogroups* (one per session), and nice
    values only order processes inside one group. So the nice value goes on the process and,
    where autogroups are on, on its group too. On Linux a nice value belongs to one thread, so
    it goes on every thread the process already has (a server's worker threads exist by the
    time it is reniced); threads started later inherit it. Returns why it failed, or None.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError as exc:
        return f"setpriority: {exc.strerror}"
    try:
        threads = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
    except (OSError, ValueError):
        threads = []
    for tid in threads:
        if tid != pid:
            with contextlib.suppress(OSError):  # a thread may end meanwhile
                os.setpriority(os.PRIO_PROCESS, tid, nice)
    autogroup = Path(f"/proc/{pid}/autogroup")
    if autogroup.exists():
        try:
            autogroup.write_text(f"{nice}\n")
        except OSError as exc:
            return f"autogroup: {exc.strerror}"
    return None


def autogroup_nice(pid: int) -> int | None:
    """The nice value of `pid`'s autogroup (None without autogroups), to restore it later:
    the harness shares its group with the shell that started it."""
    try:
        text = Path(f"/proc/{pid}/autogroup").read_text()
    except OSError:
        return None
    try:
        return int(text.rsplit("nice", 1)[1])
    except (IndexError, ValueError):
        return None


def restore_autogroup(pid: int, nice: int | None) -> None:
    if nice is not None:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/autogroup").write_text(f"{nice}\n")
