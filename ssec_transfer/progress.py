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
