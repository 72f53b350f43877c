"""A tqdm progress bar in bytes on stderr, fed by the engine's progress callbacks.

Sizes and rates are shown in the binary units of every other line the tool prints (tqdm's own
rate is decimal: `93.1MB/s` beside a summary's `88.8 MiB/s`), and a long name is shortened in
its middle, so percentage, sizes, rate and ETA always fit the terminal (80 columns included).
A bar ended by an error or a signal is cleared rather than drawn a second time. tqdm is
imported only for a bar that is shown: a run without one (stderr not a terminal,
--no-progress) does not load it.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ssec_transfer.core.units import human_size

if TYPE_CHECKING:
    from tqdm import tqdm

_BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {done}/{size} [{elapsed}<{remaining}, {speed}{postfix}]"
)
_MIN_BAR = 3  # columns of the bar itself that the name leaves free, at least
_MIN_NAME = 12


def shorten_middle(text: str, width: int) -> str:
    """`text` in at most `width` characters, its middle replaced by `…` when it is longer:
    the start and the end of a product name are what tell it apart."""
    if len(text) <= width:
        return text
    if width < 3:
        return text[:width]
    keep = width - 1
    return text[: (keep + 1) // 2] + "…" + text[len(text) - keep // 2 :]


class _Hidden:
    """The part of tqdm's interface the displays use, for a bar that is not shown."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.leave = True

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

    class ByteBar(tqdm):  # type: ignore[misc]  # tqdm is untyped here
        """tqdm with our units and a name that leaves room for the figures."""

        @property
        def format_dict(self) -> dict[str, Any]:
            shown: dict[str, Any] = super().format_dict
            rate = shown.get("rate")
            if not rate and shown["elapsed"]:  # no recent rate (a final redraw): the average
                rate = (shown["n"] - shown.get("initial", 0)) / shown["elapsed"]
            shown["done"] = human_size(shown["n"])
            shown["size"] = "?" if shown["total"] is None else human_size(shown["total"])
            shown["speed"] = "?" if not rate else f"{human_size(rate)}/s"
            # Everything but the name and the bar, as wide as it is now (the ETA counted as
            # wide as the elapsed time, "?" while unknown).
            clock = len(self.format_interval(shown["elapsed"]))
            figures = f": 100%|| {shown['done']}/{shown['size']} [<, {shown['speed']}]"
            postfix = len(f", {shown['postfix']}") if shown.get("postfix") else 0
            room = (shown.get("ncols") or 80) - len(figures) - 2 * clock - postfix - _MIN_BAR
            shown["prefix"] = shorten_middle(description, max(room, _MIN_NAME))
            return shown

    return ByteBar(
        desc=description,
        total=total,
        unit="B",
        bar_format=_BAR_FORMAT,
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
        if exc is not None:  # the error or the interruption line says what happened
            self._bar.leave = False
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
