"""`ssec-transfer bench`: install the peers, make the data, run every tool in every scenario
(interleaved, after a warm-up), verify every result, and write the report.

Interleaving (A B C, A B C, ...) spreads slow drift of the machine or the server over all
tools alike. Before each run the harness syncs the page cache so one tool's write-back does
not land in the next tool's time; between runs it deletes what was uploaded.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

from ssec_transfer.benchmark import startup
from ssec_transfer.benchmark.cli_args import Plan, plan_from_args
from ssec_transfer.benchmark.endpoint import (
    Connection,
    Store,
    VerificationError,
    ceph_memstore_bytes,
    ceph_server,
    embedded_server,
    new_prefix,
    user_endpoint,
)
from ssec_transfer.benchmark.measure import (
    Measurement,
    autogroup_nice,
    ensure_gnu_time,
    machine_busy_seconds,
    prioritise,
    restore_autogroup,
    run_measured,
)
from ssec_transfer.benchmark.peers import (
    NO_SSEC_TOOLS,
    TOOLS,
    SsecTransfer,
    Target,
    Tool,
    ToolUnavailable,
)
from ssec_transfer.benchmark.report import Report, machine_facts, machine_name, write_all
from ssec_transfer.benchmark.scenarios import (
    FULL_SPECS,
    QUICK_SPECS,
    DataSet,
    GiB,
    MiB,
    Scenario,
    ensure_dataset,
    sha256_file,
)
from ssec_transfer.benchmark.stats import RunRecord
from ssec_transfer.keys.customer import SSECustomerKey

QUIET_WINDOW = 0.5  # seconds sampled before a run to see whether the machine is idle
QUIET_CORES = 0.15  # what other processes may use, in cores, for the machine to count as idle
NOISY_RETRIES = 2


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


# -- setup ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _private_dir(parent: Path) -> Iterator[Path]:
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f".run-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _keygen(path: Path) -> SSECustomerKey:
    """A fresh key written by `ssec-transfer keygen` (mode 0600), as a user would make one."""
    proc = subprocess.run(
        [sys.executable, "-m", "ssec_transfer", "keygen", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ssec-transfer keygen failed: {proc.stderr.strip()}")
    return SSECustomerKey.from_file(path)


def _install_tools(plan: Plan, report: Report) -> list[Tool]:
    ready: list[Tool] = []
    for name in plan.tools:
        tool = TOOLS[name]()
        try:
            tool.install(plan.peers_dir, _say)
            version = tool.version()
        except (ToolUnavailable, OSError, subprocess.SubprocessError) as exc:
            _say(f"skipping {name}: {exc}")
            report.tools[name] = {"available": False, "reason": str(exc), "note": tool.note}
            report.notes.append(f"{name} was skipped: it could not be installed or run ({exc}).")
            continue
        report.tools[name] = {"available": True, "version": version, "note": tool.note}
        ready.append(tool)
    return ready


# -- one run -------------------------------------------------------------------------------------


@dataclass
class Runner:
    plan: Plan
    store: Store
    target: Target
    workdir: Path
    prefix: str
    time_binary: Path | None

    def seed(self, data: DataSet) -> str:
        where = f"{self.prefix}/seed/{data.name}"
        _say(f"seeding {data.name} for the download runs (ssec-transfer engine, untimed)")
        self.store.seed(data, where)
        self.store.check(data, where, self.workdir / "check")
        return where

    def timeout(self, data: DataSet) -> float:
        return 300.0 + data.total_bytes / (2 * MiB)  # anything slower than 2 MiB/s is broken

    def run_once(
        self, tool: Tool, sc: Scenario, data: DataSet, rnd: int, warm: bool, seeded: str | None
    ) -> list[RunRecord]:
        """One run; repeated (up to NOISY_RETRIES times) while other processes took more
        than `max_noise` cores on average during it. Every attempt is returned and kept in
        the JSON; only the clean one counts when one exists."""
        attempts: list[RunRecord] = []
        for attempt in range(NOISY_RETRIES + 1):
            self.wait_for_quiet()
            rec = self.attempt(tool, sc, data, rnd, warm, seeded)
            noise = (rec.other_cpu_s or 0.0) / rec.wall_s if rec.wall_s > 0 else 0.0
            if noise <= self.plan.max_noise or not rec.ok:
                attempts.append(rec)
                return attempts
            attempts.append(replace(rec, noisy=True))
            if attempt < NOISY_RETRIES:
                _say(
                    f"{sc.id} {tool.name}: other processes used {noise:.2f} cores during "
                    "the run; repeating it"
                )
        return attempts

    def wait_for_quiet(self) -> None:
        """Start a run only once the rest of the machine (not the server) is idle, or give up
        after `quiet_wait` seconds: a test suite next door would otherwise land in the run."""
        if self.plan.quiet_wait <= 0:
            return
        deadline = time.monotonic() + self.plan.quiet_wait
        announced = False
        while True:
            busy0, server0 = machine_busy_seconds(), self.store.server_cpu_seconds()
            time.sleep(QUIET_WINDOW)
            busy1, server1 = machine_busy_seconds(), self.store.server_cpu_seconds()
            if busy0 is None or busy1 is None:
                return
            others = (busy1 - busy0 - ((server1 or 0.0) - (server0 or 0.0))) / QUIET_WINDOW
            if others <= QUIET_CORES:
                return
            if time.monotonic() > deadline:
                _say(f"machine still busy ({others:.2f} cores used by others); running anyway")
                return
            if not announced:
                _say(f"waiting for a quiet machine ({others:.2f} cores used by others)")
                announced = True

    def attempt(
        self, tool: Tool, sc: Scenario, data: DataSet, rnd: int, warm: bool, seeded: str | None
    ) -> RunRecord:
        """One timed run of `tool`, verified and cleaned up after, with the CPU the server and
        every other process used meanwhile (so a noisy run can be told apart)."""
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        stem = f"{sc.id}-{tool.name}-{rnd}"
        argv, where, dest = self._command(tool, sc, data, rnd, seeded, stem)
        inv = tool.invocation(self.target, argv)
        os.sync()  # the previous run's dirty pages are not this run's cost
        server_before = self.store.server_cpu_seconds()
        busy_before = machine_busy_seconds()
        m = run_measured(
            inv.argv,
            env=inv.env,
            stdout=logs / f"{stem}.out",
            stderr=logs / f"{stem}.err",
            timeout=self.timeout(data),
            cwd=self.workdir,
            time_binary=self.time_binary,
        )
        server = _elapsed(server_before, self.store.server_cpu_seconds())
        busy = _elapsed(busy_before, machine_busy_seconds())
        error = self._verify(m, sc, data, where, dest, logs / f"{stem}.err")
        other = None
        if busy is not None:
            # Clock-tick granularity makes small negatives possible; they mean "nothing".
            other = max(0.0, busy - m.cpu_s - (server or 0.0))
        return RunRecord(
            scenario=sc.id,
            tool=tool.name,
            round=rnd,
            warmup=warm,
            bytes=data.total_bytes,
            files=len(data.files),
            ok=error is None,
            wall_s=round(m.wall_s, 4),
            user_s=round(m.user_s, 4),
            sys_s=round(m.sys_s, 4),
            max_rss_bytes=m.max_rss_bytes,
            rss_exact=m.rss_exact,
            server_cpu_s=None if server is None else round(server, 3),
            other_cpu_s=None if other is None else round(other, 3),
            error=error,
        )

    def _command(
        self, tool: Tool, sc: Scenario, data: DataSet, rnd: int, seeded: str | None, stem: str
    ) -> tuple[list[str], str, Path | None]:
        """The tool's argv for this run, the prefix on the server it writes or reads, and the
        fresh local folder a download lands in (None for an upload)."""
        names = [f.rel for f in data.files]
        first = data.files[0]
        if sc.direction == "up":
            where = f"{self.prefix}/up/{sc.id}/{tool.name}/{rnd}"
            if data.is_tree:
                return tool.put_tree(self.target, data.root, where, names), where, None
            return tool.put_file(self.target, data.path(first), f"{where}/{first.rel}"), where, None
        assert seeded is not None
        dest = self.workdir / "down" / stem
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        if data.is_tree:
            return tool.get_tree(self.target, seeded, dest, names), seeded, dest
        return tool.get_file(self.target, f"{seeded}/{first.rel}", dest / first.rel), seeded, dest

    def _verify(
        self,
        m: Measurement,
        sc: Scenario,
        data: DataSet,
        where: str,
        dest: Path | None,
        err_log: Path,
    ) -> str | None:
        """Why the run failed (exit code, timeout, bytes that differ), or None; either way,
        remove what it moved so the next run starts from nothing."""
        try:
            if m.timed_out:
                return f"timed out after {self.timeout(data):.0f} s"
            if m.returncode != 0:
                tail = err_log.read_text(errors="replace").strip()[-400:]
                return f"exit code {m.returncode}: {tail}"
            if sc.direction == "up":
                self.store.check(data, where, self.workdir / "check")
            else:
                assert dest is not None
                _check_local(data, dest)
        except (VerificationError, OSError) as exc:
            return f"verification failed: {exc}"
        except Exception as exc:  # the engine's read-back failed: the tool's upload is suspect
            return f"read-back failed: {type(exc).__name__}: {exc}"
        finally:
            if sc.direction == "up":
                self.store.delete_prefix(where)
                self.store.reclaim_space(data.total_bytes)
            elif dest is not None:
                shutil.rmtree(dest, ignore_errors=True)
        return None


def _elapsed(before: float | None, after: float | None) -> float | None:
    """A CPU counter's growth, or None when either reading was unavailable."""
    return None if before is None or after is None else after - before


def _check_local(data: DataSet, dest: Path) -> None:
    found = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    wanted = {f.rel for f in data.files}
    if found != wanted:
        missing, extra = sorted(wanted - found), sorted(found - wanted)
        raise VerificationError(f"files differ: missing {missing[:3]}, unexpected {extra[:3]}")
    for f in data.files:
        if sha256_file(dest / f.rel) != f.sha256:
            raise VerificationError(f"{f.rel} differs from the source")


def _progress(done: int, total: int, rec: RunRecord, label: str) -> None:
    status = "ok" if rec.ok else f"FAILED {(rec.error or '')[:200]}"
    _say(
        f"[{done}/{total}] {rec.scenario:<10} {rec.tool:<13} {label:<9} "
        f"{rec.wall_s:7.2f} s {rec.mib_per_s:7.1f} MiB/s  cpu {rec.cpu_s:6.2f} s  "
        f"rss {rec.max_rss_bytes / MiB:6.0f} MiB  server {rec.server_cpu_s or 0:5.1f} s  "
        f"others {rec.other_cpu_s or 0:5.1f} s  {status}"
    )


def _run_scenarios(
    runner: Runner, tools: Sequence[Tool], datasets: dict[str, DataSet], report: Report
) -> None:
    plan = runner.plan
    total = sum(sum(plan.rounds(sc)) * len(tools) for sc in plan.scenarios)
    done = 0
    seeded: dict[str, str] = {}
    for sc in plan.scenarios:
        data = datasets[sc.data]
        warm, measured = plan.rounds(sc)
        if sc.direction == "down" and sc.data not in seeded:
            seeded[sc.data] = runner.seed(data)
        failed: set[str] = set()
        for rnd in range(warm + measured):
            for tool in tools:
                if tool.name in failed:
                    done += 1
                    continue
                is_warm = rnd < warm
                attempts = runner.run_once(tool, sc, data, rnd, is_warm, seeded.get(sc.data))
                report.records.extend(attempts)
                rec = attempts[-1]
                done += 1
                _progress(
                    done, total, rec, "warm-up" if is_warm else f"run {rnd - warm + 1}/{measured}"
                )
                if not rec.ok:
                    failed.add(tool.name)  # a broken tool would only fail again; move on
        if sc.direction == "down" and all(
            s.data != sc.data or s.direction != "down"
            for s in plan.scenarios[plan.scenarios.index(sc) + 1 :]
        ):
            runner.store.delete_prefix(seeded[sc.data])
            runner.store.reclaim_space(data.total_bytes)


# -- entry points --------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by `args` (see `add_arguments`); return an exit code."""
    try:
        plan = plan_from_args(args)
    except ValueError as exc:
        print(f"ssec-transfer bench: error: {exc}", file=sys.stderr)
        return 2
    shell_group_nice = autogroup_nice(os.getpid())
    if plan.nice:
        # Inherited by every tool the harness starts; the server gets its own below.
        failure = prioritise(os.getpid(), plan.nice)
        if failure:
            print(
                f"ssec-transfer bench: error: cannot set nice {plan.nice}: {failure}",
                file=sys.stderr,
            )
            return 2
    facts = machine_facts()
    # SeaweedFS runs keep the names they always had; other servers say theirs.
    server = f"-{plan.server}" if plan.server not in (None, "seaweedfs") else ""
    stem = f"{time.strftime('%Y-%m-%d')}-{machine_name(facts)}{server}" + (
        "-quick" if plan.quick else ""
    )
    time_binary = ensure_gnu_time()
    report = _new_report(plan, facts, time_binary)
    exit_code = 0

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # unwind through the cleanup: server, objects, work folder

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        with _private_dir(plan.data_dir) as workdir:
            try:
                _benchmark(plan, report, workdir, time_binary)
            except KeyboardInterrupt:
                report.notes.append("Interrupted: the results are partial.")
                exit_code = 130
            except ServerUnavailable as exc:
                print(f"ssec-transfer bench: error: {exc}", file=sys.stderr)
                return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        if plan.nice:
            restore_autogroup(os.getpid(), shell_group_nice)
    _write_report(plan, report, stem)
    if exit_code == 0 and any(not r.ok for r in report.records):
        exit_code = 1
    return exit_code


def _new_report(plan: Plan, facts: dict[str, Any], time_binary: Path | None) -> Report:
    """The report before any run: the settings, and the notes a reader needs to weigh the
    figures (what was not measured, what shared the machine)."""
    report = Report(
        command=_command_line(),
        settings={
            "quick": plan.quick,
            "runs": plan.runs,
            "runs_4g": plan.runs_4g,
            "warmup": plan.warmup,
            "runs_text": f"{plan.warmup} warm-up + {plan.runs} measured per tool and scenario "
            f"(4 GiB: no warm-up, {plan.runs_4g} measured), tools interleaved",
            "server": plan.server or "endpoint",
            "tools": plan.tools,
            "scenarios": [s.id for s in plan.scenarios],
            "rss_measured_with": str(time_binary) if time_binary else "wait4 ru_maxrss",
            "nice": plan.nice,
            "quiet_wait_s": plan.quiet_wait,
            # None: never repeated for noise (--quick); JSON has no infinity.
            "max_noise_cores": plan.max_noise if math.isfinite(plan.max_noise) else None,
        },
        machine=facts,
        server={"name": plan.server or "endpoint"},
        scenarios={},
        tools={},
    )
    report.notes.extend(NO_SSEC_TOOLS.values())
    if time_binary is None:
        report.notes.append(
            "GNU time is not installed (apt-get install time): peak RSS comes from wait4 and "
            "includes the harness's own RSS at fork time as a floor, so small tools read high."
        )
    if plan.nice < 0:
        report.notes.append(
            f"The harness, the server and every tool ran at nice {plan.nice}, so that other "
            "work on this shared machine yielded the CPU to the measurements."
        )
    if not plan.embedded:
        report.notes.append("Endpoint given by the user; server CPU is not measured.")
    else:
        report.notes.append(
            "Client and server share this machine's cores: client CPU the tool does not burn "
            "is left to the server, which is why CPU per GiB matters beside wall time."
        )
    return report


def _write_report(plan: Plan, report: Report, stem: str) -> None:
    """Note the failures and the repeated runs, stamp the end time and write JSON, markdown
    and chart."""
    for (scenario, tool), error in _first_failures(report.records).items():
        report.notes.append(
            f"{tool} FAILED in {scenario} on {report.server.get('kind', 'the server')}, "
            f"so it ran no more rounds there: {error}"
        )
    repeated = sum(r.noisy for r in report.records)
    if repeated:
        report.notes.append(
            f"{repeated} run(s) were repeated because other processes used more than "
            f"{plan.max_noise} cores during them; the JSON keeps them, marked noisy."
        )
    report.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    paths = write_all(report, plan.out, stem)
    for kind, path in paths.items():
        _say(f"wrote {kind}: {path}")


def _first_failures(records: Sequence[RunRecord]) -> dict[tuple[str, str], str]:
    """(scenario, tool) -> the error of the first failed run: a peer that cannot do something
    on this server is said in the notes, not only in a table cell."""
    out: dict[tuple[str, str], str] = {}
    for r in records:
        if not r.ok and (r.scenario, r.tool) not in out:
            out[r.scenario, r.tool] = " ".join((r.error or "unknown error").split())[:600]
    return out


def _command_line() -> list[str]:
    """The command as the user typed it (`ssec-transfer bench ...` or `python -m ...`)."""
    first = Path(sys.argv[0])
    if first.name == "__main__.py":
        return ["python", "-m", "ssec_transfer.benchmark", *sys.argv[1:]]
    return [first.name, *sys.argv[1:]]


def _probe_defaults(
    tools: Sequence[Tool], target: Target, store: Store, where: str, workdir: Path, report: Report
) -> None:
    """Where the server makes some peers run with a setting of their own (Ceph: botocore's
    checksum setting for aws and boto3), try one small upload with each at its true defaults
    first, and say in the report what happened: the setting is shown to be needed, not
    assumed."""
    settings: dict[str, str] = report.server.get("tool_env") or {}
    names = report.server.get("tool_env_tools") or []
    if not settings:
        return
    sample = workdir / "probe.bin"
    sample.write_bytes(os.urandom(64 * 1024))
    shown = ", ".join(f"{k}={v}" for k, v in settings.items())
    try:
        for tool in tools:
            if tool.name not in names:
                continue
            info = report.tools[tool.name]
            info["note"] = f"{info['note']}; here with {shown} (see the notes)"
            inv = tool.invocation(target, tool.put_file(target, sample, f"{where}/{tool.name}"))
            env = {k: v for k, v in inv.env.items() if k not in settings}
            # awscli's own error handler can hide the server's answer (an empty S3 error
            # message makes it fail with a TypeError); its debug log keeps status and code.
            argv = [*inv.argv, "--debug"] if tool.name == "aws" else inv.argv
            try:
                proc = subprocess.run(
                    argv,
                    env=env,
                    cwd=workdir,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                outcome = f"could not be run: {exc}"
            else:
                outcome = (
                    "succeeded, so the setting was not needed with this version"
                    if proc.returncode == 0
                    else f"failed (exit {proc.returncode}): {_s3_failure(proc.stderr)}"
                )
            info["probe_at_defaults"] = outcome
            report.notes.append(
                f"Probe: one 64 KiB upload by {tool.name} at its defaults (without {shown}) "
                f"{outcome}"
            )
            _say(f"probe: {tool.name} at its defaults: {outcome[:200]}")
    finally:
        sample.unlink(missing_ok=True)
        store.delete_prefix(where)


def _s3_failure(stderr: str) -> str:
    """What a botocore-based tool's output says the server answered: HTTP status and S3 error
    code where they show, and the last line of the output."""
    debug_line = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - ")  # awscli --debug
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not debug_line.match(ln)]
    last = lines[-1][-200:] if lines else "no output"
    status = re.findall(r'HTTP/1\.1" (\d{3})', stderr)
    codes = re.findall(r"<Code>(\w+)</Code>", stderr) or re.findall(
        r"\((\w+)\) when calling", stderr
    )
    ops = re.findall(r"when calling the (\w+) operation", stderr) or re.findall(
        r"OperationModel\(name=(\w+)\)", stderr
    )
    answer = " ".join(x for x in (status[-1] if status else "", codes[-1] if codes else "") if x)
    if not answer:
        return last
    op = f" to {ops[-1]}" if ops else ""
    return f"the server answered {answer}{op} (last line: {last})"


class ServerUnavailable(Exception):
    """The embedded server could not be installed or started: nothing was measured."""


def _benchmark(plan: Plan, report: Report, workdir: Path, time_binary: Path | None) -> None:
    specs = {s.name: s for s in (QUICK_SPECS if plan.quick else FULL_SPECS)}
    needed = dict.fromkeys(s.data for s in plan.scenarios)
    datasets = {
        name: ensure_dataset(
            specs[name], plan.data_dir / ("quick" if plan.quick else "full"), say=_say
        )
        for name in needed
    }
    for sc in plan.scenarios:
        warm, measured = plan.rounds(sc)
        data = datasets[sc.data]
        report.scenarios[sc.id] = {
            "label": sc.label,
            "direction": sc.direction,
            "bytes": data.total_bytes,
            "files": len(data.files),
            "warmup_rounds": warm,
            "measured_rounds": measured,
        }
    tools = _install_tools(plan, report)
    if not tools:
        raise RuntimeError("no tool could be installed")
    own = next((t for t in tools if isinstance(t, SsecTransfer)), None)
    if own is not None:
        _say("timing start-up (ssec-transfer --version, import ssec_transfer)")
        report.startup = startup.measure(own.exe, runs=3 if plan.quick else 11)

    server_cm: contextlib.AbstractContextManager[Connection]
    if plan.server == "ceph":
        memstore = ceph_memstore_bytes(max(d.total_bytes for d in datasets.values()))
        _say(
            "starting a throwaway Ceph RGW cluster (HTTPS only; the OSD keeps up to "
            f"{memstore / GiB:.0f} GiB of objects in RAM)"
        )
        server_cm = ceph_server(memstore_bytes=memstore, nice=plan.nice)
    elif plan.embedded:
        _say("starting the embedded SeaweedFS server (HTTPS only)")
        server_cm = embedded_server(workdir / "server", nice=plan.nice)
    else:
        assert plan.endpoint_url is not None
        assert plan.bucket is not None
        server_cm = contextlib.nullcontext(
            user_endpoint(
                plan.endpoint_url,
                plan.bucket,
                region=plan.region,
                ca_bundle=plan.ca_bundle,
                profile=plan.profile,
            )
        )
    with contextlib.ExitStack() as stack:
        try:
            conn = stack.enter_context(server_cm)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            # No Ceph packages and no root to install them, a daemon that dies: one clear
            # error, not a traceback.
            raise ServerUnavailable(
                f"cannot start the embedded {plan.server} server: {exc}"
            ) from exc
        report.server = conn.server
        report.notes.extend(conn.notes)
        key = _keygen(workdir / "sse-c.key")
        store = Store(conn, key)
        store.ensure_bucket(create=plan.embedded)
        prefix = new_prefix()
        report.server["prefix"] = prefix
        target = Target(
            endpoint_url=conn.endpoint_url,
            bucket=conn.bucket,
            region=conn.region,
            ca_bundle=conn.ca_bundle,
            profile=conn.profile,
            key_file=workdir / "sse-c.key",
            env=conn.env,
            private_dir=workdir,
            presign=store.presign,
        )
        for tool in tools:
            tool.configure(target)
        _probe_defaults(tools, target, store, f"{prefix}/probe", workdir, report)
        runner = Runner(plan, store, target, workdir, prefix, time_binary)
        try:
            _run_scenarios(runner, tools, datasets, report)
        finally:
            removed = store.delete_prefix(prefix)
            _say(f"removed {removed} leftover object(s) under {prefix}/")
