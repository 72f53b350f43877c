"""Helpers shared by tests: run the CLI as users do, make keys and random files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ssec_transfer.keys.customer import SSECustomerKey
from tests.support.json_schema import SCHEMA_COMMANDS, validate_lines


def make_key_file(directory: Path, name: str = "other.key") -> tuple[Path, SSECustomerKey]:
    key = SSECustomerKey.generate()
    path = directory / name
    key.write_new_file(path)
    return path, key


def run_cli(
    *args: str | os.PathLike[str], env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `python -m ssec_transfer ARGS` as a user would, capturing both streams. With
    --json, a command of the shared schema must print only lines that fit it."""
    argv = [str(arg) for arg in args]
    done = subprocess.run(
        [sys.executable, "-m", "ssec_transfer", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if "--json" in argv and command in SCHEMA_COMMANDS:
        validate_lines(done.stdout)
    return done


def run_cli_bytes(
    *args: str | os.PathLike[str],
    env: dict[str, str],
    input: bytes | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[bytes]:
    """Like `run_cli`, with binary stdin/stdout: for `put -` and `get ... -` through pipes."""
    return subprocess.run(
        [sys.executable, "-m", "ssec_transfer", *map(str, args)],
        env=env,
        input=input if input is not None else b"",
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def random_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
    return path
