"""A tqdm progress bar in bytes on stderr, fed by the engine's progress callbacks."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, Self

from tqdm import tqdm


def _byte_bar(description: str, total: int | None, *, enabled: bool) -> tqdm[Any]:
    """A bar counting bytes in KiB/MiB/GiB on stderr, as wide as the terminal, left on screen
    when done: the look every progress display of the CLI shares."""
    return tqdm(
        desc=description,
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        leave=True,
    )


class ProgressBar:
    """Callable as `(bytes_done, total)`; the total may only be known after a HEAD."""

    def __init__(self, description: str, *, enabled: bool) -> None:
        self._bar = _byte_bar(description, None, enabled=enabled)

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
        self._bar = _byte_bar("transfer", total_bytes, enabled=enabled)
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
