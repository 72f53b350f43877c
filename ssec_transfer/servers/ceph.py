"""A throwaway single-node Ceph cluster with radosgw serving S3 over TLS, on loopback.

Ceph RGW is the engine behind the seed's providers, so tests against it catch behaviour the
lighter SeaweedFS server hides (key checks on parts, 501 for SSE-C copies, 400 on wrong keys).
Everything the cluster writes (config, mon and OSD data, logs, sockets, pid files) lives under
one working directory, and the OSD keeps objects in RAM (memstore): after stop() only the
config and logs remain, for debugging.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import IO

from ssec_transfer.servers import debian
from ssec_transfer.servers.base import (
    LocalServer,
    ServerInfo,
    free_port,
    print_credentials,
    spawn_daemon,
    tail_file,
    tail_text,
)
from ssec_transfer.servers.tls import make_tls

GiB = 1024**3

REQUIRED_COMMANDS = ("ceph-mon", "ceph-osd", "radosgw", "ceph", "radosgw-admin", "monmaptool")
DEBIAN_PACKAGES = ("ceph-mon", "ceph-osd", "radosgw", "ceph-common")

# How long each step may take before we give up and show the logs.
MON_TIMEOUT = 30.0
OSD_TIMEOUT = 60.0
RGW_TIMEOUT = 90.0
CLI_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


def ensure_ceph_installed() -> None:
    """Install the Debian Ceph packages if any daemon or tool is missing from PATH.

    Ceph is too big to vendor and has no wheel, but Debian ships a matching 16.2 build, so a
    fresh machine can get it with apt (about half a minute). Needs root.
    """
    debian.ensure_installed("Ceph tools", REQUIRED_COMMANDS, DEBIAN_PACKAGES)


def _ceph_conf(*, d: Path, fsid: str, mon_port: int, frontends: str, memstore_bytes: int) -> str:
    """The cluster's ceph.conf. Every path points into `d` so clusters never share state."""
    return f"""\
[global]
fsid = {fsid}
mon_host = v1:127.0.0.1:{mon_port}
mon_initial_members = a
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_msgr2 = false
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
auth_allow_insecure_global_id_reclaim = true
keyring = {d}/keyring
run_dir = {d}/run
admin_socket = {d}/run/$cluster-$name.asok
pid_file = {d}/run/$cluster-$name.pid
log_file = {d}/log/$cluster-$name.log
mon_cluster_log_file = {d}/log/$cluster.log
crash_dir = {d}/crash
log_to_stderr = false
err_to_stderr = true
log_to_syslog = false
err_to_syslog = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0

[mon]
mon_data = {d}/mon/$cluster-$id
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
# The monitor shuts itself down below 5 % free disk by default; a test box may be that full.
mon_data_avail_warn = 2
mon_data_avail_crit = 1
# A single monitor has no one to batch with: propose map changes at once, not every second.
paxos_propose_interval = 0.05

[osd]
osd_data = {d}/osd/$cluster-$id
osd_objectstore = memstore
memstore_device_bytes = {memstore_bytes}
osd_crush_update_on_start = false
osd_class_update_on_start = false
osd_op_num_shards = 2
osd_op_num_threads_per_shard = 1

[client.rgw.a]
rgw_data = {d}/rgw/$cluster-$id
rgw_frontends = {frontends}
rgw_crypt_require_ssl = true
rgw_enable_usage_log = false
rgw_enable_ops_log = false
rgw_dynamic_resharding = false
rgw_thread_pool_size = 64
# Deleted and overwritten data is garbage-collected after 2 h by default. The OSD keeps it
# in RAM (memstore), and a full memstore makes writes hang, so reclaim it within a minute.
rgw_gc_obj_min_wait = 30
rgw_gc_processor_period = 15
# A RADOS op that never completes (full OSD) fails the S3 request instead of hanging it,
# and lets radosgw exit on SIGTERM.
rados_osd_op_timeout = 20
"""


class CephRGW(LocalServer):
    """A throwaway one-monitor, one-OSD (memstore) Ceph cluster with radosgw on TLS.

    Use as ``with CephRGW(workdir) as info: ...`` or call start()/stop(). stop() is
    idempotent and also runs at interpreter exit, so a crashed test does not leak daemons.
    Each start() replaces the run, log, mon, osd, rgw, crash and tls folders in `workdir`.
    OSD memory grows to about twice the bytes stored; `memstore_bytes` caps the stored bytes
    (softly: writes in flight still land) and a full store fails writes after ~20 s.
    """

    def __init__(self, workdir: Path, memstore_bytes: int = 4 * GiB) -> None:
        self.workdir = Path(workdir).resolve()
        self.memstore_bytes = memstore_bytes
        self.info: ServerInfo | None = None
        self.conf: Path = self.workdir / "ceph.conf"
        self.log_dir: Path = self.workdir / "log"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._outputs: list[IO[bytes]] = []
        self._lock = threading.Lock()
        self._atexit_registered = False
        # Seconds each start step took, for spotting slow steps in benchmarks and reports.
        self.timings: dict[str, float] = {}
        self._t_last = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ServerInfo:
        """Create and start the cluster, create an S3 user, and wait until HTTPS answers."""
        if self.info is not None:
            return self.info
        ensure_ceph_installed()
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _mark(self, step: str) -> None:
        now = time.monotonic()
        self.timings[step] = now - self._t_last
        self._t_last = now

    def _start(self) -> ServerInfo:
        self.timings = {}
        self._t_last = time.monotonic()
        d = self.workdir
        # A fresh cluster every start: state left by an earlier run would carry the old fsid.
        for sub in ("run", "log", "mon", "osd", "rgw", "crash", "tls"):
            shutil.rmtree(d / sub, ignore_errors=True)
            (d / sub).mkdir(parents=True)
        (d / "osd" / "ceph-0").mkdir()  # memstore writes its fsid file here on mkfs
        (d / "keyring").touch()
        tls = make_tls(d / "tls")
        fsid = str(uuid.uuid4())
        mon_port, http_port, https_port = _distinct_free_ports(3)
        frontends = (
            f"beast endpoint=127.0.0.1:{http_port} ssl_endpoint=127.0.0.1:{https_port}"
            f" ssl_certificate={tls.combined} ssl_private_key={tls.combined}"
        )
        self.conf.write_text(
            _ceph_conf(
                d=d,
                fsid=fsid,
                mon_port=mon_port,
                frontends=frontends,
                memstore_bytes=self.memstore_bytes,
            )
        )
        self._start_mon(fsid, mon_port)
        self._start_osd()
        # radosgw creates its pools on start; the user is created while it does.
        self._spawn("client.rgw.a", ["radosgw", "-c", str(self.conf), "-n", "client.rgw.a", "-f"])
        access_key, secret_key = self._create_user()
        info = ServerInfo(
            name="ceph",
            endpoint_url=f"https://127.0.0.1:{https_port}",
            http_endpoint_url=f"http://127.0.0.1:{http_port}",
            ca_bundle=tls.ca_cert,
            access_key=access_key,
            secret_key=secret_key,
        )
        self._wait_https(info)
        self._mark("https up")
        self.info = info
        return info

    def _start_mon(self, fsid: str, mon_port: int) -> None:
        """A fresh monmap with our fsid, then mkfs, then run the monitor."""
        monmap = self.workdir / "monmap"
        conf = str(self.conf)
        self._run(
            ["monmaptool", "--conf", conf, "--create", "--clobber", "--fsid", fsid,
             "--addv", "a", f"[v1:127.0.0.1:{mon_port}]", str(monmap)]
        )  # fmt: skip
        self._run(["ceph-mon", "-c", conf, "-i", "a", "--mkfs", "--monmap", str(monmap)])
        self._mark("mon mkfs")
        self._spawn("mon.a", ["ceph-mon", "-c", conf, "-i", "a", "-f"])

    def _start_osd(self) -> None:
        """Register the OSD with the monitor (this also waits for the monitor to answer),
        mkfs it, place it in the CRUSH map, run it and wait until it is up."""
        osd_uuid = str(uuid.uuid4())
        osd_id = self._ceph(["osd", "new", osd_uuid, "0"], timeout=MON_TIMEOUT).strip()
        if osd_id != "0":
            raise RuntimeError(f"ceph osd new returned id {osd_id!r}, expected 0")
        self._mark("osd new")
        self._run(["ceph-osd", "-c", str(self.conf), "-i", "0", "--mkfs", "--osd-uuid", osd_uuid])
        self._mark("osd mkfs")
        self._ceph(["osd", "crush", "add", "osd.0", "1.0", "root=default", "host=localhost"])
        self._mark("crush add")
        self._spawn("osd.0", ["ceph-osd", "-c", str(self.conf), "-i", "0", "-f"])
        self._wait_osd_up()
        self._mark("osd up")

    def _create_user(self) -> tuple[str, str]:
        """An S3 user with fresh credentials: (access key, secret key)."""
        access_key = "CEPH" + secrets.token_hex(8).upper()
        secret_key = secrets.token_urlsafe(30)
        self._run(
            ["radosgw-admin", "-c", str(self.conf), "user", "create", "--uid", "tester",
             "--display-name", "ssec-transfer tester", "--access-key", access_key,
             "--secret-key", secret_key],
            timeout=RGW_TIMEOUT,
        )  # fmt: skip
        self._mark("user create")
        return access_key, secret_key

    def stop(self) -> None:
        """Stop radosgw, then the OSD, then the monitor.

        The order matters: radosgw hung on SIGTERM once the OSD was already gone.
        """
        with self._lock:
            for name in ("client.rgw.a", "osd.0", "mon.a"):
                proc = self._procs.pop(name, None)
                if proc is not None:
                    _terminate(proc)
            for f in self._outputs:
                f.close()
            self._outputs.clear()
            self.info = None

    # -- helpers ---------------------------------------------------------------------------

    def _spawn(self, name: str, cmd: list[str]) -> None:
        """Start a daemon in the foreground (-f), in its own process group, tracked by Popen."""
        out = open(self.log_dir / f"{name}.out", "ab")  # noqa: SIM115 - closed in stop()
        self._outputs.append(out)
        self._procs[name] = spawn_daemon(cmd, out, cwd=self.workdir, env=_clean_env())

    def _run(self, cmd: list[str], timeout: float = CLI_TIMEOUT) -> str:
        """Run a one-shot tool; on failure raise with its output and the daemon logs.

        The daemons are checked while it runs: a tool talking to a dead daemon can block for
        its whole timeout, and the daemon's log says more than the tool's.
        """
        self._check_alive()
        deadline = time.monotonic() + timeout
        with subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.workdir,
            env=_clean_env(),
            start_new_session=True,
        ) as tool:
            while True:
                try:
                    out, err = tool.communicate(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    try:
                        self._check_alive()
                        if time.monotonic() > deadline:
                            raise RuntimeError(
                                f"{cmd[0]} timed out after {timeout:.0f}s: {' '.join(cmd)}\n"
                                f"{self.log_tails()}"
                            ) from None
                    except BaseException:
                        tool.kill()
                        tool.communicate()
                        raise
        if tool.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed (exit {tool.returncode}):\n"
                f"{tail_text(out + err)}\n{self.log_tails()}"
            )
        return out

    def _ceph(self, args: list[str], timeout: float = CLI_TIMEOUT) -> str:
        return self._run(
            ["ceph", "-c", str(self.conf), "--connect-timeout", str(int(timeout)), *args],
            timeout=timeout + 10,
        )

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"ceph daemon {name} exited with code {proc.returncode}\n{self.log_tails()}"
                )

    def _wait_osd_up(self) -> None:
        deadline = time.monotonic() + OSD_TIMEOUT
        while True:
            dump = json.loads(self._ceph(["osd", "dump", "--format", "json"]))
            if any(osd.get("up") == 1 for osd in dump.get("osds", [])):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"osd.0 not up after {OSD_TIMEOUT:.0f}s\n{self.log_tails()}")
            time.sleep(0.2)

    def _wait_https(self, info: ServerInfo) -> None:
        """Wait until radosgw answers on HTTPS with a certificate our CA verifies."""
        ctx = ssl.create_default_context(cafile=str(info.ca_bundle))
        port = int(info.endpoint_url.rsplit(":", 1)[1])
        deadline = time.monotonic() + RGW_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
            try:
                conn.request("GET", "/")
                conn.getresponse().read()
                return  # any S3 answer (even an error status) means it is serving
            except (OSError, http.client.HTTPException) as e:
                last = e
            finally:
                conn.close()
            time.sleep(0.2)
        raise RuntimeError(
            f"radosgw did not answer on {info.endpoint_url} within {RGW_TIMEOUT:.0f}s "
            f"(last error: {last})\n{self.log_tails()}"
        )

    def log_tails(self, lines: int = 25) -> str:
        """The ends of the daemon logs, for error messages."""
        paths = [
            path
            for name in ("mon.a", "osd.0", "client.rgw.a")
            for path in (self.log_dir / f"ceph-{name}.log", self.log_dir / f"{name}.out")
        ]
        return "\n".join(
            f"--- {path} ---\n{tail_file(path, lines)}"
            for path in paths
            if path.is_file() and path.stat().st_size > 0
        )


def _clean_env() -> dict[str, str]:
    """The environment without CEPH_* variables that could point tools at another cluster."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CEPH_")}


def _distinct_free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, wait, then SIGKILL it if it hangs."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Reap anything left in the group (the daemons do not fork with -f, but be sure).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_foreground(workdir: Path | None, env_file: Path | None) -> None:
    """Run a cluster until SIGINT/SIGTERM: for demos and manual poking with the AWS tools."""
    tmp: Path | None = None
    if workdir is None:
        tmp = Path(tempfile.mkdtemp(prefix="ssec-ceph-"))
        workdir = tmp
    server = CephRGW(workdir)
    stop_event = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop_event.set()

    old_int = signal.signal(signal.SIGINT, _on_signal)
    old_term = signal.signal(signal.SIGTERM, _on_signal)
    try:
        t0 = time.monotonic()
        info = server.start()
        print(f"Ceph RGW ready in {time.monotonic() - t0:.1f}s (state in {workdir})")
        print(f"  endpoint:   {info.endpoint_url}")
        print(f"  plain HTTP: {info.http_endpoint_url} (SSE-C is refused here)")
        print_credentials(info)
        if env_file is not None:
            info.write_env_file(env_file)
            print(f"  env file:   {env_file} (source it)")
        print("Press Ctrl-C to stop.", flush=True)
        while not stop_event.wait(1.0):
            pass
    finally:
        print("Stopping Ceph RGW...", file=sys.stderr, flush=True)
        server.stop()
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
