"""Which copy paths are tried, in which order, and which ones a known endpoint skips."""

from __future__ import annotations

import pytest

from ssec_transfer.core.plan import MiB
from ssec_transfer.transfer.copy_plan import MAX_COPY_OBJECT, CopyOptions
from ssec_transfer.transfer.copy_plan import candidates as _candidates
from ssec_transfer.transfer.copy_plan import known_failure as _known_failure

OPTIONS = CopyOptions(multipart_threshold=8 * MiB)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, ["server-copy", "stream"]),  # no byte range for UploadPartCopy
        (1, ["server-copy", "server-part-copy", "stream"]),
        (8 * MiB, ["server-part-copy", "server-copy", "stream"]),  # parallel ranges first
        (MAX_COPY_OBJECT + 1, ["server-part-copy", "stream"]),  # beyond CopyObject's limit
    ],
)
def test_auto_tries_server_paths_then_streams(size: int, expected: list[str]) -> None:
    assert _candidates("auto", size, OPTIONS, "ssec->ssec", {}) == (expected, [])


def test_forced_paths() -> None:
    assert _candidates("stream", 1, OPTIONS, "ssec->ssec", {}) == (["stream"], [])
    known = {"copy_object": "501 NotImplemented"}
    server, skipped = _candidates("server", 1, OPTIONS, "ssec->ssec", known)
    assert server == ["server-copy", "server-part-copy"]  # forced: the cache is not trusted
    assert skipped == []


def test_doctor_findings_skip_paths_for_ssec_sources_only() -> None:
    ceph = {"copy_object": "501 NotImplemented", "upload_part_copy": "supported"}
    methods, skipped = _candidates("auto", 1, OPTIONS, "ssec->ssec", ceph)
    assert methods == ["server-part-copy", "stream"]
    assert skipped == ["server-copy: 501 NotImplemented (known for this endpoint)"]
    # The doctor probes SSE-C sources; a plain source may still copy on the server.
    assert _candidates("auto", 1, OPTIONS, "plain->ssec", ceph)[0][0] == "server-copy"


def test_learned_failures_are_per_shape() -> None:
    caps = {"learned:server-part-copy ssec->ssec": "400 InvalidArgument"}
    assert _known_failure(caps, "server-part-copy", "ssec->ssec") == "400 InvalidArgument"
    assert _known_failure(caps, "server-part-copy", "ssec->ssec same-key") is None
    assert _known_failure(caps, "server-copy", "ssec->ssec") is None
