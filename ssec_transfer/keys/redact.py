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

Key material typed where it does not belong (an option that names a key, a stray argument) is
not a loaded key, so nothing registered it: `key_form` recognises it by its shape, and
`redact_key_material` keeps it out of any text an error is about to print.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

REDACTED = "<redacted SSE-C key>"
KEY_MATERIAL = "<not repeated: looks like key material>"
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


# -- key material by its shape ----------------------------------------------------------------

_HEX_KEY = re.compile(r"[0-9A-Fa-f]{64}")
# 43 characters carry 258 bits, so 43 (unpadded) or 43 and one "=" always decode to 32 bytes.
_BASE64_KEY = re.compile(r"[A-Za-z0-9+/]{43}=?|[A-Za-z0-9_-]{43}=?")
_RUN = re.compile(r"[A-Za-z0-9+/_-]+=*")  # a maximal run of base64/hex characters, padding
_LONGEST = 64


def key_form(text: str, *, raw: bool = True) -> str | None:
    """What kind of SSE-C key material `text` looks like, or None.

    64 hex digits; the base64 of 32 bytes, standard or URL-safe alphabet, padded or not, with
    both upper- and lower-case letters (all but fewer than one in 10^9 keys have both;
    names such as MY_VERY_LONG_VARIABLE_NAME_1234 stay names); or, unless `raw` is False,
    exactly 32 bytes of text: the raw passphrase form that key files may hold."""
    value = text.strip()
    if _HEX_KEY.fullmatch(value):
        return "64 hex digits"
    if _self_evident_base64(value):
        return "the base64 of 32 bytes"
    if raw and len(value.encode("utf-8", "surrogateescape")) == 32:
        return "32 characters, like a passphrase key"
    return None


def looks_like_key(text: str) -> bool:
    return key_form(text) is not None


def redact_key_material(text: str, values: Iterable[str] = (), *, scan: bool = True) -> str:
    """`text` with key material replaced by KEY_MATERIAL: every string in `values` (what the
    user typed that looks like a key, which only the caller knows: the 32-character form
    cannot be told from other text) and, with `scan`, every `key_tokens` of the text."""
    found = {v.strip() for v in values if v.strip()}
    if scan:
        found.update(key_tokens(text))
    for secret in sorted(found, key=len, reverse=True):
        for form in (secret, repr(secret)[1:-1]):  # argparse quotes some values with repr
            text = text.replace(form, KEY_MATERIAL)
    return text


def key_tokens(text: str) -> set[str]:
    """The hex and base64 keys in free text, alone or as path components. A standard base64
    key may hold "/", so a run such as `dir/KEY` is tried whole and as every slice between its
    slashes. The 32-character form is not looked for: any text may have 32 characters."""
    found: set[str] = set()
    for run in _RUN.findall(text):
        parts = run.split("/")
        for i in range(len(parts)):
            for j in range(i + 1, len(parts) + 1):
                candidate = "/".join(parts[i:j])
                if len(candidate) > _LONGEST:
                    break
                if _HEX_KEY.fullmatch(candidate) or _self_evident_base64(candidate):
                    found.add(candidate)
    return found


def _self_evident_base64(value: str) -> bool:
    return bool(_BASE64_KEY.fullmatch(value)) and value.lower() != value != value.upper()
