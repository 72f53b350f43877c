"""Which ways of copying to try, in which order, and what this endpoint taught us about them.

Servers refuse or break server-side copies depending on the *shape* of the copy (SSE-C or
plain on each side, same key, onto itself). What one copy learns (a refusal, a wrong result)
is kept in `CopyOptions.capabilities` under that shape, so the next objects of a run skip the
doomed attempt; the doctor's findings (`copy_object`, `upload_part_copy`) seed the same dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ssec_transfer.core.checksums import ChecksumPolicy
from ssec_transfer.core.errors import (
    IntegrityError,
    KeyProblemError,
    SSECTransferError,
    TransferFailedError,
)
from ssec_transfer.core.plan import GiB, MiB
from ssec_transfer.core.retry import RetryPolicy
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.s3.errors import error_code, status_of

Via = Literal["auto", "server", "stream"]
Method = Literal["server-copy", "server-part-copy", "stream"]

MAX_COPY_OBJECT = 5 * GiB  # CopyObject's limit; larger objects need UploadPartCopy


@dataclass(frozen=True)
class CopyOptions:
    """Tuning and endpoint knowledge for copies; the engine builds one from its config."""

    part_size: int = 8 * MiB  # stream parts and UploadPartCopy ranges (grown past 10,000 parts)
    concurrency: int = 8  # part requests of one object in flight
    multipart_threshold: int = 8 * MiB  # from here: parallel part copy / multipart stream
    checksum: ChecksumPolicy = field(default_factory=lambda: ChecksumPolicy.from_mode("auto"))
    # Findings per endpoint: `capabilities.load_cached(endpoint)` (the doctor's `copy_object`,
    # `upload_part_copy`), updated in place with what each copy learns. Share one dict per
    # engine so a run of many objects pays for a refused server path once.
    capabilities: dict[str, str] | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)  # GETs whose body broke midway


def shape(source: SSECustomerKey | None, target: SSECustomerKey | None, in_place: bool) -> str:
    """`ssec->ssec`, `plain->ssec`, ... : what servers treat differently."""
    src = "ssec" if source else "plain"
    dst = "ssec" if target else "plain"
    same = " same-key" if source and target and source == target else ""
    return f"{src}->{dst}{same}{' in-place' if in_place else ''}"


def learn(caps: dict[str, str], method: Method, shape: str, why: str) -> None:
    """Remember that `method` fails for this shape on this endpoint, and how."""
    caps[f"learned:{method} {shape}"] = why


def known_failure(caps: dict[str, str], method: Method, shape: str) -> str | None:
    """Why `method` is known to fail for this shape on this endpoint, if it is."""
    learned = caps.get(f"learned:{method} {shape}")
    if learned:
        return learned
    doctor = {"server-copy": "copy_object", "server-part-copy": "upload_part_copy"}.get(method)
    if doctor and shape.startswith("ssec->"):  # the doctor probes SSE-C sources
        value = caps.get(doctor)
        if value and value != "supported":
            return value
    return None


def candidates(
    via: Via, size: int, options: CopyOptions, shape: str, caps: dict[str, str]
) -> tuple[list[Method], list[str]]:
    """Paths to try in order, and the ones skipped because the endpoint is known to fail."""
    if via == "stream":
        return ["stream"], []
    server: list[Method] = ["server-copy", "server-part-copy"]
    if size >= options.multipart_threshold:
        server.reverse()  # parallel ranges are faster for large objects
    if size > MAX_COPY_OBJECT:
        server.remove("server-copy")
    if size == 0:
        server.remove("server-part-copy")  # no byte range to copy
    if via == "server":
        return server, []  # forced: the cache is not trusted
    chosen: list[Method] = []
    skipped: list[str] = []
    for method in server:
        known = known_failure(caps, method, shape)
        if known:
            skipped.append(f"{method}: {known} (known for this endpoint)")
        else:
            chosen.append(method)
    return [*chosen, "stream"], skipped


def is_bad_result(exc: SSECTransferError) -> bool:
    """A verification failure that means the server wrote a wrong object (not a network or
    permission problem): wrong digest or size, not encrypted as asked, unreadable."""
    if isinstance(exc, IntegrityError | KeyProblemError):
        return True
    status = exc.context.status
    return isinstance(exc, TransferFailedError) and status is not None and status >= 500


def answer(exc: BaseException) -> str:
    """`501 NotImplemented`: how the server answered, for results and the capability cache."""
    status = status_of(exc)
    if status is None:
        return type(exc).__name__
    code = error_code(exc) or ""
    return f"{status} {code}" if code and code != str(status) else str(status)
