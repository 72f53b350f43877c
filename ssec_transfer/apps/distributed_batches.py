"""Cutting a distributed run into batches: which objects go to which Dask task.

Pure arithmetic on sizes, kept apart from Dask and the engine so it can be reasoned about
(and property-tested) on its own. Every bulk command that runs on Dask -- put, get, cp, rotate,
sync -- cuts its listing here: a batch is one task, one S3 client start on a worker, and the
unit that is run again elsewhere when a worker dies.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

MiB = 1024 * 1024
GiB = 1024 * MiB
MAX_BATCH_BYTES = 4 * GiB  # a lost batch costs at most this much sent again
MAX_BATCH_FILES = 2000  # and at most this many objects to look at again
PER_FILE_WEIGHT = 256 * 1024  # a request's worth of time, so many small files spread too
_MIN_BATCH_WEIGHT = 64 * MiB  # below this a batch's start-up cost (an S3 client) dominates


def batch_count(sizes: Sequence[int | None], slots: int, per_slot: int) -> int:
    """How many batches to aim for: `per_slot` per worker thread for big runs, but no
    batch lighter than 64 MiB (or 256 small files) unless every thread needs one."""
    weight = sum((s or 0) + PER_FILE_WEIGHT for s in sizes)
    return max(slots, min(slots * per_slot, math.ceil(weight / _MIN_BATCH_WEIGHT)))


def plan_batches(
    sizes: Sequence[int | None],
    batches: int,
    *,
    max_batch_bytes: int = MAX_BATCH_BYTES,
    max_batch_files: int = MAX_BATCH_FILES,
) -> list[list[int]]:
    """Split job indices into size-balanced batches: largest first, each to the lightest
    batch that still has room (LPT). At least `batches` batches (fewer only with fewer jobs),
    more where `max_batch_bytes` or `max_batch_files` demand it; a file larger than
    `max_batch_bytes` gets a batch of its own. Indices keep their order inside a batch;
    batches come heaviest first, so the long ones start first."""
    if not sizes:
        return []
    nbytes = [s or 0 for s in sizes]
    weights = [n + PER_FILE_WEIGHT for n in nbytes]
    wanted = max(
        batches,
        math.ceil(sum(nbytes) / max_batch_bytes),
        math.ceil(len(sizes) / max_batch_files),
    )
    count = max(1, min(len(sizes), wanted))
    members: list[list[int]] = [[] for _ in range(count)]
    loads = [0] * count
    filled = [0] * count
    heap = [(0, b) for b in range(count)]  # (weight, batch); full batches leave the heap
    for i in sorted(range(len(sizes)), key=lambda i: (-weights[i], i)):
        no_room: list[tuple[int, int]] = []
        while heap:
            load, b = heapq.heappop(heap)
            if len(members[b]) >= max_batch_files:
                continue  # full for good
            if members[b] and filled[b] + nbytes[i] > max_batch_bytes:
                no_room.append((load, b))  # a smaller file may still fit later
                continue
            break
        else:
            b = len(members)
            members.append([])
            loads.append(0)
            filled.append(0)
        members[b].append(i)
        loads[b] += weights[i]
        filled[b] += nbytes[i]
        heapq.heappush(heap, (loads[b], b))
        for entry in no_room:
            heapq.heappush(heap, entry)
    chosen = [b for b in range(len(members)) if members[b]]
    chosen.sort(key=lambda b: (-loads[b], b))
    return [sorted(members[b]) for b in chosen]
