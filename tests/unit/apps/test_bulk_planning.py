"""Pure planning of bulk runs: filters, key/path mapping (manifests: test_manifest.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from ssec_transfer.apps.bulk import (
    DirectoryPlan,
    FilterRule,
    TransferJob,
    _Progress,
    _run_one,
    is_included,
    plan_directory,
    plan_directory_upload,
    plan_sources,
    safe_relative,
)
from ssec_transfer.apps.sources import (
    REASONS,
    Found,
    SourceProblemError,
    check_source,
    printable,
    problem,
)
from ssec_transfer.core.errors import UsageError
from ssec_transfer.keys.customer import SSECustomerKey


def test_filters_later_rules_win() -> None:
    rules = [("exclude", "*.tmp"), ("include", "keep/*.tmp")]
    assert is_included("a.nc", rules)
    assert not is_included("b.tmp", rules)
    assert is_included("keep/c.tmp", rules)
    assert is_included("anything", [])


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("p/a.nc", "a.nc"),
        ("p/sub/b.nc", "sub/b.nc"),
        ("p/../evil", None),
        ("p/a/../../evil", None),
        ("p/./x", None),  # would land on p/x's file
        ("p//x", None),  # the same
        ("p/a//b", None),
        ("p/a/.", None),
        ("p/dir/", None),
        ("p/", None),
    ],
)
def test_safe_relative(key: str, expected: str | None) -> None:
    assert safe_relative(key, "p/") == expected


def test_an_object_whose_path_others_need_as_a_folder_is_refused() -> None:
    """Keys `a`, `a/a` and `a/b`: `a` cannot be a file where `a/` must be a folder; it is
    refused instead of landing in `a/a` over another object."""
    from ssec_transfer.apps.bulk import TransferJob, _refuse_collisions

    planned = [
        (rel, TransferJob("download", Path("out", rel), "b", f"d/{rel}", None))
        for rel in ("a", "a/a", "a/b", "c")
    ]
    jobs = _refuse_collisions(planned)
    assert [j.key for j in jobs if j.problem is not None] == ["d/a"]
    assert "need a folder" in str(jobs[0].problem)


def test_directory_upload_maps_like_aws_cli(tmp_path: Path) -> None:
    for name in ("a.nc", "sub/b.nc", "sub/c.tmp"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    key = SSECustomerKey.generate()
    jobs = plan_directory_upload(tmp_path, "b", "pre", sse_key=key, rules=[("exclude", "*.tmp")])
    assert [j.key for j in jobs] == ["pre/a.nc", "pre/sub/b.nc"]
    assert all(j.size == 1 and j.sse_key == key for j in jobs)
    with pytest.raises(UsageError, match="not a directory"):
        plan_directory_upload(tmp_path / "a.nc", "b", "", sse_key=key)


# -- every source accounted for ------------------------------------------------------------------


def _tree(root: Path) -> None:
    """Good files, and one of each path that cannot be sent."""
    (root / "sub").mkdir(parents=True)
    (root / "real").mkdir()
    (root / "a.nc").write_bytes(b"aa")
    (root / "real" / "r.nc").write_bytes(b"rrr")
    (root / "dangling").symlink_to(root / "unmounted" / "x.nc")
    (root / "sub" / "up").symlink_to(root)  # back to a folder that contains it
    (root / "ping").symlink_to(root / "pong")
    (root / "pong").symlink_to(root / "ping")
    os.mkfifo(root / "pipe")
    (root / "linked.nc").symlink_to(root / "a.nc")
    (root / "linked-folder").symlink_to(root / "real")
    (root / os.fsdecode(b"bad\xff.nc")).write_bytes(b"b")


def _reasons(plan: DirectoryPlan) -> dict[str, str | None]:
    return {j.key: getattr(j.problem, "reason", None) for j in plan.jobs}


def test_walk_reports_each_path_that_cannot_be_sent(tmp_path: Path) -> None:
    _tree(tmp_path)
    key = SSECustomerKey.generate()
    plan = plan_directory(tmp_path, "b", "p/", sse_key=key)
    assert _reasons(plan) == {
        "p/a.nc": None,
        os.fsdecode(b"p/bad\xff.nc"): "not-encodable",
        "p/dangling": "dangling-link",
        "p/linked-folder/r.nc": None,  # links are followed, as aws does
        "p/linked.nc": None,
        "p/ping": "loop",
        "p/pipe": "special-file",
        "p/pong": "loop",
        "p/real/r.nc": None,
        "p/sub/up/": "loop",
    }
    assert plan.excluded == []
    sent = {j.key: j.size for j in plan.jobs if j.problem is None}
    assert sent == {"p/a.nc": 2, "p/linked-folder/r.nc": 3, "p/linked.nc": 2, "p/real/r.nc": 3}
    problems = {j.key: j for j in plan.jobs if j.problem is not None}
    assert "/unmounted/x.nc does not exist" in str(problems["p/dangling"].problem)
    assert "named pipe" in str(problems["p/pipe"].problem)
    assert "put - s3://BUCKET/KEY < FIFO" in str(problems["p/pipe"].problem)
    bad = problems[os.fsdecode(b"p/bad\xff.nc")]
    assert bad.source.endswith("bad\\xff.nc")  # printable, also in JSON
    assert bad.destination == "s3://b/p/bad\\xff.nc"
    assert all(getattr(j.problem, "exit_code", None) == 1 for j in problems.values())


def test_no_follow_symlinks_leaves_links_out_on_purpose(tmp_path: Path) -> None:
    _tree(tmp_path)
    plan = plan_directory(tmp_path, "b", "", sse_key=None, follow_symlinks=False)
    assert _reasons(plan) == {
        "a.nc": None,
        os.fsdecode(b"bad\xff.nc"): "not-encodable",
        "pipe": "special-file",
        "real/r.nc": None,
    }
    links = ["dangling", "linked-folder", "linked.nc", "ping", "pong", "sub/up"]
    assert plan.excluded == [(name, "symlink") for name in links]


def test_rules_apply_to_problems_and_unknown_folders_are_never_lost() -> None:
    unreadable = problem("unreadable", "cannot list the folder")
    found = [
        Found("a.nc", Path("/t/a.nc"), size=1),
        Found("gone.tmp", Path("/t/gone.tmp"), problem=problem("dangling-link", "x")),
        Found("locked/", Path("/t/locked"), problem=unreadable),
        Found("cache/", Path("/t/cache"), problem=unreadable),
        Found("l", Path("/t/l"), problem=problem("symlink", "--no-follow-symlinks")),
        Found("long.nc", Path("/t/long.nc"), size=1),
    ]
    plan = plan_sources(found, "b", "x" * 1018, sse_key=None, rules=[("exclude", "*.tmp")])
    reasons = {j.path.name: getattr(j.problem, "reason", None) for j in plan.jobs}
    # 1018 + "/" + 5 = 1024 bytes is allowed; 1018 + "/" + 7 is not
    assert reasons == {"a.nc": None, "locked": "unreadable", "cache": "unreadable",
                       "long.nc": "not-encodable"}  # fmt: skip
    assert plan.excluded == [("gone.tmp", "rule"), ("l", "symlink")]
    # A folder that cannot be listed may hold included files: left out only when the
    # rules exclude everything under it.
    rules: list[FilterRule] = [("exclude", "*"), ("include", "*.nc")]
    plan = plan_sources(found[2:4], "b", "", sse_key=None, rules=rules)
    assert [j.key for j in plan.jobs] == ["locked/", "cache/"]
    plan = plan_sources(found[2:4], "b", "", sse_key=None, rules=[("exclude", "cache/*")])
    assert [j.key for j in plan.jobs] == ["locked/"]
    assert plan.excluded == [("cache/", "rule")]


def test_unreadable_folder_is_reported_once_and_the_rest_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a.nc", "locked/x.nc", "locked/deep/y.nc", "z/z.nc"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    real_scandir = os.scandir
    locked = str(tmp_path / "locked")

    def scandir(path: Any) -> Any:  # root ignores chmod 000, so refuse here
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    plan = plan_directory(tmp_path, "b", "", sse_key=None)
    assert _reasons(plan) == {"a.nc": None, "locked/": "unreadable", "z/z.nc": None}
    message = str(plan.jobs[1].problem)
    assert message.startswith("unreadable: cannot list the folder (Permission denied)")
    monkeypatch.setattr(os, "scandir", lambda path: scandir(locked))
    with pytest.raises(UsageError, match="cannot list"):  # the root itself: nothing to do
        plan_directory(tmp_path, "b", "", sse_key=None)


def test_check_source_never_blocks_and_names_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path)
    check_source(tmp_path / "a.nc")
    check_source(tmp_path / "linked.nc")
    expected = {
        "pipe": "special-file",  # found by stat: a FIFO is never opened
        "dangling": "dangling-link",
        "ping": "loop",
        "missing.nc": "vanished",
        "real": "directory",
    }
    for name, reason in expected.items():
        with pytest.raises(SourceProblemError) as caught:
            check_source(tmp_path / name)
        assert caught.value.reason == reason, name
        assert str(caught.value).startswith(REASONS[reason] + ":")

    def refuse(*args: Any) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(SourceProblemError, match=r"^unreadable: Permission denied") as caught:
        check_source(tmp_path / "a.nc")
    assert caught.value.reason == "unreadable"


@pytest.mark.anyio
async def test_runner_fails_a_manifest_entry_that_is_a_fifo_without_opening_it(
    tmp_path: Path,
) -> None:
    os.mkfifo(tmp_path / "pipe")
    key = SSECustomerKey.generate()
    jobs = [
        TransferJob("upload", tmp_path / "pipe", "b", "k", key),
        TransferJob("upload", tmp_path / "gone.nc", "b", "k2", key),
        TransferJob("upload", tmp_path, "b", "k3", key),
    ]
    with anyio.fail_after(10):  # no engine call: each fails at its check
        outcomes = [
            await _run_one(None, job, skip_existing=True, progress=_Progress(None)) for job in jobs
        ]
    assert [o.status for o in outcomes] == ["failed"] * 3
    assert [o.to_dict()["reason"] for o in outcomes] == ["special-file", "vanished", "directory"]
    assert [o.to_dict()["exit_code"] for o in outcomes] == [1, 1, 1]


def test_reason_survives_a_rebuild_from_the_error_dict() -> None:
    """A Dask worker's error comes back as its dict: the reason comes back with it."""
    from ssec_transfer.apps.distributed import rebuild_error

    error = problem("dangling-link", "its target /x does not exist")
    rebuilt = rebuild_error(error.to_dict())
    assert isinstance(rebuilt, SourceProblemError)
    assert (rebuilt.reason, str(rebuilt)) == ("dangling-link", str(error))
    assert printable(os.fsdecode(b"a\xffb")) == "a\\xffb"
    assert printable("\ud800") == "\\ud800"
    assert printable("ünï") == "ünï"
