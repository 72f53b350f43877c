"""`TransferConfig`: the tuning knobs of an engine, kept apart from the engine so the command
line can show their defaults without importing it (and aiobotocore with it)."""

from __future__ import annotations

from dataclasses import dataclass

from ssec_transfer.core.checksums import MODES
from ssec_transfer.core.errors import UsageError
from ssec_transfer.core.plan import MiB, check_part_size


@dataclass(frozen=True)
class TransferConfig:
    """Tuning knobs. Defaults come from benchmarks on a 2-core machine (see README)."""

    concurrency: int = 8  # requests in flight
    part_size: int | None = None  # explicit multipart part size; None lets the planner choose
    preferred_part_size: int = 8 * MiB  # starting point of the planner
    multipart_threshold: int = 8 * MiB  # below this, one PutObject / one GetObject
    max_memory: int = 64 * MiB  # budget for part buffers in flight, whatever the file size
    checksum: str = "auto"  # see ssec_transfer.core.checksums: auto, crc32c, crc32, sha256, none
    # Payload bytes per second, up and down together, for the whole engine (one token
    # bucket, `core.bandwidth`); None: no limit. Each Dask worker process applies its own.
    bwlimit: int | None = None

    def validate(self) -> None:
        if self.concurrency < 1:
            raise UsageError("concurrency must be at least 1")
        if self.part_size is not None:
            check_part_size(0, self.part_size)
        if self.multipart_threshold < 1:
            raise UsageError("the multipart threshold must be at least 1 byte")
        if self.max_memory < 1 * MiB:
            raise UsageError("the memory budget must be at least 1 MiB")
        if self.bwlimit is not None and self.bwlimit < 1:
            raise UsageError(
                f"bandwidth limit {self.bwlimit} is not a positive number of bytes/s",
                hint="give bytes per second, or None for no limit",
            )
        if self.checksum not in MODES:
            raise UsageError(
                f"unknown checksum {self.checksum!r}", hint=f"choose one of {', '.join(MODES)}"
            )
