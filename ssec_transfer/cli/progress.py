"""A tqdm progress bar in bytes on stderr, fed by the engine's progress callbacks."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Self

from tqdm import tqdm


class ProgressBar:
    """Callable as `(bytes_done, total)`; the total may only be known after a HEAD."""

    def __init__(self, description: str, *, enabled: bool) -> None:
        self._bar = tqdm(
            desc=description,
            total=None,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            disable=not enabled,
            dynamic_ncols=True,
            leave=True,
        )

    def __call__(self, done: int, total: int) -> None:
        if self._bar.total != total:
            self._bar.total = total
            self._bar.refresh()
        if done:
            self._bar.update(done)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.close()


class BulkProgress:
    """One display for a whole run: total bytes, files done of total, current rate."""

    def __init__(self, files: int, total_bytes: int, *, enabled: bool) -> None:
        self.files = files
        self.done = 0
        self.failed = 0
        self._bar = tqdm(
            desc="transfer",
            total=total_bytes,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            disable=not enabled,
            dynamic_ncols=True,
        )
        self._show()

    def _show(self) -> None:
        text = f"files {self.done}/{self.files}"
        if self.failed:
            text += f", {self.failed} failed"
        self._bar.set_postfix_str(text, refresh=False)

    def add_bytes(self, n: int) -> None:
        self._bar.update(n)

    def file_done(self, *, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        self._show()
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()
