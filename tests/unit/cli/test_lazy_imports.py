"""Lazy imports: `--version`, `--help` and `import ssec_transfer` load nothing heavy, and a put
or get loads only what its path needs.

Each case runs in a fresh interpreter (what this process already imported proves nothing) and
reports the modules it ended with. What is checked is which modules load, not how long that
takes: the timings are in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ssec_transfer
from ssec_transfer.cli.main import build_parser

# Not needed to parse a command line: the S3 stack, the event loop, SQLite, the keyring's
# cryptography, Dask and the progress bar, and the engine that brings most of them.
HEAVY = (
    "aiobotocore",
    "aiohttp",
    "anyio",
    "asyncio",
    "botocore",
    "cryptography",
    "dask",
    "distributed",
    "sqlite3",
    "tqdm",
    "ssec_transfer.engine",
    "ssec_transfer.s3.client",
    "shtab",  # only `completion` needs it
    "prometheus_client",  # only `watch --metrics-port/--metrics-file` needs it
    "tomllib",  # the config file is not read for --version and --help
)

# Runs `main(argv)` for each argv in turn and prints, after each, the modules loaded so far.
_RUN_CLI = """
import contextlib, io, json, sys
from ssec_transfer.cli.main import main
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(argv)
        except SystemExit:
            pass
    print(json.dumps({"argv": argv, "modules": sorted(sys.modules)}))
"""


def _loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def _run(code: str, *args: str, cwd: Path | None = None) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=cwd,
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def _help_argvs() -> list[list[str]]:
    """--version, --help, and COMMAND --help for every command (and ledger/keyring actions)."""
    argvs = [["--version"], ["--help"], []]
    for name, parser in _subcommands(build_parser()).items():
        argvs.append([name, "--help"])
        argvs += [[name, action, "--help"] for action in _subcommands(parser)]
    return argvs


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def test_import_ssec_transfer_loads_nothing_heavy() -> None:
    code = "import json, sys, ssec_transfer; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    modules = json.loads(out.stdout)
    assert _loaded(modules, HEAVY) == []
    assert "ssec_transfer.cli.main" not in modules


def test_version_and_help_load_nothing_heavy() -> None:
    argvs = _help_argvs()
    assert ["put", "--help"] in argvs
    assert ["keyring", "add", "--help"] in argvs
    for report in _run(_RUN_CLI, json.dumps(argvs)):
        modules = report["modules"]
        assert isinstance(modules, list)
        assert _loaded(modules, HEAVY) == [], report["argv"]


def test_public_names_load_on_first_use() -> None:
    """`from ssec_transfer import X` still gives every public name (the engine loads then),
    and submodules still import as before."""
    code = """
import json, sys
import ssec_transfer
before = "ssec_transfer.engine" in sys.modules
from ssec_transfer import SSECustomerKey, TransferEngine, WrongKeyError, sync
from ssec_transfer.engine import TransferEngine as Engine
missing = [n for n in ssec_transfer.__all__ if not hasattr(ssec_transfer, n)]
try:
    ssec_transfer.no_such_name
    unknown = "found"
except AttributeError:
    unknown = "AttributeError"
print(json.dumps({"before": before, "same": TransferEngine is Engine, "missing": missing,
                  "unknown": unknown, "sync": sync.__name__,
                  "in_dir": sorted(set(ssec_transfer.__all__) - set(dir(ssec_transfer)))}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    report = json.loads(out.stdout)
    assert report == {
        "before": False,
        "same": True,
        "missing": [],
        "unknown": "AttributeError",
        "sync": "ssec_transfer.sync",
        "in_dir": [],
    }


# The engine is stopped where it would connect, so nothing here needs a server.
_RUN_TRANSFER = """
import contextlib, io, json, sys
from ssec_transfer.core.errors import EndpointError
from ssec_transfer.engine import TransferEngine

async def refuse(self):
    raise EndpointError("stopped before connecting")

TransferEngine.__aenter__ = refuse
from ssec_transfer.cli.main import main
argv = json.loads(sys.argv[1])
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
    code = main(argv)
print(json.dumps({"code": code, "err": err.getvalue(), "modules": sorted(sys.modules)}))
"""

# What a one-object put or get never needs.
NOT_FOR_ONE_OBJECT = (
    "cryptography",  # the keyring's
    "dask",
    "distributed",
    "tqdm",  # no bar is shown
    "ssec_transfer.apps.bulk",
    "ssec_transfer.apps.distributed",
    "ssec_transfer.apps.manifest",
    "ssec_transfer.apps.watch",
    "ssec_transfer.transfer.copy",
    "ssec_transfer.transfer.copy_run",
    "ssec_transfer.transfer.streams",
)


@pytest.mark.parametrize("command", ["put", "get"])
def test_one_object_loads_only_its_path(tmp_path: Path, command: str) -> None:
    key = tmp_path / "sse-c.key"
    key.write_bytes(bytes(range(32)))
    key.chmod(0o600)
    (tmp_path / "data.bin").write_bytes(b"x" * 1000)
    objects = ["data.bin", "s3://bucket/data.bin"]
    argv = [command, *(objects if command == "put" else objects[::-1])]
    argv += ["--key-file", str(key), "--no-progress", "--endpoint-url", "https://127.0.0.1:9"]
    [report] = _run(_RUN_TRANSFER, json.dumps(argv), cwd=tmp_path)
    assert "stopped before connecting" in str(report["err"])
    modules = report["modules"]
    assert isinstance(modules, list)
    assert _loaded(modules, NOT_FOR_ONE_OBJECT) == []


def test_version_alone_is_answered_before_the_parser_loads() -> None:
    """The console script answers `--version` without importing `cli.main` (and so none of
    the command modules), and says exactly what argparse's --version says."""
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('main loaded' if 'ssec_transfer.cli.main' in "
        "sys.modules else 'main not loaded', file=sys.stderr))\n"
        "sys.argv = ['ssec-transfer', '--version']\n"
        "from ssec_transfer.cli.entry import entry_point\n"
        "entry_point()\n"
    )
    fast = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert fast.returncode == 0
    assert fast.stderr.strip() == "main not loaded"
    full = subprocess.run(
        [sys.executable, "-m", "ssec_transfer.cli.main", "--version"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert fast.stdout == full.stdout == f"ssec-transfer {ssec_transfer.__version__}\n"
