"""SSE-C customer keys: exactly 32 bytes, loaded from files or the environment, never shown.

A key's public name is its *fingerprint*: the base64 MD5 of the raw key, which is what servers
echo back in `x-amz-server-side-encryption-customer-key-MD5`. It identifies a key without
revealing it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from ssec_transfer.core.errors import KeyFileError
from ssec_transfer.core.protected import protect
from ssec_transfer.keys import redact

log = logging.getLogger(__name__)

KEY_BYTES = 32
ALGORITHM = "AES256"


class SSECustomerKey:
    """A 256-bit SSE-C key. `repr`/`str` show only the fingerprint."""

    # __weakref__: redaction lets go of the key's forms when the key is collected.
    __slots__ = ("__weakref__", "_b64", "_raw", "fingerprint", "source")

    def __init__(self, raw: bytes, *, source: str = "memory") -> None:
        if len(raw) != KEY_BYTES:
            raise KeyFileError(
                f"an SSE-C key must be exactly {KEY_BYTES} bytes, got {len(raw)}",
                hint="generate one with `ssec-transfer keygen PATH`",
            )
        self._raw = bytes(raw)
        self._b64 = base64.b64encode(self._raw).decode("ascii")
        self.fingerprint = base64.b64encode(hashlib.md5(self._raw).digest()).decode("ascii")  # noqa: S324 - SSE-C defines the key digest as MD5
        self.source = source
        redact.install()
        redact.register_secret(self, self._raw, self._b64)

    @classmethod
    def generate(cls) -> SSECustomerKey:
        return cls(secrets.token_bytes(KEY_BYTES), source="generated")

    @classmethod
    def from_base64(cls, text: str, *, source: str = "base64 text") -> SSECustomerKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError(
                f"{source} is not valid base64",
                hint="it must hold the base64 form of 32 bytes (44 characters)",
            ) from None
        if len(raw) != KEY_BYTES:
            raise KeyFileError(
                f"{source} decodes to {len(raw)} bytes; an SSE-C key is {KEY_BYTES} bytes",
                hint="generate a key with `ssec-transfer keygen PATH`",
            )
        return cls(raw, source=source)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, option: str | None = None
    ) -> SSECustomerKey:
        """Load 32 raw bytes, or the base64 text of 32 bytes (a trailing newline is allowed).

        `option` names where the path came from (`--key-file`) in a refusal. A path that names
        nothing and looks like key material is refused without being repeated."""
        p = Path(path)
        try:
            st = p.stat()
        except OSError as exc:  # ENOENT, and ENOTDIR or ENAMETOOLONG for a key with "/"
            form = redact.key_form(os.fspath(path))
            if form is None and redact.key_tokens(os.fspath(path)):
                form = "a path component is 64 hex digits or the base64 of 32 bytes"
            if form is not None:
                raise _key_material(option or "a key file", "names no file", form) from None
            if isinstance(exc, FileNotFoundError):
                raise KeyFileError(f"key file {p} does not exist", hint="check the path") from None
            raise KeyFileError(f"cannot read key file {p}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"key file {p} is not a regular file")
        if st.st_size > 4096:
            raise KeyFileError(
                f"key file {p} holds {st.st_size} bytes; expected 32 raw bytes or 44 base64 "
                "characters"
            )
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning(
                "key file %s is readable by group or others (mode %o); restrict it with "
                "`chmod 600 %s`",
                p,
                stat.S_IMODE(st.st_mode),
                p,
            )
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {p}: {exc.strerror}") from None
        key = cls.from_bytes(data, source=f"key file {p}")
        protect(p, "the key file")
        return key

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str) -> SSECustomerKey:
        """Detect the raw or base64 form, as a key file may hold either."""
        if len(data) == KEY_BYTES:
            return cls(data, source=source)
        text = data.strip()
        if len(text) == 44:
            try:
                raw = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) == KEY_BYTES:
                return cls(raw, source=source)
        found = f"{len(data)} bytes"
        if len(data) in (KEY_BYTES + 1, KEY_BYTES + 2) and data.endswith(b"\n"):
            found += " (32 bytes and a line break: write passphrases with `echo -n`)"
        elif text and _is_base64(text):
            found += f" of base64 text that decodes to {len(base64.b64decode(text))} bytes"
        elif not data:
            found = "an empty file"
        raise KeyFileError(
            f"{source} holds {found}; expected 32 raw bytes or the base64 text of 32 bytes "
            "(44 characters)",
            hint="generate a key with `ssec-transfer keygen PATH` (or `openssl rand 32 > FILE`)",
        )

    @classmethod
    def from_env(cls, name: str, *, option: str | None = None) -> SSECustomerKey:
        """Load the base64 form from an environment variable (argv is visible to every user).

        A name that is not set is repeated in the error only when it is a valid variable name
        that does not look like key material (the key itself given instead of its name)."""
        value = os.environ.get(name)
        if value is None:
            given = option or "an environment variable name"
            form = redact.key_form(name)
            if form is not None:
                raise _key_material(given, "names no environment variable", form)
            if not name.isidentifier() or not name.isascii():
                raise KeyFileError(
                    f"the value given for {given} names no environment variable and is not a "
                    "valid variable name (letters, digits and _), so it is not repeated here "
                    "in case it is a key",
                    hint="pass the NAME of a variable that holds the base64 key, e.g. "
                    "`export SSEC_KEY=$(base64 < sse-c.key)` and --key-env SSEC_KEY",
                )
            raise KeyFileError(
                f"environment variable {name} is not set",
                hint=f"export {name} with the base64 form of a 32-byte key",
            )
        return cls.from_base64(value, source=f"environment variable {name}")

    # -- the only ways the key material leaves this object --------------------------------------

    def export_base64(self) -> str:
        """The base64 key, for the SSE-C headers (`s3.sse` builds them) and for shipping the
        key to Dask workers over TLS. Nothing else may call this."""
        return self._b64

    def write_new_file(self, path: str | os.PathLike[str]) -> None:
        """Write the raw key to a new file, mode 0600; never replace an existing file."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, self._raw)
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- never show the key -------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"SSECustomerKey(fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SSECustomerKey):
            return NotImplemented
        return secrets.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __reduce__(self) -> Any:
        raise TypeError("SSE-C keys are not picklable: load them where they are used")


ARGV_HINT = (
    "keys are never accepted on the command line, because every user of the machine can "
    "read a process's arguments (`ps`); put the key in a file (mode 0600) and pass "
    "--key-file FILE, or pass --key-env NAME with the base64 key in that variable"
)


def _is_base64(text: bytes) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _key_material(given: str, names_nothing: str, form: str) -> KeyFileError:
    """The refusal of key material typed where a key's path or variable name was expected."""
    return KeyFileError(
        f"the value given for {given} {names_nothing}, and this looks like key material "
        f"({form}), so it is not repeated here; if it is a key, consider it exposed",
        hint=ARGV_HINT,
    )
