"""One filter language: aws's ordered rules, the default excludes, the lone --include."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssec_transfer.apps.bulk import is_included, leading_include, plan_directory
from ssec_transfer.apps.sources import default_excluded
from ssec_transfer.apps.watch_config import WatchConfig
from ssec_transfer.cli.main import main
from ssec_transfer.cli.options import warn_leading_include
from ssec_transfer.core.errors import UsageError

names = st.text(st.sampled_from("abc.x-_"), min_size=1, max_size=6).filter(
    lambda n: n not in (".", "..")
)


@pytest.mark.parametrize(
    ("rel", "excluded"),
    [
        (".hidden", True),
        ("a/.git/config", True),
        (".cache/x.nc", True),
        ("x.tmp", True),
        ("sub/x.nc.PART", True),
        ("x.partial", True),
        ("x.filepart", True),
        ("x.crdownload", True),
        ("out.tmp/x.nc", True),
        ("x.nc", False),
        ("a.b/c.nc", False),
        ("tmp/x.nc", False),
        ("x.template", False),
    ],
)
def test_default_excludes(rel: str, excluded: bool) -> None:
    assert default_excluded(rel) is excluded


@given(st.lists(names, min_size=1, max_size=4), st.integers(0, 3))
def test_any_dot_component_is_excluded(parts: list[str], at: int) -> None:
    parts[at % len(parts)] = "." + parts[at % len(parts)]
    assert default_excluded("/".join(parts))


@given(st.lists(st.tuples(st.sampled_from(["include", "exclude"]), names), max_size=5), names)
def test_a_leading_include_changes_nothing(rules: list[tuple[str, str]], rel: str) -> None:
    """aws semantics: includes before the first exclude never change the outcome."""
    first = next((i for i, (kind, _) in enumerate(rules) if kind == "exclude"), len(rules))
    assert is_included(rel, rules) == is_included(rel, rules[first:])  # type: ignore[arg-type]
    assert (leading_include(rules) is not None) == (first > 0)  # type: ignore[arg-type]


def test_only_these_is_exclude_then_include() -> None:
    rules = [("exclude", "*"), ("include", "*.nc")]
    assert is_included("a/b.nc", rules)  # type: ignore[arg-type]
    assert not is_included("a/b.txt", rules)  # type: ignore[arg-type]


def test_watch_refuses_a_lone_include(tmp_path: Path) -> None:
    config = WatchConfig(directory=tmp_path, bucket="b", rules=(("include", "*.nc"),))
    with pytest.raises(UsageError) as refused:
        config.validate()
    assert refused.value.hint == "to watch only these files: --exclude '*' --include '*.nc'"
    WatchConfig(directory=tmp_path, bucket="b", rules=(("exclude", "*"), ("include", "*.nc")))
    WatchConfig(directory=tmp_path, bucket="b", rules=(("exclude", "t/*"),)).validate()


def test_watch_command_refuses_a_lone_include_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "k"
    key.write_bytes(bytes(range(32)))
    key.chmod(0o600)
    code = main(["watch", str(tmp_path), "s3://b/p/", "--key-file", str(key), "--include", "*.nc"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--include '*.nc' comes before any --exclude" in err
    assert "--exclude '*' --include '*.nc'" in err


def test_put_and_sync_warn_about_a_lone_include(caplog: pytest.LogCaptureFixture) -> None:
    import argparse

    with caplog.at_level(logging.WARNING):
        warn_leading_include(argparse.Namespace(filters=[("include", "*.nc")]), "put")
        only = [("exclude", "*"), ("include", "*.nc")]
        warn_leading_include(argparse.Namespace(filters=only), "put")
    assert len(caplog.records) == 1
    assert "--exclude '*' --include '*.nc'" in caplog.records[0].getMessage()


def test_put_recursive_skips_dot_and_partial_files_unless_told(tmp_path: Path) -> None:
    for rel in ("a.nc", "x.tmp", ".hidden", ".git/config", "sub/b.nc", "sub/c.part"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    plan = plan_directory(tmp_path, "b", "p", sse_key=None, default_excludes=True)
    assert sorted(job.key for job in plan.jobs) == ["p/a.nc", "p/sub/b.nc"]
    assert sorted(plan.excluded) == [
        (".git", "default"), (".hidden", "default"), ("sub/c.part", "default"),
        ("x.tmp", "default"),
    ]  # fmt: skip
    everything = plan_directory(tmp_path, "b", "p", sse_key=None)
    assert len(everything.jobs) == 6
