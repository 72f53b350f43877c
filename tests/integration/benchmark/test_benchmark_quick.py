"""`ssec-transfer bench --quick`: the harness runs end to end on the embedded server and leaves
a JSON, a markdown table and a PNG chart with sane figures. It judges no speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
# Quick to install (or already here): curl from the system, rclone as one static binary.
TOOLS = ("ssec-transfer", "rclone", "curl")
SCENARIOS = ("1g-up", "1g-down", "small-up", "small-down", "4g-up", "4g-down")


def test_quick_benchmark_writes_json_markdown_and_chart(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssec_transfer.benchmark",
            "--quick",
            "--tools",
            ",".join(TOOLS),
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
        timeout=600,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    (json_path,) = out.glob("*-quick.json")
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

    markdown = md_path.read_text()
    assert "| tool | wall s | MiB/s | CPU-s/GiB | peak RSS MiB |" in markdown
    assert "**ssec-transfer**" in markdown
    assert "Targets of issue 4" in markdown
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png_path.stat().st_size > 10_000
    # The harness removed its private work folder (key file, configs) behind it.
    assert not list((tmp_path / "data").glob(".run-*"))
