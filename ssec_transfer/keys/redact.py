"""Keep key material out of every log record, including botocore's DEBUG wire logs.

botocore logs request parameters and canonical requests (which include the signed SSE-C
headers) at DEBUG. Rather than hoping every logger is filtered, a log-record factory rewrites
any record that would contain a registered secret before any handler sees it. The factory costs
nothing while DEBUG is off, because records are then never created.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

REDACTED = "<redacted SSE-C key>"

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register_secret(raw: bytes, b64: str) -> None:
    """Remember the textual forms a key could take in a log message."""
    forms = {b64, repr(raw)[2:-1]}
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        pass
    else:
        if text.isprintable():
            forms.add(text)
    with _lock:
        _secrets.update(f for f in forms if len(f) >= 16)
    _install()


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if not _secrets:
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
