"""From runs to numbers: per-run figures, medians with min-max, ratios, and the issue's targets.

Ratios are always ssec-transfer divided by the peer, so below 1.0 means ssec-transfer needs
less (time, CPU, memory) than that peer.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ssec_transfer.benchmark.scenarios import GiB, MiB

SELF = "ssec-transfer"


@dataclass(frozen=True)
class RunRecord:
    """One timed (or warm-up) run of one tool in one scenario."""

    scenario: str
    tool: str
    round: int  # 0.. in order; the first `warmup` rounds are not summarised
    warmup: bool
    bytes: int
    files: int
    ok: bool
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_bytes: int
    rss_exact: bool
    server_cpu_s: float | None
    other_cpu_s: float | None = None  # CPU of everything else on the machine during the run
    error: str | None = None
    noisy: bool = False  # other processes were busy during it; repeated, not counted

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    @property
    def mib_per_s(self) -> float:
        return self.bytes / MiB / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_s_per_gib(self) -> float:
        return self.cpu_s / (self.bytes / GiB) if self.bytes else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            cpu_s=round(self.cpu_s, 4),
            mib_per_s=round(self.mib_per_s, 2),
            cpu_s_per_gib=round(self.cpu_s_per_gib, 3),
        )
        return data


@dataclass(frozen=True)
class Spread:
    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def to_dict(self, digits: int = 3) -> dict[str, float]:
        return {k: round(v, digits) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Summary:
    """Medians and min-max of the measured runs of one tool in one scenario."""

    scenario: str
    tool: str
    runs: int
    failures: int
    wall_s: Spread
    mib_per_s: Spread
    cpu_s_per_gib: Spread
    rss_mib: Spread
    server_cpu_s: Spread | None
    other_cpu_s: Spread | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "failures": self.failures,
            "wall_s": self.wall_s.to_dict(),
            "mib_per_s": self.mib_per_s.to_dict(1),
            "cpu_s_per_gib": self.cpu_s_per_gib.to_dict(),
            "rss_mib": self.rss_mib.to_dict(1),
            "server_cpu_s": self.server_cpu_s.to_dict() if self.server_cpu_s else None,
            "other_cpu_s": self.other_cpu_s.to_dict() if self.other_cpu_s else None,
        }


def summarise(records: Sequence[RunRecord]) -> dict[str, dict[str, Summary]]:
    """scenario -> tool -> Summary, over the measured (non-warm-up) successful runs."""
    out: dict[str, dict[str, Summary]] = {}
    keys = dict.fromkeys((r.scenario, r.tool) for r in records)
    for scenario, tool in keys:
        mine = [r for r in records if r.scenario == scenario and r.tool == tool and not r.warmup]
        # A run repeated for noise counts only by its clean attempt; a round whose every
        # attempt was noisy counts by its last one (the JSON keeps all).
        counted = [r for r in mine if not r.noisy]
        noisy_rounds = {r.round for r in mine if r.noisy} - {r.round for r in counted}
        last_of_round = {r.round: r for r in mine}  # records are in the order they ran
        counted += [last_of_round[n] for n in sorted(noisy_rounds)]
        good = [r for r in counted if r.ok]
        if not good:
            continue
        server = [r.server_cpu_s for r in good if r.server_cpu_s is not None]
        other = [r.other_cpu_s for r in good if r.other_cpu_s is not None]
        out.setdefault(scenario, {})[tool] = Summary(
            scenario=scenario,
            tool=tool,
            runs=len(good),
            failures=len(counted) - len(good),
            wall_s=Spread.of([r.wall_s for r in good]),
            mib_per_s=Spread.of([r.mib_per_s for r in good]),
            cpu_s_per_gib=Spread.of([r.cpu_s_per_gib for r in good]),
            rss_mib=Spread.of([r.max_rss_bytes / MiB for r in good]),
            server_cpu_s=Spread.of(server) if server else None,
            other_cpu_s=Spread.of(other) if other else None,
        )
    return out


@dataclass(frozen=True)
class Ratio:
    scenario: str
    peer: str
    wall: float
    cpu_per_gib: float
    rss: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def ratios(summaries: dict[str, dict[str, Summary]]) -> list[Ratio]:
    out: list[Ratio] = []
    for scenario, tools in summaries.items():
        me = tools.get(SELF)
        if me is None:
            continue
        for peer, s in tools.items():
            if peer == SELF:
                continue
            out.append(
                Ratio(
                    scenario,
                    peer,
                    wall=me.wall_s.median / s.wall_s.median,
                    cpu_per_gib=me.cpu_s_per_gib.median / s.cpu_s_per_gib.median,
                    rss=me.rss_mib.median / s.rss_mib.median,
                )
            )
    return out


# -- the targets of issue 14 ("Lean data plane") ----------------------------------------------


@dataclass(frozen=True)
class TargetResult:
    target: str
    measured: float | None  # the ratio (or MiB for absolute memory targets)
    limit: float
    unit: str  # "x" for ratios, "MiB", "s"
    against: str  # which peer or case the figure is relative to

    @property
    def met(self) -> bool | None:
        return None if self.measured is None else self.measured <= self.limit

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["measured"] = None if self.measured is None else round(self.measured, 3)
        data["met"] = self.met
        return data


def _median(
    s: dict[str, dict[str, Summary]], scenario: str, tool: str, metric: str
) -> float | None:
    summary = s.get(scenario, {}).get(tool)
    if summary is None:
        return None
    spread: Spread = getattr(summary, metric)
    return spread.median


def _best_peer(
    s: dict[str, dict[str, Summary]], scenario: str, metric: str
) -> tuple[str, float] | None:
    peers = [(t, getattr(v, metric).median) for t, v in s.get(scenario, {}).items() if t != SELF]
    return min(peers, key=lambda p: float(p[1])) if peers else None


def evaluate_targets(
    s: dict[str, dict[str, Summary]], startup: dict[str, dict[str, float]] | None = None
) -> list[TargetResult]:
    """Issue 14's targets: ratios to peers' medians, peak memory, and start-up wall time."""
    out: list[TargetResult] = []

    def vs(target: str, scenario: str, metric: str, peer: str | None, limit: float) -> None:
        mine = _median(s, scenario, SELF, metric)
        if peer is None:
            best = _best_peer(s, scenario, metric)
            name, theirs = best if best else ("best peer", None)
            against = f"best peer ({name})"
        else:
            theirs, against = _median(s, scenario, peer, metric), peer
        value = mine / theirs if mine is not None and theirs else None
        out.append(TargetResult(target, value, limit, "x", against))

    for direction, verb in (("up", "upload"), ("down", "download")):
        scenario = f"small-{direction}"
        vs(f"500 x 256 KiB {verb}: wall <= 1.0x rclone", scenario, "wall_s", "rclone", 1.0)
        vs(f"500 x 256 KiB {verb}: CPU <= 1.2x rclone", scenario, "cpu_s_per_gib", "rclone", 1.2)
    vs("1 GiB download: wall <= 0.9x rclone", "1g-down", "wall_s", "rclone", 0.9)
    vs("1 GiB download: CPU/GiB <= 0.8x rclone", "1g-down", "cpu_s_per_gib", "rclone", 0.8)
    vs("1 GiB upload: wall <= 1.0x best peer", "1g-up", "wall_s", None, 1.0)
    vs("1 GiB upload: CPU/GiB <= 1.0x boto3", "1g-up", "cpu_s_per_gib", "boto3", 1.0)
    for direction, verb in (("up", "upload"), ("down", "download")):
        rss = _median(s, f"1g-{direction}", SELF, "rss_mib")
        out.append(
            TargetResult(f"1 GiB {verb}: peak RSS <= 100 MiB", rss, 100.0, "MiB", "absolute")
        )
    for direction, verb in (("up", "upload"), ("down", "download")):
        rss = _median(s, f"4g-{direction}", SELF, "rss_mib")
        out.append(
            TargetResult(f"4 GiB {verb}: peak RSS <= 100 MiB", rss, 100.0, "MiB", "absolute")
        )
    for command in ("ssec-transfer --version", "import ssec_transfer"):
        wall = (startup or {}).get(command, {}).get("median")
        out.append(TargetResult(f"`{command}`: wall <= 0.15 s", wall, 0.15, "s", "absolute"))
    return out
