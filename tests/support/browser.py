"""A real headless browser for the upload page's tests: Debian's chromium and its matching
chromium-driver, installed with apt when missing (servers/debian.py, as for Ceph), driven by
selenium. A browser that is missing and cannot be installed is a failure with the reason,
never a skip: the page is only tested in a browser."""

from __future__ import annotations

import os
import shutil
from typing import Any

from ssec_transfer.servers import debian

DEBIAN_PACKAGES = ("chromium", "chromium-driver")
BROWSER = "chromium"
DRIVER = "chromedriver"


def ensure_chromium_installed() -> None:
    """Install chromium and chromium-driver with apt-get if either command is missing; a
    RuntimeError says what to run when that is impossible, so the browser tests fail loudly
    instead of being skipped."""
    debian.ensure_installed("chromium", (BROWSER, DRIVER), DEBIAN_PACKAGES)


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
