"""Which local paths can be uploaded, and why not: the walk of a source folder and the check of
one source, shared by `put --recursive`, `put --manifest` and `watch`.

No path is left out in silence. A path that cannot be sent comes back with a `SourceProblemError`
whose `reason` is one of `REASONS` and whose message starts with that reason in words:

- ``dangling-link``: a symbolic link whose target does not exist;
- ``loop``: a symbolic link that leads back to a folder containing it, or links that lead to
  each other;
- ``special-file``: a FIFO, socket or device (opening a FIFO would wait for a writer forever);
- ``directory``: a folder given where a file was expected (a manifest line);
- ``unreadable``: a file that cannot be opened or a folder that cannot be listed (reported
  once, as a whole);
- ``vanished``: it was listed, then it was gone;
- ``not-encodable``: its name is not valid UTF-8, or its object key would exceed 1024 bytes;
- ``symlink``: a symbolic link not followed (``--no-follow-symlinks``, or a linked folder in
  ``watch``).

Left out on purpose, not as a problem, unless the command is told otherwise
(``--no-default-excludes``): the *default excludes* of `put --recursive`, `sync` from a local
folder and `watch` (`default_excluded`): a path with a hidden component (a file or folder
whose name starts with ``.``) and a file being written under a temporary name
(`PARTIAL_SUFFIXES`, what browsers, WinSCP, curl, rsync and most producers write before they
rename). Uploading those sends what nobody meant to publish or a file that is not complete.

Nothing here opens a file for reading data, and nothing blocks: special files are found by
`stat`, and the readability probe opens with ``O_NONBLOCK``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ssec_transfer.core.errors import ErrorContext, LocalIOError

Reason = Literal[
    "dangling-link",
    "loop",
    "special-file",
    "directory",
    "unreadable",
    "vanished",
    "not-encodable",
    "symlink",
]
# The words that start each problem's message, and the summary's breakdown.
REASONS: dict[str, str] = {
    "dangling-link": "dangling symbolic link",
    "loop": "symbolic link loop",
    "special-file": "special file",
    "directory": "a folder, not a file",
    "unreadable": "unreadable",
    "vanished": "vanished",
    "not-encodable": "not encodable as an object key",
    "symlink": "symbolic link not followed",
}
MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes
# Names of files (or folders) still being written, matched in any case: `x.nc.tmp`, `x.PART`.
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".filepart", ".crdownload")


def default_excluded(rel: str) -> bool:
    """Whether a relative posix path is one of the default excludes: any of its components
    starts with ``.`` (dot files, and everything in a dot folder) or ends with one of
    `PARTIAL_SUFFIXES` (any case). A folder's trailing ``/`` is ignored."""
    for part in rel.rstrip("/").split("/"):
        if part.startswith(".") or part.lower().endswith(PARTIAL_SUFFIXES):
            return True
    return False


class SourceProblemError(LocalIOError):
    """A local path that cannot be uploaded, with why (`reason`, one of `REASONS`)."""

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        hint: str | None = None,
        context: ErrorContext | None = None,
    ) -> None:
        super().__init__(message, hint=hint, context=context)
        # Rebuilt from its message alone (a Dask worker's error), it still knows its reason.
        self.reason = reason or next(
            (r for r, words in REASONS.items() if message.startswith(words + ":")), "unreadable"
        )

    def details(self) -> dict[str, object]:
        return {"reason": self.reason}

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), **self.details()}


def problem(reason: Reason, detail: str, *, hint: str | None = None) -> SourceProblemError:
    """The error for `reason`; its message reads "<reason in words>: <detail>"."""
    return SourceProblemError(f"{REASONS[reason]}: {detail}", reason=reason, hint=hint)


def printable(text: str | os.PathLike[str]) -> str:
    """`text` as any terminal or JSON parser takes it: bytes of a name that are not UTF-8 (kept
    by Python as surrogates) shown as \\xNN."""
    value = os.fspath(text)
    try:
        return os.fsencode(value).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that did not come from a file name
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def key_problem(key: str) -> SourceProblemError | None:
    """Why `key` cannot name an S3 object (not UTF-8, too long), or None."""
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return problem(
            "not-encodable",
            f"the name is not valid UTF-8 ({printable(key)})",
            hint="object keys are UTF-8 text; rename the file (e.g. with `convmv`)",
        )
    if size > MAX_KEY_BYTES:
        return problem(
            "not-encodable",
            f"its object key would be {size} bytes; S3 allows at most {MAX_KEY_BYTES}",
            hint="shorten the path or the prefix",
        )
    return None


class DefaultExcludes:
    """A `walk_sources` prune that leaves the default excludes out (a dot folder is not even
    entered) and remembers each path it left out, for the -v report and the excluded count."""

    def __init__(self) -> None:
        self.left_out: list[str] = []

    def __call__(self, rel: str, path: Path) -> bool:
        if default_excluded(rel):
            self.left_out.append(rel)
            return True
        return False


_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _special(mode: int) -> SourceProblemError:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    hint = "only regular files are uploaded"
    if stat.S_ISFIFO(mode):
        hint = "to upload what a program writes into it: ssec-transfer put - s3://BUCKET/KEY < FIFO"
    return problem("special-file", f"{kind}, not a regular file", hint=hint)


def _stat_problem(path: Path, exc: OSError, *, link: bool) -> SourceProblemError:
    """The problem behind an OSError from stat or open of `path` (`link`: it is a symlink)."""
    if exc.errno == errno.ELOOP:
        return problem("loop", "the symbolic links lead to each other")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        if link:
            try:
                target = printable(os.readlink(path))
            except OSError:
                target = "?"
            return problem("dangling-link", f"its target {target} does not exist")
        return problem("vanished", "no such file (any more)")
    return problem("unreadable", exc.strerror or str(exc), hint="check its permissions")


def check_source(path: Path) -> None:
    """Raise `SourceProblemError` unless `path` is a regular file this process can open.

    Never blocks: a FIFO is recognised by `stat`, and the probe opens with O_NONBLOCK (so a
    file swapped for a FIFO in between does not wait for a writer either)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _stat_problem(path, exc, link=os.path.islink(path)) from None
    if stat.S_ISDIR(st.st_mode):
        raise problem(
            "directory", "only files are uploaded", hint="upload a folder with put DIR --recursive"
        )
    if not stat.S_ISREG(st.st_mode):
        raise _special(st.st_mode)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise _stat_problem(path, exc, link=False) from None
    os.close(fd)


@dataclass(frozen=True)
class Found:
    """One path under the walked folder: a regular file to send (`problem` None), or a path
    that cannot be sent. `rel` is the posix path relative to the root; a folder's ends in /."""

    rel: str
    path: Path
    size: int = 0
    mtime_ns: int = 0
    problem: SourceProblemError | None = None


_Identity = tuple[int, int]  # (st_dev, st_ino) of a folder


def walk_sources(
    root: Path,
    *,
    follow_symlinks: bool = True,
    into_linked_folders: bool = True,
    prune: Callable[[str, Path], bool] | None = None,
) -> Iterator[Found]:
    """Every path under `root`, depth first in name order: regular files, and every other
    entry with its problem. An OSError listing `root` itself is raised to the caller.

    `follow_symlinks`: links to files and folders are followed (a loop back to a folder that
    contains the link is reported, not entered); False reports every link as ``symlink``.
    `into_linked_folders=False` follows links to files only and reports links to folders.
    `prune(rel, path)` True leaves an entry out entirely, without a word (the caller's own
    files, hidden files it was told to ignore); a pruned folder is not entered.
    """
    top = os.stat(root)
    stack: list[tuple[Path, str, frozenset[_Identity]]] = [
        (root, "", frozenset({(top.st_dev, top.st_ino)}))
    ]
    while stack:
        folder, rel, ancestors = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            if not rel:
                raise
            yield Found(
                rel, folder,
                problem=problem(
                    "unreadable",
                    f"cannot list the folder ({exc.strerror or exc}); nothing in it was sent",
                    hint="check its permissions",
                ),
            )  # fmt: skip
            continue
        folders: list[tuple[Path, str, frozenset[_Identity]]] = []
        for entry in entries:
            child, path = rel + entry.name, Path(entry.path)
            if prune is not None and prune(child, path):
                continue
            found = _classify(entry, child, path, follow_symlinks, into_linked_folders, ancestors)
            if isinstance(found, Found):
                yield found
            else:
                folders.append((path, child + "/", ancestors | {found}))
        stack.extend(reversed(folders))


def _classify(
    entry: os.DirEntry[str],
    rel: str,
    path: Path,
    follow_symlinks: bool,
    into_linked_folders: bool,
    ancestors: frozenset[_Identity],
) -> Found | _Identity:
    """A file or a problem as `Found`, or the identity of a folder to enter."""
    try:
        link = entry.is_symlink()
    except OSError:
        link = False
    if link and not follow_symlinks:
        return Found(rel, path, problem=problem("symlink", "--no-follow-symlinks"))
    try:
        st = entry.stat()  # follows a link
    except OSError as exc:
        return Found(rel, path, problem=_stat_problem(path, exc, link=link))
    if stat.S_ISDIR(st.st_mode):
        if link and not into_linked_folders:
            return Found(
                rel + "/", path,
                problem=problem(
                    "symlink", "a link to a folder, which is not watched",
                    hint="watch the folder it points to, or move the files in",
                ),
            )  # fmt: skip
        identity = (st.st_dev, st.st_ino)
        if identity in ancestors:
            target = printable(os.path.realpath(path))
            return Found(
                rel + "/", path,
                problem=problem("loop", f"it leads back to {target}, a folder that contains it"),
            )  # fmt: skip
        return identity
    if stat.S_ISREG(st.st_mode):
        return Found(rel, path, size=st.st_size, mtime_ns=st.st_mtime_ns)
    return Found(rel, path, problem=_special(st.st_mode))
