"""Installing what has no wheel from Debian's packages, as the test servers and the browser
tests need: Ceph (no wheel, a matching 16.2 build in Debian) and chromium with its
chromium-driver. Needs root; a machine without apt-get or root gets the command to run."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from ssec_transfer.servers.base import tail_text


def missing_commands(commands: Sequence[str]) -> list[str]:
    return [cmd for cmd in commands if shutil.which(cmd) is None]


def ensure_installed(what: str, commands: Sequence[str], packages: Sequence[str]) -> None:
    """Install `packages` with apt-get if any of `commands` is missing from PATH; raise
    RuntimeError saying what to run by hand when that is impossible or fails."""
    missing = missing_commands(commands)
    if not missing:
        return
    by_hand = f"apt-get install -y --no-install-recommends {' '.join(packages)}"
    if shutil.which("apt-get") is None:
        raise RuntimeError(
            f"{what} missing from PATH ({', '.join(missing)}) and apt-get is not available; "
            f"install {' '.join(packages)} by hand"
        )
    if os.geteuid() != 0:
        raise RuntimeError(
            f"{what} missing from PATH ({', '.join(missing)}); installing them needs root: "
            f"sudo {by_hand}"
        )
    install = ["install", "-y", "--no-install-recommends", *packages]
    updated = False
    if not _apt_has_candidates(packages):
        _apt_update()
        updated = True
    result = _apt(install)
    if result.returncode != 0 and not updated:
        # Stale package lists give 404s; refresh once and retry.
        _apt_update()
        result = _apt(install)
    if result.returncode != 0:
        raise RuntimeError(
            f"{by_hand} failed (exit {result.returncode}):\n"
            + tail_text(result.stdout + result.stderr)
        )
    still_missing = missing_commands(commands)
    if still_missing:
        raise RuntimeError(
            f"{what} installed but still missing from PATH: {', '.join(still_missing)}"
        )


def _apt_has_candidates(packages: Sequence[str]) -> bool:
    """True when the local apt lists know every package, so `apt-get update` can be skipped."""
    result = subprocess.run(
        ["apt-cache", "policy", *packages], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return False
    candidates = [line for line in result.stdout.splitlines() if "Candidate:" in line]
    return len(candidates) == len(packages) and not any("(none)" in line for line in candidates)


def _apt(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True, check=False)


def _apt_update() -> None:
    result = _apt(["update"])
    if result.returncode != 0:
        raise RuntimeError(
            f"apt-get update failed (exit {result.returncode}):\n"
            + tail_text(result.stdout + result.stderr)
        )
