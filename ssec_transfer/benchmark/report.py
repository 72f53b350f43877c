"""What a benchmark run leaves behind: `<date>-<machine>.json` (everything, for machines),
`.md` (medians, min-max and ratios, for people) and `.png` (throughput, CPU per GiB and peak
RSS per tool and scenario)."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssec_transfer.benchmark.stats import (
    SELF,
    RunRecord,
    Summary,
    evaluate_targets,
    ratios,
    summarise,
)


def machine_facts() -> dict[str, Any]:
    """CPU model, cores and memory: what a reader needs to compare runs across machines."""
    cpu_model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "memory_bytes": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def machine_name(facts: dict[str, Any]) -> str:
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in str(facts["hostname"]))
    return f"{host[:40]}-{facts['cpus']}cpu"


@dataclass
class Report:
    """Everything known about one run of the harness."""

    command: list[str]
    settings: dict[str, Any]
    machine: dict[str, Any]
    server: dict[str, Any]
    scenarios: dict[str, dict[str, Any]]  # id -> label, bytes, files, direction, rounds
    tools: dict[str, dict[str, Any]]  # name -> version, note, available, reason
    records: list[RunRecord] = field(default_factory=list)
    # wall seconds (median, min, max) of each start-up command (`benchmark.startup`)
    startup: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    finished: str | None = None

    def to_dict(self) -> dict[str, Any]:
        summaries = summarise(self.records)
        return {
            "schema": "ssec-transfer-benchmark/1",
            "started": self.started,
            "finished": self.finished,
            "command": self.command,
            "settings": self.settings,
            "machine": self.machine,
            "server": self.server,
            "tools": self.tools,
            "scenarios": self.scenarios,
            "summary": {
                sc: {t: s.to_dict() for t, s in tools.items()} for sc, tools in summaries.items()
            },
            "ratios_vs_peers": [r.to_dict() for r in ratios(summaries)],
            "startup": self.startup,
            "targets": [t.to_dict() for t in evaluate_targets(summaries, self.startup)],
            "notes": self.notes,
            "runs": [r.to_dict() for r in self.records],
        }


def write_all(report: Report, out_dir: Path, stem: str) -> dict[str, Path]:
    """Write JSON, markdown and PNG; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    paths = {
        "json": out_dir / f"{stem}.json",
        "markdown": out_dir / f"{stem}.md",
        "png": out_dir / f"{stem}.png",
    }
    paths["json"].write_text(json.dumps(data, indent=1) + "\n")
    paths["markdown"].write_text(render_markdown(report, data, paths["png"].name))
    write_chart(report, paths["png"])
    return paths


# -- markdown ----------------------------------------------------------------------------------


def _range(s: dict[str, float], digits: int) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def _one_line(text: str, limit: int) -> str:
    """Error text fit for a table cell: one line, no pipes, bounded."""
    flat = " ".join(text.replace("|", "/").split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def render_markdown(report: Report, data: dict[str, Any], png_name: str) -> str:
    """The report for people: setup, one table per scenario, ratios, targets, tools, notes."""
    lines = _markdown_header(report)
    summary: dict[str, dict[str, Any]] = data["summary"]
    for sc_id, sc in report.scenarios.items():
        lines += [f"## {sc['label']} (`{sc_id}`)", ""]
        lines += _scenario_table(report, sc_id, summary.get(sc_id, {}))
        lines.append("")
    lines += _ratio_table(data["ratios_vs_peers"])
    if report.startup:
        lines += ["", "## Start-up (wall s, median (min-max) of interleaved runs)", ""]
        lines += ["| command | wall s |", "|---|---|"]
        lines += [f"| `{name}` | {_range(s, 3)} |" for name, s in report.startup.items()]
    lines += ["", "## Targets of issue 14 (lean data plane)", ""]
    if report.settings.get("quick"):
        lines += [
            "Quick mode: tiny sizes, the figures prove the harness works and judge nothing.",
            "",
        ]
    lines += _targets_table(data["targets"])
    lines += ["", "## Tools", "", "| tool | version | how it is run |", "|---|---|---|"]
    for tool, info in report.tools.items():
        version = info.get("version") or "not available: " + _one_line(str(info.get("reason")), 300)
        lines.append(f"| {tool} | {version} | {info.get('note', '')} |")
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    lines += ["", f"![throughput, CPU per GiB and peak RSS]({png_name})", ""]
    return "\n".join(lines)


def _markdown_header(report: Report) -> list[str]:
    """Title, command, machine, server and schedule, and how to read the tables."""
    m = report.machine
    mem = f"{m['memory_bytes'] / 2**30:.0f} GiB" if m.get("memory_bytes") else "?"
    version = report.server.get("version")
    measured = report.server.get("cpu_measured")
    server_cpu = (
        f"server CPU is what the embedded server used during the run (same cores: {measured})"
        if measured
        else "server CPU is not measured on a user's endpoint"
    )
    return [
        f"# ssec-transfer benchmark, {report.started[:10]}",
        "",
        f"- **Command:** `{' '.join(report.command)}`",
        f"- **Machine:** {m['hostname']}: {m['cpu_model']}, {m['cpus']} CPUs, {mem} RAM, "
        f"{m['os']}, Python {m['python']}",
        f"- **Server:** {report.server.get('kind')}"
        + (f" (version: {version})" if version else ""),
        f"- **Runs:** {report.settings.get('runs_text', '')}",
        f"- **Started / finished:** {report.started} / {report.finished}",
        "",
        "Medians of the measured runs, (min-max) in brackets. CPU is the client's user+system "
        f"time per GiB moved; RSS the client's peak resident memory; {server_cpu}; others "
        "CPU is what every other process on the machine used meanwhile (near 0 means a quiet "
        "machine).",
        "",
    ]


def _scenario_table(report: Report, sc_id: str, summary: dict[str, Any]) -> list[str]:
    """One row per tool: its medians and ranges, or why it has none (failed, missing)."""
    lines = [
        "| tool | wall s | MiB/s | CPU-s/GiB | peak RSS MiB | server CPU-s | others CPU-s | runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for tool, info in report.tools.items():
        s = summary.get(tool)
        if s is None:
            failed = [
                r for r in report.records if r.scenario == sc_id and r.tool == tool and not r.ok
            ]
            if failed:
                why = "failed: " + _one_line(failed[0].error or "", 160)
            elif not info.get("available"):
                why = "not available: " + _one_line(str(info.get("reason")), 160)
            else:
                why = "not run"
            lines.append(f"| {tool} | - | - | - | - | - | - | {why} |")
            continue
        server = _range(s["server_cpu_s"], 1) if s["server_cpu_s"] else "-"
        others = _range(s["other_cpu_s"], 1) if s["other_cpu_s"] else "-"
        bold = "**" if tool == SELF else ""
        lines.append(
            f"| {bold}{tool}{bold} | {_range(s['wall_s'], 2)} | {_range(s['mib_per_s'], 0)} | "
            f"{_range(s['cpu_s_per_gib'], 2)} | {_range(s['rss_mib'], 0)} | {server} | "
            f"{others} | "
            f"{s['runs']}{' (' + str(s['failures']) + ' failed)' if s['failures'] else ''} |"
        )
    return lines


def _ratio_table(ratios_vs_peers: list[dict[str, Any]]) -> list[str]:
    """How ssec-transfer compares with each peer, scenario by scenario."""
    return [
        "## ssec-transfer / each peer (median / median; below 1.00x ssec-transfer needs less)",
        "",
        "| scenario | peer | wall | CPU/GiB | peak RSS |",
        "|---|---|---|---|---|",
    ] + [
        f"| {r['scenario']} | {r['peer']} | {_fmt_ratio(r['wall'])} | "
        f"{_fmt_ratio(r['cpu_per_gib'])} | {_fmt_ratio(r['rss'])} |"
        for r in ratios_vs_peers
    ]


def _targets_table(targets: list[dict[str, Any]]) -> list[str]:
    """Each target of issue 14, what was measured against what, and whether it was met."""
    lines = ["| target | measured | against | met |", "|---|---|---|---|"]
    for t in targets:
        shown = {"x": "{:.2f}x", "MiB": "{:.0f} MiB", "s": "{:.3f} s"}[t["unit"]]
        measured = "-" if t["measured"] is None else shown.format(t["measured"])
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['target']} | {measured} | {t['against']} | {met} |")
    return lines


# -- chart -------------------------------------------------------------------------------------


def write_chart(report: Report, path: Path) -> None:
    """Grouped bars, one group per scenario and one bar per tool, min-max as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summaries = summarise(report.records)
    scenario_ids = [s for s in report.scenarios if s in summaries]
    tools = [t for t in report.tools if any(t in summaries[s] for s in scenario_ids)]
    panels: Sequence[tuple[str, str]] = (
        ("mib_per_s", "throughput, MiB/s (higher is better)"),
        ("cpu_s_per_gib", "client CPU-s per GiB (lower is better)"),
        ("rss_mib", "client peak RSS, MiB (lower is better)"),
    )
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(8.0, 1.6 * len(scenario_ids) + 3), 10.5))
    if not tools:
        axes[0].text(0.5, 0.5, "no successful runs", ha="center", transform=axes[0].transAxes)
    width = 0.8 / max(1, len(tools))
    colours = plt.get_cmap("tab10")
    for ax, (metric, title) in zip(axes, panels, strict=True):
        for i, tool in enumerate(tools):
            xs, ys, lo, hi = [], [], [], []
            for j, sc in enumerate(scenario_ids):
                s: Summary | None = summaries[sc].get(tool)
                if s is None:
                    continue
                spread = getattr(s, metric)
                xs.append(j + (i - (len(tools) - 1) / 2) * width)
                ys.append(spread.median)
                lo.append(spread.median - spread.min)
                hi.append(spread.max - spread.median)
            ax.bar(
                xs,
                ys,
                width,
                yerr=[lo, hi],
                capsize=2,
                label=tool,
                color=colours(i),
                edgecolor="black" if tool == SELF else None,
                linewidth=1.2 if tool == SELF else 0,
            )
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(scenario_ids)))
        ax.set_xticklabels([report.scenarios[s]["label"] for s in scenario_ids], fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    if tools:
        fig.legend(
            *axes[0].get_legend_handles_labels(),
            ncol=len(tools),
            fontsize=9,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.952),
            frameon=False,
        )
    m = report.machine
    fig.suptitle(
        f"SSE-C transfers, {report.server.get('kind', '')}\n"
        f"{m['cpu_model']}, {m['cpus']} CPUs — {report.started[:10]}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.935))
    fig.savefig(path, dpi=110)
    plt.close(fig)
