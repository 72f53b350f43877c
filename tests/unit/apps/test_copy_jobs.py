"""cp and rotate --recursive as Dask jobs: what the listing becomes, and how outcomes that
come back read as the local run's (`apps.copy_jobs`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ssec_transfer.apps.bulk import JobOutcome
from ssec_transfer.apps.copy_jobs import copy_outcome, plan_copies, plan_rotations
from ssec_transfer.core.errors import WrongKeyError
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.listing import ListedObject

OLD, NEW = SSECustomerKey.generate(), SSECustomerKey.generate()


async def _listing(*objects: ListedObject) -> AsyncIterator[ListedObject]:
    for obj in objects:
        yield obj


def _obj(key: str, size: int, version: str | None = None, marker: bool = False) -> ListedObject:
    return ListedObject("b", key, size, version, True, None, None, delete_marker=marker)


@pytest.mark.anyio
async def test_copies_keep_relative_names_and_leave_folder_markers_out() -> None:
    jobs = await plan_copies(
        _listing(_obj("l1/a.nc", 10), _obj("l1/sub/", 0), _obj("l1/sub/b.nc", 20)),
        "b", "l1", "c", "l2/", source_key=OLD, target_key=NEW,
    )  # fmt: skip
    assert [(j.source_key, j.bucket, j.key, j.size) for j in jobs] == [
        ("l1/a.nc", "c", "l2/a.nc", 10),
        ("l1/sub/b.nc", "c", "l2/sub/b.nc", 20),
    ]
    assert all(j.operation == "copy" and j.source_sse_key == OLD and j.sse_key == NEW
               for j in jobs)  # fmt: skip


@pytest.mark.anyio
async def test_a_rotation_job_holds_every_version_of_a_name() -> None:
    jobs = await plan_rotations(
        _listing(_obj("a", 5, "v2"), _obj("a", 7, "v1"), _obj("b", 0, "v3", marker=True),
                 _obj("b", 3, "v0")),
        "b", old_key=OLD, new_key=NEW,
    )  # fmt: skip
    assert [(j.key, j.size, j.operation) for j in jobs] == [("a", 12, "rotate"), ("b", 3, "rotate")]
    assert all(j.source_sse_key == OLD and j.sse_key == NEW for j in jobs)


@pytest.mark.anyio
async def test_outcomes_back_from_a_worker_read_as_a_local_runs() -> None:
    [job] = await plan_rotations(_listing(_obj("a", 5)), "b", old_key=OLD, new_key=NEW)
    skipped = copy_outcome(JobOutcome(job, "skipped", why="already-rotated")).to_dict()
    assert (skipped["status"], skipped["reason"], skipped["source"]) == (
        "skipped", "already-rotated", "s3://b/a",
    )  # fmt: skip
    error = WrongKeyError("the key does not open it")
    failed = copy_outcome(JobOutcome(job, "failed", error=error)).to_dict()
    assert (failed["status"], failed["operation"], failed["destination"]) == (
        "failed", "rotate", "s3://b/a",
    )  # fmt: skip
    [copy] = await plan_copies(_listing(_obj("x/a", 1)), "b", "x/", "c", "y/",
                               source_key=None, target_key=NEW)  # fmt: skip
    line = copy_outcome(JobOutcome(copy, "failed", error=error)).to_dict()
    assert (line["operation"], line["source"], line["destination"]) == (
        "copy", "s3://b/x/a", "s3://c/y/a",
    )  # fmt: skip
