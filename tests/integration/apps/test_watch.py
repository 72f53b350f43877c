"""Watch mode against a real server: each complete file is sent exactly once, never early,
never twice across restarts, and a stop leaves nothing half-done on the server."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from ssec_transfer import SSECustomerKey, TransferConfig, TransferEngine
from ssec_transfer.apps import watch as watch_module
from ssec_transfer.apps.sources import problem
from ssec_transfer.apps.watch import (
    WatchConfig,
    WatchEvent,
    WatchSummary,
    run_watch,
)
from ssec_transfer.cli.watch_command import add_arguments, config_from_args
from ssec_transfer.core.errors import TransferFailedError
from ssec_transfer.core.plan import MiB
from ssec_transfer.core.results import TransferResult
from ssec_transfer.s3.sse import sse_params
from ssec_transfer.state.watch_state import WatchState
from tests.support.json_schema import validate_lines

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FAST = {"interval": 0.1, "retry_interval": 0.5}


class Session:
    """One `run_watch` in the background, with every event and when it arrived."""

    def __init__(self, engine: TransferEngine, config: WatchConfig, key: SSECustomerKey) -> None:
        self.engine, self.config, self.key = engine, config, key
        self.events: list[tuple[float, WatchEvent]] = []
        self.stop = anyio.Event()
        self.summary: WatchSummary | None = None

    async def run(self) -> None:
        self.summary = await run_watch(
            self.engine,
            self.config,
            self.key,
            on_result=lambda e: self.events.append((time.monotonic(), e)),
            stop=self.stop,
        )

    def paths(self, status: str) -> list[str]:
        return sorted(e.path for _, e in self.events if e.status == status)

    def when(self, path: str, status: str = "uploaded") -> float:
        return next(t for t, e in self.events if e.path == path and e.status == status)

    async def wait_for(self, done: Callable[[], bool], seconds: float = 60) -> None:
        with anyio.fail_after(seconds):
            while not done():  # noqa: ASYNC110 - also waits on files and the server
                await anyio.sleep(0.05)


def _write(path: Path, data: bytes, mode: str = "wb") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode) as f:
        f.write(data)


async def write(path: Path, data: bytes) -> None:
    await anyio.to_thread.run_sync(_write, path, data)


async def write_slowly(path: Path, data: bytes, *, chunks: int = 8, pause: float = 0.2) -> float:
    """Write in chunks with pauses, as a slow producer does; return when it finished."""
    await write(path, b"")
    step = -(-len(data) // chunks)
    for i in range(chunks):
        await anyio.sleep(pause)
        await anyio.to_thread.run_sync(_write, path, data[i * step : (i + 1) * step], "ab")
    return time.monotonic()


async def object_bytes(admin: Any, bucket: str, key: str, sse: SSECustomerKey) -> bytes:
    def get() -> bytes:
        body: bytes = admin.get_object(Bucket=bucket, Key=key, **sse_params(sse))["Body"].read()
        return body

    return await anyio.to_thread.run_sync(get)


async def object_keys(admin: Any, bucket: str) -> list[str]:
    def keys() -> list[str]:
        return sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", []))

    return await anyio.to_thread.run_sync(keys)


async def multipart_uploads(admin: Any, bucket: str) -> list[Any]:
    def uploads() -> list[Any]:
        found: list[Any] = admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return found

    return await anyio.to_thread.run_sync(uploads)


async def test_files_are_uploaded_once_and_only_when_complete(
    tmp_path: Path, bucket: str, admin: Any, engine_kwargs: dict[str, str]
) -> None:
    key = SSECustomerKey.generate()
    root = tmp_path / "in"
    root.mkdir()
    config = WatchConfig(
        directory=root,
        bucket=bucket,
        prefix="in/",
        rules=(("exclude", "*"), ("include", "*.bin"), ("exclude", "tmp/*")),
        settle=1.0,
        **FAST,
    )
    instant = {
        "a.bin": os.urandom(1000),
        "empty.bin": b"",
        "sub/deep/b.bin": os.urandom(100_000),
    }
    slow = {"slow1.bin": os.urandom(2 * MiB), "sub/slow2.bin": os.urandom(9 * MiB)}  # multipart
    ignored = {
        ".hidden.bin": b"dot file",
        "partial.bin.tmp": b"still being written",
        ".cache/x.bin": b"in a dot folder",
        "tmp/skip.bin": b"excluded",
        "notes.txt": b"not included",
        ".a.bin.ssec-transfer-123-456": b"a download's temporary file",
    }
    finished: dict[str, float] = {}

    async def produce_slowly(rel: str) -> None:
        finished[rel] = await write_slowly(root / rel, slow[rel])

    async with TransferEngine(**engine_kwargs) as engine:
        session = Session(engine, config, key)
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.run)
            for rel, data in {**instant, **ignored}.items():
                await write(root / rel, data)
            for rel in slow:
                tg.start_soon(produce_slowly, rel)
            expected = sorted([*instant, *slow])
            await session.wait_for(lambda: session.paths("uploaded") == expected)
            await anyio.sleep(2 * config.settle)  # time for any second upload to show up
            session.stop.set()
        stats = engine.scheduler.stats()

    assert session.paths("uploaded") == expected  # each exactly once
    assert session.paths("failed") == []
    for rel in slow:
        assert session.when(rel) > finished[rel], f"{rel} was uploaded before it was complete"
    assert await object_keys(admin, bucket) == [f"in/{rel}" for rel in expected]
    for rel, data in {**instant, **slow}.items():
        assert await object_bytes(admin, bucket, f"in/{rel}", key) == data
    summary = session.summary
    assert summary is not None
    assert (summary.uploaded, summary.failed, summary.cancelled) == (5, 0, 0)
    assert summary.bytes_uploaded == sum(map(len, [*instant.values(), *slow.values()]))
    assert (stats.requests_in_flight, stats.bytes_reserved) == (0, 0)
    assert (root / ".ssec-transfer-watch.sqlite").is_file()


async def test_marker_files_gate_uploads_and_move_with_the_file(
    tmp_path: Path, bucket: str, admin: Any, engine_kwargs: dict[str, str]
) -> None:
    key = SSECustomerKey.generate()
    root, archive = tmp_path / "in", tmp_path / "archive"
    root.mkdir()
    config = WatchConfig(
        directory=root,
        bucket=bucket,
        marker_suffix=".done",
        settle=0,  # only the marker says a file is complete
        on_success="move",
        move_to=archive,
        **FAST,
    )
    data = {"m1.nc": os.urandom(300_000), "sub/m2.nc": os.urandom(5000)}
    async with TransferEngine(**engine_kwargs) as engine:
        session = Session(engine, config, key)
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.run)
            await write(root / "sub/m2.nc", data["sub/m2.nc"])
            await write_slowly(root / "m1.nc", data["m1.nc"], chunks=4, pause=0.2)
            await anyio.sleep(0.5)
            assert session.events == [], "uploaded without a marker"
            for rel in data:
                await write(root / f"{rel}.done", b"")
            await session.wait_for(lambda: session.paths("uploaded") == sorted(data))
            session.stop.set()

    assert await object_keys(admin, bucket) == sorted(data)  # markers are not uploaded
    for rel, content in data.items():
        assert await object_bytes(admin, bucket, rel, key) == content
        assert not (root / rel).exists()
        assert not (root / f"{rel}.done").exists()
        assert (archive / rel).read_bytes() == content
        assert (archive / f"{rel}.done").exists()


async def test_restart_sends_nothing_twice_and_a_changed_file_again(
    tmp_path: Path, bucket: str, admin: Any, engine_kwargs: dict[str, str]
) -> None:
    key = SSECustomerKey.generate()
    root = tmp_path / "in"
    root.mkdir()
    config = WatchConfig(directory=root, bucket=bucket, prefix="p", settle=0.3, **FAST)
    data = {name: os.urandom(10_000 + i) for i, name in enumerate(["a", "b", "c/d"])}
    for rel, content in data.items():
        await write(root / rel, content)

    async with TransferEngine(**engine_kwargs) as engine:
        first = Session(engine, config, key)
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run)
            await first.wait_for(lambda: first.paths("uploaded") == sorted(data))
            first.stop.set()

        second = Session(engine, config, key)
        async with anyio.create_task_group() as tg:
            tg.start_soon(second.run)
            await second.wait_for(lambda: second.paths("skipped") == sorted(data))
            await anyio.sleep(1.0)  # several polls, well past the settle time
            assert second.paths("uploaded") == []
            new_b = os.urandom(len(data["b"]))  # same size: only the mtime tells
            await write(root / "b", new_b)
            await second.wait_for(lambda: second.paths("uploaded") == ["b"])
            await anyio.sleep(1.0)
            second.stop.set()

    assert second.paths("uploaded") == ["b"]
    assert second.paths("skipped") == sorted(data)  # reported once, not on every poll
    assert await object_keys(admin, bucket) == sorted(f"p/{rel}" for rel in data)
    assert await object_bytes(admin, bucket, "p/b", key) == new_b
    assert await object_bytes(admin, bucket, "p/a", key) == data["a"]

    # The state file records what was sent and under which key, but holds no key.
    state = await WatchState.open(root / ".ssec-transfer-watch.sqlite")
    try:
        records = await state.records(bucket)
    finally:
        await state.aclose()
    assert sorted(records) == sorted(f"p/{rel}" for rel in data)
    assert {r.key_fingerprint for r in records.values()} == {key.fingerprint}
    raw = key.export_base64().encode()
    for f in root.glob(".ssec-transfer-watch.sqlite*"):
        assert raw not in f.read_bytes()


async def test_delete_only_after_verified_upload(
    tmp_path: Path, bucket: str, admin: Any, engine_kwargs: dict[str, str]
) -> None:
    key = SSECustomerKey.generate()
    root = tmp_path / "in"
    root.mkdir()
    config = WatchConfig(
        directory=root, bucket=bucket, settle=0.6, on_success="delete", max_files=2, **FAST
    )
    data = {f"f{i}.bin": os.urandom(50_000 * (i + 1)) for i in range(4)}
    data["slow.bin"] = os.urandom(1 * MiB)
    gone_while_on_server: dict[str, bool] = {}

    async def check_deletions() -> None:
        """Whenever a local file disappears, its object must already be complete."""
        while len(gone_while_on_server) < len(data):
            for rel in data:
                if rel not in gone_while_on_server and not (root / rel).exists():
                    body = await object_bytes(admin, bucket, rel, key)
                    gone_while_on_server[rel] = body == data[rel]
            await anyio.sleep(0.02)

    async with TransferEngine(**engine_kwargs) as engine:
        session = Session(engine, config, key)
        async with anyio.create_task_group() as tg:
            for rel, content in data.items():
                await write(root / rel, b"" if rel == "slow.bin" else content)
            tg.start_soon(session.run)
            tg.start_soon(write_slowly, root / "slow.bin", data["slow.bin"])
            with anyio.fail_after(60):
                await check_deletions()
            session.stop.set()

    assert gone_while_on_server == dict.fromkeys(data, True)
    assert session.paths("uploaded") == sorted(data)
    assert [p.name for p in root.iterdir() if not p.name.startswith(".")] == []


async def test_files_sent_earlier_are_verified_then_deleted_without_resending(
    tmp_path: Path, bucket: str, admin: Any, engine_kwargs: dict[str, str]
) -> None:
    """A run that ended between upload and delete (here: an earlier run with keep)."""
    key = SSECustomerKey.generate()
    root = tmp_path / "in"
    root.mkdir()
    data = {"a.bin": os.urandom(1000), "b/c.bin": os.urandom(2000)}
    for rel, content in data.items():
        await write(root / rel, content)
    keep = WatchConfig(directory=root, bucket=bucket, settle=0.2, **FAST)
    async with TransferEngine(**engine_kwargs) as engine:
        first = Session(engine, keep, key)
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run)
            await first.wait_for(lambda: first.paths("uploaded") == sorted(data))
            first.stop.set()
        later = Session(engine, replace(keep, on_success="delete"), key)
        async with anyio.create_task_group() as tg:
            tg.start_soon(later.run)
            await later.wait_for(lambda: later.paths("skipped") == sorted(data))
            later.stop.set()
    assert later.paths("uploaded") == []
    assert not (root / "a.bin").exists()
    assert not (root / "b/c.bin").exists()
    for rel, content in data.items():
        assert await object_bytes(admin, bucket, rel, key) == content


class FlakyEngine(TransferEngine):
    """Fails the first upload of `flaky.bin`, as a dropped connection would."""

    failed_once = False

    async def upload(self, source: Any, bucket: str, key: str, **kwargs: Any) -> TransferResult:
        if key.endswith("flaky.bin") and not self.failed_once:
            self.failed_once = True
            raise TransferFailedError("injected: connection reset")
        return await super().upload(source, bucket, key, **kwargs)


async def test_failed_upload_is_reported_and_retried_later(
    tmp_path: Path, bucket: str, admin: Any, engine_kwargs: dict[str, str]
) -> None:
    key = SSECustomerKey.generate()
    root = tmp_path / "in"
    root.mkdir()
    config = WatchConfig(directory=root, bucket=bucket, settle=0.2, **FAST)
    data = {"flaky.bin": os.urandom(1234), "ok.bin": os.urandom(4321)}
    for rel, content in data.items():
        await write(root / rel, content)
    async with FlakyEngine(**engine_kwargs) as engine:
        session = Session(engine, config, key)
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.run)
            await session.wait_for(lambda: session.paths("uploaded") == sorted(data))
            session.stop.set()

    assert session.paths("failed") == ["flaky.bin"]
    failed = next(e for _, e in session.events if e.status == "failed")
    assert failed.error is not None
    assert "connection reset" in failed.error
    retry_delay = session.when("flaky.bin") - session.when("flaky.bin", "failed")
    assert retry_delay >= config.retry_interval
    assert session.when("ok.bin") < session.when("flaky.bin")  # the others did not wait
    for rel, content in data.items():
        assert await object_bytes(admin, bucket, rel, key) == content
    assert session.summary is not None
    assert (session.summary.uploaded, session.summary.failed) == (2, 1)
    assert session.summary.failing == []


async def test_paths_that_cannot_be_uploaded_are_reported_once_with_their_reason(
    tmp_path: Path,
    bucket: str,
    admin: Any,
    engine_kwargs: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = SSECustomerKey.generate()
    root, other = tmp_path / "in", tmp_path / "other"
    other.mkdir()
    config = WatchConfig(
        directory=root, bucket=bucket, settle=0.2, rules=(("exclude", "skip/*"),), **FAST
    )
    await write(root / "good.bin", b"good")
    await write(root / "locked.bin", b"unreadable for now")
    await write(other / "x.bin", b"elsewhere")
    os.mkfifo(root / "pipe.bin")  # opening it would wait for a writer forever
    (root / "later.bin").symlink_to(tmp_path / "not-yet.bin")  # dangling, for now
    (root / "linked").symlink_to(other)  # a link to a folder: not followed
    (root / os.fsdecode(b"caf\xe9.bin")).write_bytes(b"latin-1 name")
    (root / "skip").mkdir()
    os.mkfifo(root / "skip" / "pipe")  # excluded on purpose: counted, not reported
    # Root reads any file, so make one unreadable where the watcher checks it.
    locked = {str(root / "locked.bin")}
    real_check = watch_module.check_source

    def check(path: Path) -> None:
        if str(path) in locked:
            raise problem("unreadable", "Permission denied")
        real_check(path)

    monkeypatch.setattr(watch_module, "check_source", check)
    expected = {
        "caf\\xe9.bin": "not-encodable",
        "later.bin": "dangling-link",
        "linked/": "symlink",
        "locked.bin": "unreadable",
        "pipe.bin": "special-file",
    }

    def reported() -> dict[str, str | None]:
        return {e.path: e.reason for _, e in session.events if e.status == "failed"}

    async with TransferEngine(**engine_kwargs) as engine:
        session = Session(engine, config, key)
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.run)
            await session.wait_for(
                lambda: session.paths("uploaded") == ["good.bin"] and reported() == expected
            )
            await anyio.sleep(1.5)  # many polls and settle periods: no report repeats
            assert len(session.paths("failed")) == len(expected)
            # Fixed, they go up like any file: the link's target appears, the file opens.
            await write(tmp_path / "not-yet.bin", b"here now")
            locked.clear()
            await session.wait_for(lambda: len(session.paths("uploaded")) == 3)
            session.stop.set()

    assert session.paths("uploaded") == ["good.bin", "later.bin", "locked.bin"]
    assert len(session.paths("failed")) == len(expected)
    events = {e.path: e for _, e in session.events if e.status == "failed"}
    assert events["pipe.bin"].error is not None
    assert events["pipe.bin"].error.startswith("special file: a FIFO (named pipe)")
    assert "not-yet.bin does not exist" in (events["later.bin"].error or "")
    assert events["caf\\xe9.bin"].object_key == "caf\\xe9.bin"  # printable, also in JSON
    assert await object_keys(admin, bucket) == ["good.bin", "later.bin", "locked.bin"]
    summary = session.summary
    assert summary is not None
    assert (summary.uploaded, summary.failed, summary.excluded) == (3, 5, 1)
    assert summary.reasons == dict.fromkeys(expected.values(), 1)
    assert summary.not_sendable == ["caf\\xe9.bin", "linked/", "pipe.bin"]  # exit code 1
    assert summary.failing == []


class SignallingEngine(TransferEngine):
    """Sets `started` once the first bytes of an upload reached the server."""

    started: anyio.Event

    async def upload(self, source: Any, bucket: str, key: str, **kwargs: Any) -> TransferResult:
        def progress(done: int, total: int) -> None:
            if done:
                self.started.set()

        return await super().upload(source, bucket, key, progress=progress, **kwargs)


@pytest.mark.parametrize("drain_timeout", [0, 60])
async def test_stop_during_a_large_upload(
    drain_timeout: float,
    tmp_path: Path,
    bucket: str,
    admin: Any,
    engine_kwargs: dict[str, str],
) -> None:
    """Drain timeout 0 aborts the multipart upload; a long one lets it finish."""
    key = SSECustomerKey.generate()
    root = tmp_path / "in"
    root.mkdir()
    data = os.urandom(40 * MiB)
    await write(root / "big.bin", data)
    config = WatchConfig(
        directory=root, bucket=bucket, settle=0, drain_timeout=drain_timeout, **FAST
    )
    engine_config = TransferConfig(part_size=5 * MiB, concurrency=1)
    async with SignallingEngine(config=engine_config, **engine_kwargs) as engine:
        engine.started = anyio.Event()
        session = Session(engine, config, key)
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(session.run)
                await engine.started.wait()
                session.stop.set()
        stats = engine.scheduler.stats()

    assert (stats.requests_in_flight, stats.bytes_reserved) == (0, 0)
    assert await multipart_uploads(admin, bucket) == []
    assert (root / "big.bin").exists()
    summary = session.summary
    assert summary is not None
    if drain_timeout:
        assert session.paths("uploaded") == ["big.bin"]
        assert await object_bytes(admin, bucket, "big.bin", key) == data
        return
    assert session.paths("uploaded") == []
    assert session.paths("failed") == ["big.bin"]
    assert (summary.cancelled, summary.failing) == (1, ["big.bin"])
    assert await object_keys(admin, bucket) == []

    # Nothing was recorded, so the next start sends it.
    async with TransferEngine(config=engine_config, **engine_kwargs) as engine:
        again = Session(engine, replace(config, drain_timeout=30), key)
        async with anyio.create_task_group() as tg:
            tg.start_soon(again.run)
            await again.wait_for(lambda: again.paths("uploaded") == ["big.bin"])
            again.stop.set()
    assert await object_bytes(admin, bucket, "big.bin", key) == data


def test_command_line_options_make_a_config(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [str(tmp_path), "s3://bkt/incoming/", "--exclude", "*", "--include", "*.nc",
         "--exclude", "tmp/*", "--forget-after", "60",
         "--settle", "0.5", "--interval", "0.2", "--marker-suffix", ".done",
         "--on-success", f"move:{tmp_path / 'done'}", "--max-files", "2",
         "--state", str(tmp_path / "s.sqlite"), "--drain-timeout", "3"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.bucket, config.prefix, config.object_key("a/b.nc")) == (
        "bkt",
        "incoming/",
        "incoming/a/b.nc",
    )
    assert (config.rules, config.marker_suffix, config.forget_after) == (
        (("exclude", "*"), ("include", "*.nc"), ("exclude", "tmp/*")),
        ".done",
        60,
    )
    assert config.default_excludes
    assert (config.on_success, config.move_to, config.verifies) == ("move", tmp_path / "done", True)
    assert (config.settle, config.interval, config.max_files, config.drain_timeout) == (
        0.5,
        0.2,
        2,
        3,
    )
    assert config.state_file == tmp_path / "s.sqlite"
    with pytest.raises(SystemExit):
        parser.parse_args([str(tmp_path), "s3://b/", "--on-success", "shred"])


def test_cli_watch_uploads_and_stops_on_sigint(
    tmp_path: Path, bucket: str, admin: Any, server_env: dict[str, str], key_file: Any
) -> None:
    key_path, key = key_file
    root = tmp_path / "in"
    root.mkdir()
    data = {"x.bin": os.urandom(2000), "y/z.bin": os.urandom(3000)}
    for rel, content in data.items():
        _write(root / rel, content)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssec_transfer", "watch", str(root), f"s3://{bucket}/cli/",
         "--key-file", str(key_path), "--interval", "0.1", "--settle", "0.3", "--json"],
        env=server_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        expected = sorted(f"cli/{rel}" for rel in data)
        while (
            sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", []))
            != expected
        ):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the watcher uploaded nothing"
            time.sleep(0.1)
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err
    events = validate_lines(out)
    uploaded = [e for e in events if e["type"] == "object" and e["status"] == "ok"]
    assert sorted(e["relative_path"] for e in uploaded) == sorted(data)
    for e in uploaded:
        assert (e["operation"], e["path"], e["destination"]) == (
            "upload", str(root / e["relative_path"]), f"s3://{bucket}/cli/{e['relative_path']}",
        )  # fmt: skip
        assert (e["key_fingerprint"], e["exit_code"]) == (key.fingerprint, 0)
    if proc.returncode == 0:  # drained: the summary line came last
        assert (events[-1]["type"], events[-1]["ok"]) == ("summary", len(data))
    for rel, content in data.items():
        body = admin.get_object(Bucket=bucket, Key=f"cli/{rel}", **sse_params(key))["Body"]
        assert body.read() == content


def test_watch_status_of_a_running_watcher(
    tmp_path: Path, bucket: str, server_env: dict[str, str], key_file: Any
) -> None:
    """`watch --status` reads the state of a watcher that runs: what was sent, what waits."""
    key_path, _ = key_file
    root = tmp_path / "in"
    root.mkdir()
    _write(root / "sent.bin", os.urandom(2000))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssec_transfer", "watch", str(root), f"s3://{bucket}/st/",
         "--key-file", str(key_path), "--interval", "0.1", "--settle", "0.3",
         "--marker-suffix", ".done", "--json"],
        env=server_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    status_cmd = [sys.executable, "-m", "ssec_transfer", "watch", "--status", str(root), "--json"]
    try:
        _write(root / "sent.bin.done", b"")
        _write(root / "waiting.bin", b"no marker yet")
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            done = subprocess.run(status_cmd, env=server_env, capture_output=True, text=True)
            if done.returncode == 0 and validate_lines(done.stdout)[-1]["uploaded"] == 1:
                break
            assert time.monotonic() < deadline, done.stderr
            time.sleep(0.2)
        report = validate_lines(done.stdout)[-1]
        human = subprocess.run(status_cmd[:-1], env=server_env, capture_output=True, text=True)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=60)
    assert (report["command"], report["exit_code"], report["running"]) == ("watch-status", 0, True)
    assert (report["target"], report["remembered"]) == (f"s3://{bucket}/st/", 1)
    assert report["last_upload_ago"] is not None
    assert report["last_upload_ago"] < 60
    assert [p["path"] for p in report["paths"]["settling"]] == ["waiting.bin"]
    assert (report["pending"], report["failed"]) == (0, 0)
    assert human.returncode == 0
    assert "settling (still being written" in human.stdout
    assert "watcher: running" in human.stdout
