"""A tqdm progress bar in bytes on stderr, fed by the engine's progress callbacks.

tqdm is imported only for a bar that is shown: a run without one (stderr not a terminal,
--no-progress) does not load it.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from tqdm import tqdm


class _Hidden:
    """The part of tqdm's interface the displays use, for a bar that is not shown."""

    def __init__(self, total: int | None) -> None:
        self.total = total

    def update(self, n: int = 1) -> None:
        pass

    def refresh(self) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def _byte_bar(description: str, total: int | None, *, enabled: bool) -> tqdm[Any] | _Hidden:
    """A bar counting bytes in KiB/MiB/GiB on stderr, as wide as the terminal, left on screen
    when done: the look every progress display of the CLI shares."""
    if not enabled:
        return _Hidden(total)
    from tqdm import tqdm

    return tqdm(
        desc=description,
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=True,
    )


class ProgressBar:
    """Callable as `(bytes_done, total)`; the total may only be known once the server answered."""

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
