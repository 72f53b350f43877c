"""Keep key material out of every log record, including botocore's DEBUG wire logs.

botocore logs request parameters and canonical requests (which include the signed SSE-C
headers) at DEBUG. Rather than hoping every logger is filtered, a log-record factory rewrites
any record that would contain the key of a live `SSECustomerKey` before any handler sees it.
The factory costs nothing while DEBUG is off, because records are then never created.

Only keys that are still alive are held: each key registers its textual forms together with
itself, and a `weakref.finalize` on the key hands the forms back when it is collected, so a
long-running process that makes keys as it goes (a `watch` run; a bulk run resolving every
object's key, which decrypts keyring entries anew each time) does not grow it without bound.

Readers never take the lock: they use an immutable tuple that writers swap under it. A log
call can run inside a garbage collection triggered anywhere (a `__del__` that logs), even
while this thread holds the lock, so a reader that waited for it could deadlock.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import Counter, deque
from typing import Any

REDACTED = "<redacted SSE-C key>"
MIN_FORM = 16  # shorter strings would redact ordinary text, and cannot be a 32-byte key

_lock = threading.Lock()  # serialises writers of `_counts` and `_snapshot`
_counts: Counter[str] = Counter()  # form -> live keys that have it (equal keys share forms)
_snapshot: tuple[str, ...] = ()  # what readers use; replaced, never mutated
# Forms of collected keys. Finalizers only append here (deque.append is atomic and takes no
# lock), because they may run in the middle of a locked section on the same thread.
_dead: deque[tuple[str, ...]] = deque()
_installed = False


def register_secret(owner: object, raw: bytes, b64: str) -> None:
    """Redact the textual forms of `raw` in log records for as long as `owner` is alive."""
    global _snapshot
    forms = _forms(raw, b64)
    with _lock:
        _drain()
        _counts.update(forms)
        _snapshot = _ordered()
    finalizer = weakref.finalize(owner, _dead.append, forms)
    finalizer.atexit = False  # nothing to release at exit


def redact(text: str) -> str:
    """`text` with every registered form of a live key replaced by REDACTED."""
    for secret in _current():
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def registered_forms() -> int:
    """How many distinct forms are held now (for tests and diagnostics)."""
    global _snapshot
    with _lock:
        if _drain():
            _snapshot = _ordered()
        return len(_counts)


def install() -> None:
    """Install the redacting log-record factory, once per process (idempotent).

    Process-wide because `logging`'s record factory is: botocore and aiohttp create their
    records through it, and no handler or filter of ours sees every logger. `SSECustomerKey`
    calls this when a key is made, the one point every key passes through, so a library user
    who never runs the CLI is covered too. Installing again would stack factories.
    """
    global _installed
    if _installed:  # every key calls this: skip the lock once done
        return
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if not _current():
                return record
            try:
                message = record.getMessage()
            except Exception:  # a malformed record is the logger's problem, not ours
                return record
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def _forms(raw: bytes, b64: str) -> tuple[str, ...]:
    """The ways a key could appear in a log message: base64, bytes repr, printable text."""
    forms = {b64, repr(raw)[2:-1]}
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        pass
    else:
        if text.isprintable():
            forms.add(text)
    return tuple(f for f in forms if len(f) >= MIN_FORM)


def _current() -> tuple[str, ...]:
    """The forms to redact, without waiting for the lock (see the module docstring). Forms of
    collected keys are dropped here when the lock is free, else by the next writer."""
    global _snapshot
    if _dead and _lock.acquire(blocking=False):
        try:
            if _drain():
                _snapshot = _ordered()
        finally:
            _lock.release()
    return _snapshot


def _drain() -> bool:
    """Forget the forms of collected keys. Call with the lock held; True if any went."""
    drained = False
    while _dead:  # only writers pop, under the lock; finalizers only append
        forms = _dead.popleft()
        _counts.subtract(forms)
        for form in forms:
            if _counts[form] <= 0:
                del _counts[form]
        drained = True
    return drained


def _ordered() -> tuple[str, ...]:
    """Longest first, so a shorter form never cuts into a longer one. Call with the lock."""
    return tuple(sorted(_counts, key=len, reverse=True))
