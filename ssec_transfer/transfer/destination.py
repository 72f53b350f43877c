"""Where a download's bytes land, and how they become DEST without harming what was there.

A regular DEST is replaced only by an atomic rename of a fully written, fsynced temporary file
beside it, which takes over the old file's permission bits and owner. What a rename must never
replace is refused or written into instead:

- a file this run depends on (key file, keyring, ledger, journal: `core.protected`): refused;
- a symbolic link: followed, so the file it points to is replaced and the link stays; a
  dangling link is refused;
- a character device or a FIFO (`/dev/null`, a named pipe): written into in order, like
  `get ... -` writes to stdout; a block device or a socket: refused.

Temporary files are named `.NAME.ssec-transfer-PID-NANOS` and locked (flock) while their
download runs. One that no process holds and no resume journal needs is stale: the next
download into its folder, and `ssec-transfer cleanup FOLDER`, remove it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import stat
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from ssec_transfer.core.errors import LocalIOError, UsageError
from ssec_transfer.core.protected import protected_as

log = logging.getLogger(__name__)

TEMP_MARK = ".ssec-transfer-"
# How much of DEST's name the temporary name keeps: the whole must fit NAME_MAX (255).
_NAME_KEPT = 180
_TEMP_NAME = re.compile(r"^\..*\.ssec-transfer-(\d+)-(\d+)$", re.DOTALL)


def resolve_destination(dest: str | os.PathLike[str], key: str) -> Path:
    """Like `aws s3 cp`: a folder receives the object under its base name. A DEST ending in
    `/` names a folder, created if missing (as aws does), never a file of that name."""
    text = os.fspath(dest)
    path = Path(text)
    wants_folder = text.endswith(("/", os.sep))
    try:
        is_folder = path.is_dir()
        if wants_folder and not is_folder:
            path.mkdir(parents=True)
            is_folder = True
    except OSError as exc:
        raise LocalIOError(f"cannot use destination {text}: {exc.strerror}") from None
    if not is_folder:
        return path
    name = key.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise UsageError(f"cannot derive a file name from object key {key!r}")
    return path / name


@dataclass(frozen=True)
class Destination:
    """A planned DEST: a file replaced by rename, or a stream (device, FIFO) written into."""

    path: Path
    kind: Literal["file", "stream"]
    existing: os.stat_result | None = None  # the regular file a rename will replace

    @property
    def folder(self) -> Path:
        """The absolute folder the temporary file goes to."""
        return Path(os.path.abspath(self.path.parent if str(self.path.parent) else "."))


def plan_destination(dest: str | os.PathLike[str], key: str) -> Destination:
    """Decide how the object `key` reaches `dest`, refusing what must not be replaced."""
    target = resolve_destination(dest, key)
    try:
        link = os.lstat(target)
    except FileNotFoundError:
        _refuse_protected(target)
        return Destination(target, "file")
    except OSError as exc:
        raise LocalIOError(f"cannot inspect destination {target}: {exc.strerror}") from None
    if stat.S_ISLNK(link.st_mode):
        real = Path(os.path.realpath(target))
        if not real.exists():
            raise UsageError(
                f"destination {target} is a symbolic link to {os.readlink(target)}, "
                "which does not exist",
                hint="create the link's target folder, remove the link, or give another DEST",
            )
        if real.is_dir():  # `resolve_destination` already looked through it
            raise UsageError(f"destination {target} is a link to a folder")
        target = real
    _refuse_protected(target)
    st = os.stat(target)
    if stat.S_ISREG(st.st_mode):
        if not os.access(target, os.W_OK):
            raise UsageError(
                f"destination {target} is read-only (mode {stat.S_IMODE(st.st_mode):o})",
                hint="make it writable (`chmod u+w`) or remove it if it may be replaced",
            )
        return Destination(target, "file", st)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return Destination(target, "stream")
    what = "a block device" if stat.S_ISBLK(st.st_mode) else "a socket"
    raise UsageError(
        f"destination {target} is {what}; refusing to write an object into it",
        hint="give a regular file or a folder as DEST",
    )


def _refuse_protected(target: Path) -> None:
    what = protected_as(target)
    if what is not None:
        raise UsageError(
            f"destination {target} is {what} of this run; downloading over it would destroy it",
            hint="give another DEST (the object's name is kept if DEST is a folder)",
        )


def open_stream(path: Path) -> BinaryIO:
    """Open a device or FIFO DEST for writing; a FIFO nobody reads is refused, not waited on."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise UsageError(
                f"no process is reading the FIFO {path}",
                hint="start its reader first, then run the download",
            ) from None
        raise LocalIOError(f"cannot open {path} for writing: {exc.strerror}") from None
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    return os.fdopen(fd, "wb")


def _default_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def temp_name(dest: Path) -> str:
    return f".{dest.name[:_NAME_KEPT]}{TEMP_MARK}{os.getpid()}-{time.monotonic_ns()}"


def _open_locked(path: Path) -> int | None:
    """`path` opened for writing and locked, or None if it is gone or another process has it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class TempFile:
    """A file beside DEST that becomes DEST only by an atomic rename.

    It is flock-ed while open, which tells a sweep of stale temporary files that a live
    process still writes it (process ids get reused; locks die with their process).
    """

    def __init__(self, dest: Destination, reuse: Path | None = None, size: int = 0) -> None:
        """A new temporary file of `size` bytes, or `reuse` (an interrupted download's) when
        it still exists. One call, so a small download pays one thread hop for it."""
        self.dest = dest.path
        self.existing = dest.existing
        parent = self.dest.parent if str(self.dest.parent) else Path(".")
        if not parent.is_dir():
            raise UsageError(f"destination folder {parent} does not exist")
        self.reused = False
        if reuse is not None and (fd := _open_locked(reuse)) is not None:
            self.fd, self.path, self.reused = fd, reuse, True
            return
        while True:
            self.path = parent / temp_name(self.dest)
            try:
                self.fd = os.open(
                    self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
                )
            except OSError as exc:
                raise LocalIOError(
                    f"cannot create a file in {parent}: {exc.strerror}",
                    hint="check that the destination folder is writable",
                ) from None
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(self.fd).st_nlink:
                    break
            except BlockingIOError:
                pass
            # A sweep took it for stale between its creation and the lock: make another.
            os.close(self.fd)
        try:
            self._allocate(size)
        except BaseException:
            self.discard()
            raise

    def _allocate(self, size: int) -> None:
        """Reserve the space now: a full disk fails before any byte is fetched."""
        if size <= 0:
            return
        try:
            os.posix_fallocate(self.fd, 0, size)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise LocalIOError(
                    f"not enough free space for {size} bytes in {self.path.parent}",
                    hint="free some space or choose another destination",
                ) from None
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            os.ftruncate(self.fd, size)

    def write_at(self, pieces: list[bytes], offset: int) -> None:
        """Write the pieces back to back from `offset`: one vectored write, no joining copy."""
        views = [memoryview(piece) for piece in pieces]
        while views:
            written = os.pwritev(self.fd, views, offset)
            offset += written
            while views and written >= len(views[0]):
                written -= len(views.pop(0))
            if views and written:
                views[0] = views[0][written:]

    def commit(self, mtime_ns: int | None = None) -> None:
        """fsync, then rename over DEST; `mtime_ns` is the modification time DEST takes (its
        source's, so that `sync` sees the same file on both sides)."""
        if mtime_ns is not None:
            os.utime(self.fd, ns=(time.time_ns(), mtime_ns))
        os.fsync(self.fd)
        self._take_over_ownership()
        os.close(self.fd)
        self.fd = -1
        os.replace(self.path, self.dest)
        dir_fd = os.open(self.dest.parent if str(self.dest.parent) else ".", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _take_over_ownership(self) -> None:
        """A replaced DEST keeps its permission bits (without setuid/setgid) and owner, as
        `cp` onto an existing file does; a new one gets 0666 less the umask."""
        old = self.existing
        if old is None:
            os.fchmod(self.fd, _default_file_mode())
            return
        if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
            try:
                os.fchown(self.fd, old.st_uid, old.st_gid)
            except PermissionError:
                with contextlib.suppress(PermissionError):
                    os.fchown(self.fd, -1, old.st_gid)
                log.warning(
                    "%s belonged to uid %d; the downloaded file belongs to you (only root can "
                    "give a file away)",
                    self.dest,
                    old.st_uid,
                )
        os.fchmod(self.fd, stat.S_IMODE(old.st_mode) & 0o777)

    def close(self) -> None:
        """Keep the file (for a later --resume) but release it."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _temp_files(folder: Path) -> Iterator[Path]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if TEMP_MARK in entry.name and _TEMP_NAME.match(entry.name) and _ours(entry):
            yield Path(entry.path)


def _ours(entry: os.DirEntry[str]) -> bool:
    """Made by a download of this user: a regular file, mode 0600, owned by us. A user's own
    file that happens to match the name is left alone."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    return (
        stat.S_ISREG(st.st_mode)
        and stat.S_IMODE(st.st_mode) == 0o600
        and (st.st_uid == os.geteuid())
    )


def unlink_if_unlocked(path: Path) -> bool:
    """Remove `path` unless a live process holds its lock; True if it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # a download in progress
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return True
    finally:
        os.close(fd)


def stale_temp_files(folder: Path, spare: Collection[str] = ()) -> list[Path]:
    """Temporary download files in `folder` that no live process holds, except `spare`
    (paths a resume journal still needs)."""
    kept = {os.path.abspath(p) for p in spare}
    stale = []
    for path in _temp_files(folder):
        if os.path.abspath(path) in kept:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            stale.append(path)
        except OSError:
            pass
        finally:
            os.close(fd)
    return stale


def remove_stale_temp_files(folder: Path, spare: Collection[str] = ()) -> list[Path]:
    """Remove what `stale_temp_files` finds; returns what was removed."""
    removed = [path for path in stale_temp_files(folder, spare) if unlink_if_unlocked(path)]
    for path in removed:
        log.info("removed %s, left by an interrupted download", path)
    return removed
