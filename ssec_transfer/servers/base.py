"""What a client needs to know about a running server, and small helpers shared by the servers."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO


@dataclass(frozen=True)
class ServerInfo:
    """Connection facts for a running S3 server. Holds credentials, never an SSE-C key."""

    name: str
    endpoint_url: str
    ca_bundle: Path
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    # A plain-HTTP S3 port, where the server has one (Ceph RGW): used to prove the client's
    # HTTPS guard fires before the server would ever see a key.
    http_endpoint_url: str | None = None

    def env(self) -> dict[str, str]:
        """The variables the AWS tools (and ssec-transfer) read."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_CA_BUNDLE": str(self.ca_bundle),
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def write_env_file(self, path: Path) -> None:
        """Write a file users can `source`; mode 0600 because it holds credentials."""
        text = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.env().items())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # the mode given to open() applies only to new files
        with os.fdopen(fd, "w") as f:
            f.write(text)


def free_port() -> int:
    """A free TCP port on 127.0.0.1, chosen by the OS (racy, but fine on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer(ABC):
    """A throwaway server this process runs: ``with Server(workdir) as info: ...``."""

    @abstractmethod
    def start(self) -> ServerInfo: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> ServerInfo:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def spawn_daemon(
    cmd: list[str], out: IO[bytes], *, cwd: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start a server process with its output in `out`, in its own session: a Ctrl-C in the
    terminal reaches only us, and we stop the server cleanly."""
    return subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )


def tail_text(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def tail_file(path: Path, lines: int = 40) -> str:
    """The end of a log file, for error messages."""
    try:
        return tail_text(path.read_text(errors="replace"), lines)
    except OSError as exc:
        return f"(log unreadable: {exc})"


def print_credentials(info: ServerInfo) -> None:
    """What a client needs besides the endpoint (printed on purpose: the server is local,
    throwaway and makes new credentials on every start)."""
    print(f"  CA bundle:  {info.ca_bundle}")
    print(f"  access key: {info.access_key}")
    print(f"  secret key: {info.secret_key}")
