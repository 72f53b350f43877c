"""A real headless browser for the upload page's tests: Debian's chromium and its matching
chromium-driver, installed with apt when missing (as servers/ceph.py installs Ceph), driven by
selenium. A browser that is missing and cannot be installed is a failure with the reason,
never a skip: the page is only tested in a browser."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

DEBIAN_PACKAGES = ("chromium", "chromium-driver")
BROWSER = "chromium"
DRIVER = "chromedriver"


def _missing() -> list[str]:
    return [cmd for cmd in (BROWSER, DRIVER) if shutil.which(cmd) is None]


def _apt(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", *args], env=env, capture_output=True, text=True, check=False, timeout=900
    )


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def ensure_chromium_installed() -> None:
    """Install chromium and chromium-driver with apt-get if either command is missing.

    Raises RuntimeError saying what to run when that is impossible (no apt-get, not root,
    apt failing), so the browser tests fail loudly instead of being skipped."""
    missing = _missing()
    if not missing:
        return
    by_hand = f"apt-get install -y --no-install-recommends {' '.join(DEBIAN_PACKAGES)}"
    if shutil.which("apt-get") is None:
        raise RuntimeError(
            f"the browser tests need {', '.join(missing)} and apt-get is not available; "
            f"install chromium and its matching chromedriver by hand"
        )
    if os.geteuid() != 0:
        raise RuntimeError(
            f"the browser tests need {', '.join(missing)}; installing them needs root: "
            f"sudo {by_hand}"
        )
    install = ["install", "-y", "--no-install-recommends", *DEBIAN_PACKAGES]
    result = _apt(install)
    if result.returncode != 0:
        # A fresh machine has no package lists, stale ones give 404s: refresh once, retry.
        update = _apt(["update"])
        if update.returncode != 0:
            raise RuntimeError(
                f"apt-get update failed (exit {update.returncode}):\n"
                + _tail(update.stdout + update.stderr)
            )
        result = _apt(install)
    if result.returncode != 0:
        raise RuntimeError(
            f"{by_hand} failed (exit {result.returncode}):\n" + _tail(result.stdout + result.stderr)
        )
    still = _missing()
    if still:
        raise RuntimeError(f"chromium packages installed but still missing from PATH: {still}")


def start_chromium(*, width: int = 900, height: int = 760) -> Any:
    """A headless chromium under selenium. `--no-sandbox` only as root (chromium refuses to
    run its sandbox as root); the page under test is our own."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    ensure_chromium_installed()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which(BROWSER) or BROWSER
    options.add_argument("--headless=new")
    options.add_argument("--disable-dev-shm-usage")
    options.add_argument("--disable-gpu")
    options.add_argument(f"--window-size={width},{height}")
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")
    # The test servers' certificates come from a throwaway CA that chromium does not know.
    options.add_argument("--ignore-certificate-errors")
    service = Service(executable_path=shutil.which(DRIVER) or DRIVER)
    return webdriver.Chrome(options=options, service=service)
