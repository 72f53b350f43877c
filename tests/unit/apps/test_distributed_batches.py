"""How a distributed run is cut into batches: every object exactly once, caps respected,
loads balanced -- for any sizes (`apps.distributed_batches`)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ssec_transfer.apps.distributed_batches import PER_FILE_WEIGHT, batch_count, plan_batches

MiB = 1024 * 1024
sizes_st = st.lists(st.one_of(st.none(), st.integers(0, 300 * MiB)), max_size=200)


def _weight(sizes: list[int | None], group: list[int]) -> int:
    return sum((sizes[i] or 0) + PER_FILE_WEIGHT for i in group)


@settings(max_examples=300, deadline=None)
@given(sizes_st, st.integers(1, 40), st.integers(1, 500 * MiB), st.integers(1, 50))
def test_every_object_lands_in_exactly_one_batch_within_the_caps(
    sizes: list[int | None], batches: int, max_bytes: int, max_files: int
) -> None:
    groups = plan_batches(sizes, batches, max_batch_bytes=max_bytes, max_batch_files=max_files)
    assert sorted(i for g in groups for i in g) == list(range(len(sizes)))
    assert all(g and g == sorted(g) for g in groups)
    assert len(groups) >= min(batches, len(sizes))
    assert all(len(g) <= max_files for g in groups)
    # Only an object larger than the cap on its own may exceed it.
    assert all(sum(sizes[i] or 0 for i in g) <= max_bytes for g in groups if len(g) > 1)
    loads = [_weight(sizes, g) for g in groups]
    assert loads == sorted(loads, reverse=True)  # the long batches start first


@settings(max_examples=300, deadline=None)
@given(sizes_st.filter(bool), st.integers(1, 40))
def test_without_binding_caps_no_batch_outweighs_another_by_more_than_one_object(
    sizes: list[int | None], batches: int
) -> None:
    groups = plan_batches(sizes, batches, max_batch_bytes=1 << 50, max_batch_files=10**6)
    assert len(groups) == min(batches, len(sizes))
    loads = [_weight(sizes, g) for g in groups]
    heaviest = max((s or 0) + PER_FILE_WEIGHT for s in sizes)
    assert max(loads) - min(loads) <= heaviest


@given(sizes_st, st.integers(1, 64), st.integers(1, 8))
def test_a_run_aims_for_one_to_per_slot_batches_per_worker_thread(
    sizes: list[int | None], slots: int, per_slot: int
) -> None:
    assert slots <= batch_count(sizes, slots, per_slot) <= slots * per_slot
