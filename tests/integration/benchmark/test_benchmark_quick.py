"""`ssec-transfer bench --quick`: the harness runs end to end on the embedded server and leaves
a JSON, a markdown table and a PNG chart with sane figures. It judges no speed.

The Ceph variant (marker `ceph`: the harness starts a Ceph RGW cluster of its own, so it runs
apart from the suite's session cluster, in `make test-ceph`) runs every peer once over the
quick 12 MiB and many-files cases, proving each can do SSE-C against RGW 16."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
# Quick to install (or already here): curl from the system, rclone as one static binary.
TOOLS = ("ssec-transfer", "rclone", "curl")
SCENARIOS = ("1g-up", "1g-down", "small-up", "small-down", "4g-up", "4g-down")
ALL_TOOLS = ("ssec-transfer", "aws", "rclone", "boto3", "curl")
CEPH_SCENARIOS = ("1g-up", "1g-down", "small-up", "small-down")


def _run_quick(tmp_path: Path, *options: str) -> Path:
    """`python -m ssec_transfer.benchmark --quick OPTIONS`; returns the JSON it wrote."""
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssec_transfer.benchmark",
            "--quick",
            *options,
            "--out",
            str(out),
            "--data-dir",
            str(tmp_path / "data"),
            # Cached between test runs; gitignored.
            "--peers-dir",
            str(REPO / "benchmarks" / "peers"),
            # Judge nothing, so wait for nothing: no idle gate, no repeats for noise.
            "--quiet-wait",
            "0",
            "--max-noise",
            "1000",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    (json_path,) = out.glob("*-quick.json")
    return json_path


def test_quick_benchmark_writes_json_markdown_and_chart(tmp_path: Path) -> None:
    json_path = _run_quick(tmp_path, "--tools", ",".join(TOOLS))
    assert "-ceph" not in json_path.name
    md_path, png_path = json_path.with_suffix(".md"), json_path.with_suffix(".png")
    data = json.loads(json_path.read_text())

    assert data["command"][:3] == ["python", "-m", "ssec_transfer.benchmark"]
    assert data["machine"]["cpus"] >= 1
    assert data["machine"]["cpu_model"]
    assert "SeaweedFS" in data["server"]["kind"]
    assert data["settings"]["quick"] is True
    for tool in TOOLS:
        assert data["tools"][tool]["available"], data["tools"][tool]
        assert data["tools"][tool]["version"]
    assert set(data["scenarios"]) == set(SCENARIOS)

    runs = data["runs"]
    assert runs, "no run recorded"
    failed = [r for r in runs if not r["ok"]]
    assert not failed, failed
    # Every tool ran every scenario: one warm-up (none for 4 GiB) and one measured round.
    assert len(runs) == len(TOOLS) * (2 * 4 + 2)
    for run in runs:
        assert run["wall_s"] > 0
        assert run["cpu_s"] > 0
        assert 1 << 20 < run["max_rss_bytes"] < 4 << 30
        assert run["bytes"] == data["scenarios"][run["scenario"]]["bytes"]
    for scenario in SCENARIOS:
        for tool in TOOLS:
            summary = data["summary"][scenario][tool]
            assert summary["runs"] == 1
            assert summary["mib_per_s"]["median"] > 0
            assert summary["cpu_s_per_gib"]["median"] > 0
    peers = {r["peer"] for r in data["ratios_vs_peers"]}
    assert peers == set(TOOLS) - {"ssec-transfer"}
    assert any("s5cmd" in note for note in data["notes"])
    assert data["targets"]
    # Start-up is timed as a user waits for it, and judged against its target.
    for command in ("ssec-transfer --version", "import ssec_transfer"):
        assert 0 < data["startup"][command]["median"] < 5
    assert any(t["unit"] == "s" and t["measured"] for t in data["targets"])

    markdown = md_path.read_text()
    assert "| tool | wall s | MiB/s | CPU-s/GiB | peak RSS MiB |" in markdown
    assert "**ssec-transfer**" in markdown
    assert "Targets of issue 14" in markdown
    assert "| `ssec-transfer --version` |" in markdown
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png_path.stat().st_size > 10_000
    # The harness removed its private work folder (key file, configs) behind it.
    assert not list((tmp_path / "data").glob(".run-*"))


@pytest.mark.ceph
def test_quick_benchmark_on_ceph_runs_every_peer(tmp_path: Path) -> None:
    """Every peer moves and verifies its data on Ceph RGW; the report names the server, the
    daemons whose CPU it measured, and what aws and boto3 do at their own defaults."""
    clusters_before = set(Path(tempfile.gettempdir()).glob("ssec-bench-ceph-*"))
    json_path = _run_quick(
        tmp_path, "--server", "ceph", "--tools", ",".join(ALL_TOOLS),
        "--scenarios", ",".join(CEPH_SCENARIOS), "--warmup", "0",
    )  # fmt: skip
    assert json_path.name.endswith("-ceph-quick.json")
    data = json.loads(json_path.read_text())

    assert "Ceph RGW" in data["server"]["kind"]
    assert data["server"]["version"].startswith("ceph version 16.")
    for daemon in ("radosgw", "ceph-osd", "ceph-mon"):
        assert daemon in data["server"]["cpu_measured"]
    assert data["settings"]["server"] == "ceph"
    for tool in ALL_TOOLS:
        assert data["tools"][tool]["available"], data["tools"][tool]
    # aws and boto3 were tried at their true defaults first, and the report says how it went.
    for tool in ("aws", "boto3"):
        assert data["tools"][tool]["probe_at_defaults"]
        assert any(n.startswith(f"Probe: one 64 KiB upload by {tool}") for n in data["notes"])

    runs = data["runs"]
    failed = [r for r in runs if not r["ok"]]
    assert not failed, failed
    assert len(runs) == len(ALL_TOOLS) * len(CEPH_SCENARIOS)
    assert {(r["scenario"], r["tool"]) for r in runs} == {
        (sc, tool) for sc in CEPH_SCENARIOS for tool in ALL_TOOLS
    }
    # The cluster's CPU was read (radosgw alone encrypts every byte under SSE-C).
    assert sum(r["server_cpu_s"] or 0 for r in runs) > 0
    assert "Ceph RGW" in json_path.with_suffix(".md").read_text()
    # The cluster is gone: its folder removed, no daemon of it left running.
    assert set(Path(tempfile.gettempdir()).glob("ssec-bench-ceph-*")) <= clusters_before
