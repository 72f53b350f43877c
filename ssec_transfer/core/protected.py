"""Files a run depends on, which no download may replace.

`get s3://b/x sse-c.key --key-file sse-c.key` would otherwise overwrite the key with the
object's bytes, and with it every object the key protects. Whatever opens a key file, a
keyring, the ledger or the resume journal notes it here; a download refuses such a DEST.
Files are matched by identity (device and inode), so another name or a link to the same file
is caught too, and by resolved path for companions that may not exist yet (SQLite's -wal).
"""

from __future__ import annotations

import os

_by_identity: dict[tuple[int, int], str] = {}
_by_path: dict[str, str] = {}


def protect(path: str | os.PathLike[str], what: str) -> None:
    """Note `path` (described as `what`, e.g. "the key file") as never to be overwritten."""
    real = os.path.realpath(path)
    _by_path[real] = what
    try:
        st = os.stat(real)
    except OSError:
        return
    _by_identity[(st.st_dev, st.st_ino)] = what


def protected_as(path: str | os.PathLike[str]) -> str | None:
    """What `path` is to this run ("the key file", ...), or None if it may be written."""
    what = _by_path.get(os.path.realpath(path))
    if what is not None:
        return what
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _by_identity.get((st.st_dev, st.st_ino))
