"""What `watch` is told: the folder, the target and when a file counts as complete.

Kept apart from `apps.watch` (anyio, the engine, SQLite) so the command line can show the
defaults without importing them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ssec_transfer.core.errors import UsageError

DEFAULT_STATE_NAME = ".ssec-transfer-watch.sqlite"
DEFAULT_FORGET_AFTER = 30 * 86400.0  # seconds a gone file's record is kept (30 days)
# ("include" | "exclude", glob) in the order given, as `bulk.FilterRule` (not imported: light)
Rule = tuple[str, str]

OnSuccess = Literal["keep", "delete", "move"]


@dataclass(frozen=True)
class WatchConfig:
    """What to watch, where to send it, and when a file counts as complete."""

    directory: Path
    bucket: str
    prefix: str = ""
    # --include/--exclude in order, aws's rules on the relative posix path (`bulk.is_included`)
    rules: tuple[Rule, ...] = ()
    default_excludes: bool = True  # skip dot files and partial files (`sources.default_excluded`)
    interval: float = 1.0  # seconds between polls
    settle: float = 5.0  # seconds a file's size and mtime must stay unchanged
    marker_suffix: str | None = None  # e.g. ".done": NAME is complete once NAME.done exists
    max_files: int = 4  # uploads in flight
    on_success: OnSuccess = "keep"
    move_to: Path | None = None  # with on_success="move"
    verify: bool | None = None  # HEAD after upload; None: only before a delete or move
    state_path: Path | None = None  # default DIR/.ssec-transfer-watch.sqlite
    retry_interval: float = 30.0  # first retry of a failed file; doubles on each failure
    drain_timeout: float = 30.0  # seconds in-flight uploads may finish after `stop`
    # A file gone from the folder (deleted, moved, sent with --on-success delete/move) keeps
    # its record this long: a copy of it that reappears meanwhile is not sent again.
    forget_after: float = DEFAULT_FORGET_AFTER

    @property
    def state_file(self) -> Path:
        return self.state_path or self.directory / DEFAULT_STATE_NAME

    @property
    def verifies(self) -> bool:
        return self.verify if self.verify is not None else self.on_success != "keep"

    def validate(self) -> None:
        if not self.directory.is_dir():
            raise UsageError(f"{self.directory} is not a folder", hint="watch an existing folder")
        for name, value in (
            ("interval", self.interval),
            ("settle", self.settle),
            ("retry interval", self.retry_interval),
            ("drain timeout", self.drain_timeout),
            ("forget-after time", self.forget_after),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise UsageError(f"the {name} must be a number of seconds >= 0")
        self.refuse_leading_include()
        if self.interval <= 0:
            raise UsageError("the poll interval must be more than 0 seconds")
        if self.max_files < 1:
            raise UsageError("--max-files must be at least 1")
        if self.marker_suffix is not None and not self.marker_suffix.strip("."):
            raise UsageError(f"--marker-suffix {self.marker_suffix!r} is empty")
        if self.on_success == "move" and self.move_to is None:
            raise UsageError("--on-success move needs a folder: move:DIR")
        if self.on_success != "keep" and self.verify is False:
            raise UsageError(
                f"--on-success {self.on_success} with --no-verify would remove local files "
                "that were never confirmed on the server",
                hint="drop --no-verify (one HEAD per file), or keep the local files",
            )

    def refuse_leading_include(self) -> None:
        """An --include before any --exclude: refused, not silently widened.

        Earlier, `watch --include '*.nc'` meant "only these"; in the ordered rules that
        `put` and `sync` share it changes nothing, so every file would be sent, and with
        --on-success delete, deleted. The rules that say "only these" are in the hint."""
        for kind, pattern in self.rules:
            if kind == "exclude":
                return
            raise UsageError(
                f"--include '{pattern}' comes before any --exclude: in the ordered rules "
                "(as put --recursive and sync apply them) it would leave every file included, "
                "not only those",
                hint=f"to watch only these files: --exclude '*' --include '{pattern}'",
            )

    def object_key(self, rel: str) -> str:
        """PREFIX + relative posix path, as `aws s3 cp --recursive` maps them."""
        if not self.prefix or self.prefix.endswith("/"):
            return self.prefix + rel
        return f"{self.prefix}/{rel}"
