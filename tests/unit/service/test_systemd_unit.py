"""The systemd unit: the documented file is what `--print-systemd-unit` prints, its stop
timing matches the watch's, and systemd itself accepts it (`systemd-analyze verify`)."""

from __future__ import annotations

import argparse
import configparser
import contextlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ssec_transfer.cli.watch_service import add_service_options
from ssec_transfer.service import unit

DOCS_UNIT = Path(__file__).resolve().parents[3] / "docs" / "ssec-transfer-watch.service"


def service_section(text: str) -> dict[str, list[str]]:
    """The [Service] directives, each with all its values (a directive may repeat)."""
    section: dict[str, list[str]] = {}
    current = ""
    logical = text.replace("\\\n", " ")
    for line in logical.splitlines():
        line = line.strip()
        if line.startswith("["):
            current = line
        elif current == "[Service]" and line and not line.startswith("#"):
            name, value = line.split("=", 1)
            section.setdefault(name, []).append(value)
    return section


def test_docs_file_is_the_printed_unit() -> None:
    assert DOCS_UNIT.read_text() == unit.render_unit(), (
        "docs/ssec-transfer-watch.service is out of date: regenerate it with "
        "`ssec-transfer watch --print-systemd-unit > docs/ssec-transfer-watch.service`"
    )


def test_print_systemd_unit_needs_no_other_argument() -> None:
    """Like --version: printed before DIR, the target and the key are required."""
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--key-file", required=True)
    add_service_options(parser)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        parser.parse_args(["--print-systemd-unit"])
    assert done.value.code == 0
    assert out.getvalue() == unit.render_unit()


def test_stop_and_notify_settings() -> None:
    s = service_section(unit.render_unit())
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert s["KillSignal"] == ["SIGTERM"]
    assert s["Restart"] == ["on-failure"]
    exec_start = s["ExecStart"][0].split()
    drain = float(exec_start[exec_start.index("--drain-timeout") + 1])
    # systemd waits the drain and a margin for the aborts before SIGKILL.
    assert int(s["TimeoutStopSec"][0]) >= drain + 10
    assert s["SuccessExitStatus"] == [" ".join(map(str, unit.SUCCESS_EXIT_STATUS))]
    # The key comes from the credential, never from a path or a value in the unit's argv.
    assert "sse-c.key:/etc/ssec-transfer/sse-c.key" in s["LoadCredential"]
    assert exec_start[exec_start.index("--key-file") + 1] == "%d/sse-c.key"
    assert "--key-env" not in exec_start
    # Its state lives in the StateDirectory the unit asks for.
    state = exec_start[exec_start.index("--state") + 1]
    assert state.startswith("%S/" + s["StateDirectory"][0] + "/")
    for hardening in ("NoNewPrivileges", "PrivateTmp", "ProtectKernelTunables", "LockPersonality"):
        assert s[hardening] == ["yes"]
    assert s["ProtectSystem"] == ["strict"]
    assert s["CapabilityBoundingSet"] == [""]
    assert s["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]


def test_the_unit_parses_as_ini() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(unit.render_unit())
    assert parser.sections() == ["Unit", "Service", "Install"]


def test_systemd_analyze_verify_accepts_it(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # verify checks that ExecStart's program exists: point it at one that does.
    executable = shutil.which("ssec-transfer") or shutil.which("true") or "/bin/true"
    path = tmp_path / "ssec-transfer-watch.service"
    path.write_text(unit.render_unit(executable))
    result = subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    complaints = [line for line in result.stderr.splitlines() if path.name in line]
    assert result.returncode == 0, result.stderr
    assert complaints == []


def test_service_options_import_nothing_heavy() -> None:
    """The watch parser is built for every --help: its service options load neither the
    metrics library nor the event loop."""
    code = (
        "import sys, argparse\n"
        "from ssec_transfer.cli.watch_service import add_service_options\n"
        "add_service_options(argparse.ArgumentParser())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('prometheus_client', 'anyio', 'asyncio') or m.startswith('ssec_transfer.service')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
