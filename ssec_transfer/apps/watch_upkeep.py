"""What keeps a months-long `watch` bounded and visible: forgetting files long gone, and
writing down what `watch --status` shows (failures, settings, last poll).

Called by the watcher after each poll with what the scan found. Failures are written at every
poll that changed them (a few rows); the pass over every record, which marks the files gone
from the folder and forgets those gone longer than `forget_after`, runs at most once a minute
(`UPKEEP_EVERY`): it is O(records) in memory and writes only what changed.

Why a gone file's record is kept at all: with --on-success delete or move, every file is gone
right after its upload. If the same file (same relative path, size and mtime) is delivered
again within `forget_after`, its record still matches and it is not sent twice (it is deleted
or moved again, as a file sent by an earlier run is). After that it counts as new and is
sent again. Records of files still in the folder are never forgotten, however old.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Collection, MutableMapping
from dataclasses import replace
from typing import Any

from ssec_transfer.apps.watch_config import WatchConfig
from ssec_transfer.state.watch_state import Failure, UploadRecord, WatchState

UPKEEP_EVERY = 60.0  # seconds between passes over every record


class Upkeep:
    """One watcher's bookkeeping for `--forget-after` and `watch --status`."""

    def __init__(self, config: WatchConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock  # wall clock, seconds since the epoch (injected by tests)
        self.last_pass: float | None = None
        self.pending: dict[str, Failure] = {}  # noted since the last poll
        self.stored: set[str] | None = None  # paths in the failures table (None: not read yet)
        self.forgotten = 0  # records forgotten in this run

    def failed(self, rel: str, attempts: int, error: str, retry_in: float | None) -> None:
        """Note a failed attempt; written at the end of the next poll."""
        now = self.clock()
        retry_at = now + retry_in if retry_in is not None else None
        self.pending[rel] = Failure(rel, attempts, error, now, retry_at)

    async def after_poll(
        self,
        state: WatchState,
        present: Callable[[], Collection[str]],
        records: MutableMapping[str, UploadRecord],
        failing: Collection[str],
        *,
        per_path: Collection[MutableMapping[str, Any] | set[str]] = (),
    ) -> None:
        """Write the failures that changed; once a minute, mark the records of files gone
        from the folder, forget those gone longer than `forget_after` (dropping them from
        `records` too) and drop the `per_path` entries of paths no longer present.

        `present()` gives every relative path the scan found (sendable or not, before the
        rules: a file left out by a rule is still there); `failing` the paths whose last
        attempt failed."""
        await self._save_failures(state, failing)
        now = self.clock()
        if self.last_pass is not None and now - self.last_pass < UPKEEP_EVERY:
            return
        first = self.last_pass is None
        self.last_pass = now
        here = present()
        if not isinstance(here, set | frozenset):
            here = set(here)
        bucket = self.config.bucket
        gone = [r for r in records.values() if r.gone_since is None and r.path not in here]
        back = [r for r in records.values() if r.gone_since is not None and r.path in here]
        await state.mark_gone(bucket, [r.object_key for r in gone], now)
        await state.mark_gone(bucket, [r.object_key for r in back], None)
        for r in gone:
            records[r.object_key] = replace(r, gone_since=now)
        for r in back:
            records[r.object_key] = replace(r, gone_since=None)
        for key in await state.prune_gone(bucket, now - self.config.forget_after):
            records.pop(key, None)
            self.forgotten += 1
        for mapping in per_path:
            for rel in [rel for rel in mapping if rel not in here]:
                if isinstance(mapping, set):
                    mapping.discard(rel)
                else:
                    del mapping[rel]
        meta = {"last_poll_at": _iso(now)}
        if first:
            meta |= {"settings": json.dumps(self.settings()), "pid": str(os.getpid())}
            meta["started_at"] = meta["last_poll_at"]
        await state.set_meta(meta)

    async def _save_failures(self, state: WatchState, failing: Collection[str]) -> None:
        if self.stored is None:
            self.stored = await state.failure_paths(self.config.bucket)
        new = [f for rel, f in self.pending.items() if rel in failing]
        cleared = [rel for rel in self.stored if rel not in failing]
        self.pending.clear()
        if new or cleared:
            await state.save_failures(self.config.bucket, new, cleared)
            self.stored.difference_update(cleared)
            self.stored.update(f.path for f in new)

    def settings(self) -> dict[str, Any]:
        """What `watch --status` needs to classify the files it finds as this watcher does."""
        c = self.config
        return {
            "directory": os.path.abspath(c.directory),
            "bucket": c.bucket,
            "prefix": c.prefix,
            "rules": [list(rule) for rule in c.rules],
            "default_excludes": c.default_excludes,
            "settle": c.settle,
            "marker_suffix": c.marker_suffix,
            "on_success": c.on_success,
            "forget_after": c.forget_after,
        }


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
