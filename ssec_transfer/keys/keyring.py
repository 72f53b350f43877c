"""A keyring: named SSE-C keys kept encrypted at rest, so the right key is findable for any
object and a key is hard to lose by accident.

Format (JSON, mode 0600, replaced atomically): a per-keyring random salt and scrypt parameters
turn the passphrase into a root secret; HKDF splits it into an AES-GCM key and a MAC key. Each
entry stores its name, fingerprint, creation time, a random 96-bit nonce and the AES-GCM
ciphertext of the 32 raw key bytes, authenticated together with the entry's name and
fingerprint (so entries cannot be swapped or renamed). A fixed "check" value sealed with the
same key tells a wrong passphrase from a damaged file even when the keyring is empty, and an
HMAC over the whole document ("seal") detects entries removed or edited without the passphrase.
The file never holds a key in clear or in base64.

Every change re-reads the file under an exclusive lock, applies exactly one addition or
removal, and replaces the file with a higher generation number: concurrent processes cannot
lose each other's keys, and a file that went back to an older generation is refused.

The passphrase comes from SSEC_TRANSFER_KEYRING_PASSPHRASE or a terminal prompt, never argv.
Opening blocks (scrypt takes about a second by design): call it from a worker thread inside
async code, as the CLI does. This module only stores keys; finding the key of an object is
`keys.resolve`, deriving per-object keys `keys.derive`.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import fcntl
import getpass
import hashlib
import hmac
import json
import logging
import os
import re
import stat
import sys
import tempfile
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from ssec_transfer.core.errors import KeyProblemError, UsageError
from ssec_transfer.core.protected import protect
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.state.ledger import default_path as default_ledger_path

log = logging.getLogger(__name__)

PASSPHRASE_ENV = "SSEC_TRANSFER_KEYRING_PASSPHRASE"  # noqa: S105 - a variable name
FORMAT = "ssec-transfer-keyring"
VERSION = 1
# scrypt cost: 128 MiB and about a second per unlock; memory-hard so guessing is expensive.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
MIN_SCRYPT_N = 2**14  # the weakest cost a keyring may be created or opened with
MIN_PASSPHRASE = 8
NONCE_BYTES = 12
SALT_BYTES = 16
_CHECK_PLAINTEXT = b"ssec-transfer keyring passphrase check"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+:-]{0,127}")


def default_path() -> Path:
    """Beside the ledger: `$XDG_DATA_HOME/ssec-transfer/keyring.json`."""
    return default_ledger_path().parent / "keyring.json"


# -- errors -------------------------------------------------------------------------------------


class KeyringError(KeyProblemError):
    """Exit 3: the keyring cannot give the key (wrong passphrase, damaged file, no key fits)."""


class WrongPassphraseError(KeyringError):
    """The passphrase does not open this keyring."""


class KeyringUsageError(UsageError):
    """Exit 2: refused before anything changed (name taken, file exists, no passphrase...)."""


# -- passphrase ---------------------------------------------------------------------------------


def read_passphrase(*, new: bool = False) -> str:
    """From SSEC_TRANSFER_KEYRING_PASSPHRASE, else a prompt on a terminal (twice for a new
    keyring). Never from argv: every user of the machine can read it with `ps`."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        if not sys.stdin.isatty():
            raise KeyringUsageError(
                "the keyring needs its passphrase and there is no terminal to ask for it",
                hint=f"set {PASSPHRASE_ENV} in the environment (it is never accepted on the "
                "command line)",
            )
        value = getpass.getpass("new keyring passphrase: " if new else "keyring passphrase: ")
        if new and getpass.getpass("repeat the passphrase: ") != value:
            raise KeyringUsageError("the two passphrases differ; nothing was created")
    if new and len(value) < MIN_PASSPHRASE:
        raise KeyringUsageError(
            f"a keyring passphrase needs at least {MIN_PASSPHRASE} characters",
            hint="anyone who can read the keyring file can try to guess it offline",
        )
    if not value:
        raise KeyringUsageError(f"the keyring passphrase is empty ({PASSPHRASE_ENV})")
    return value


# -- the keyring ----------------------------------------------------------------------------------


class KeyInfo(NamedTuple):
    """What a listing shows: never the key."""

    name: str
    fingerprint: str
    created_at: str

    def to_dict(self) -> dict[str, str]:
        return self._asdict()


class _Secrets:
    """The AEAD and MAC keys derived from the passphrase for one keyring file."""

    def __init__(self, passphrase: str, kdf: dict[str, Any]) -> None:
        # Imported here: the primitives cost ~7 MiB of memory that transfers without a
        # keyring should not carry.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        normalized = unicodedata.normalize("NFC", passphrase).encode("utf-8")
        root = Scrypt(
            salt=_b64d(kdf["salt"]), length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]
        ).derive(normalized)
        self.aead = AESGCM(_hkdf(root, b"ssec-transfer keyring v1 aead"))
        self.mac_key = _hkdf(root, b"ssec-transfer keyring v1 seal")
        self.kdf = dict(kdf)


def _hkdf(secret: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _entry_ad(name: str, fingerprint: str) -> bytes:
    return b"ssec-transfer keyring entry v1\0" + name.encode() + b"\0" + fingerprint.encode()


def _check_ad(kdf: dict[str, Any]) -> bytes:
    return b"ssec-transfer keyring check v1\0" + str(kdf["salt"]).encode()


def _seal(secrets_: _Secrets, doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "seal"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return _b64(hmac.new(secrets_.mac_key, canonical, hashlib.sha256).digest())


class Keyring:
    """Named keys, encrypted at rest. Blocking: use from a worker thread in async code."""

    def __init__(self, path: Path, doc: dict[str, Any], secrets_: _Secrets) -> None:
        self.path = path
        self._doc = doc
        self._secrets = secrets_

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], passphrase: str, *, n: int = SCRYPT_N) -> Keyring:
        """A new, empty keyring. Refuses to replace any existing file."""
        target = Path(path)
        if n < MIN_SCRYPT_N or n & (n - 1):
            raise KeyringUsageError(f"scrypt n must be a power of two >= {MIN_SCRYPT_N}")
        if not passphrase:
            raise KeyringUsageError("the keyring passphrase is empty")
        kdf = {"name": "scrypt", "salt": _b64(os.urandom(SALT_BYTES)), "n": n, "r": SCRYPT_R,
               "p": SCRYPT_P}  # fmt: skip
        secrets_ = _Secrets(passphrase, kdf)
        nonce = os.urandom(NONCE_BYTES)
        check = secrets_.aead.encrypt(nonce, _CHECK_PLAINTEXT, _check_ad(kdf))
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "generation": 1,
            "kdf": kdf,
            "check": {"nonce": _b64(nonce), "ciphertext": _b64(check)},
            "entries": [],
        }
        doc["seal"] = _seal(secrets_, doc)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _locked(target):
            if target.exists() or target.is_symlink():
                raise KeyringUsageError(
                    f"{target} already exists; refusing to replace a keyring",
                    hint="open it with its passphrase, or choose another --keyring-file",
                )
            _write_atomic(target, doc)
        return cls(target, doc, secrets_)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], passphrase: str, *, create: bool = False
    ) -> Keyring:
        """Unlock an existing keyring (or make a new one with `create=True`)."""
        target = Path(path)
        if not target.exists():
            if create:
                return cls.create(target, passphrase)
            raise KeyringUsageError(
                f"there is no keyring at {target}",
                hint="create one with `ssec-transfer keyring generate NAME` or "
                "`ssec-transfer keyring add NAME --key-file FILE`",
            )
        doc = _read_doc(target)
        protect(target, "the keyring")
        with suppress(OSError):
            mode = target.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                log.warning(
                    "keyring %s is accessible by group or others (mode %o); restrict it with "
                    "`chmod 600 %s`",
                    target,
                    stat.S_IMODE(mode),
                    target,
                )
        secrets_ = _Secrets(passphrase, doc["kdf"])
        keyring = cls(target, doc, secrets_)
        keyring._verify(doc)
        return keyring

    def _verify(self, doc: dict[str, Any]) -> None:
        """The passphrase opens `doc` (check value) and nobody edited it without it (seal)."""
        if doc["kdf"] != self._secrets.kdf:
            raise KeyringError(
                f"{self.path} was replaced by a different keyring since it was opened",
                hint="run the command again",
            )
        from cryptography.exceptions import InvalidTag  # loaded only with a keyring in use

        check = doc["check"]
        try:
            plain = self._secrets.aead.decrypt(
                _b64d(check["nonce"]), _b64d(check["ciphertext"]), _check_ad(doc["kdf"])
            )
        except InvalidTag:
            raise WrongPassphraseError(
                f"wrong passphrase for the keyring {self.path}",
                hint=f"check {PASSPHRASE_ENV} or what you typed; nothing was changed",
            ) from None
        if plain != _CHECK_PLAINTEXT or not hmac.compare_digest(
            str(doc.get("seal", "")), _seal(self._secrets, doc)
        ):
            raise KeyringError(
                f"the keyring {self.path} was modified outside ssec-transfer (its integrity "
                "seal does not match)",
                hint="restore it from a backup; entries may have been removed or altered",
            )

    # -- reading ------------------------------------------------------------------------------

    def list(self) -> builtins.list[KeyInfo]:
        """Names, fingerprints and creation times, sorted by name."""
        infos = [KeyInfo(e["name"], e["fingerprint"], e["created_at"]) for e in self._entries()]
        return sorted(infos)

    def get(self, name: str) -> SSECustomerKey:
        for entry in self._entries():
            if entry["name"] == name:
                return self._decrypt(entry)
        raise KeyringUsageError(
            f"the keyring {self.path} has no key named {name!r}",
            hint="see `ssec-transfer keyring list`",
        )

    def by_fingerprint(self, fingerprint: str) -> SSECustomerKey | None:
        for entry in self._entries():
            if entry["fingerprint"] == fingerprint:
                return self._decrypt(entry)
        return None

    def keys(self) -> builtins.list[SSECustomerKey]:
        """Every key, newest first (the likeliest to protect recent objects)."""
        entries = sorted(self._entries(), key=lambda e: str(e["created_at"]), reverse=True)
        return [self._decrypt(e) for e in entries]

    def __len__(self) -> int:
        return len(self._entries())

    def __repr__(self) -> str:
        return f"Keyring({str(self.path)!r}, {len(self)} keys)"

    def __reduce__(self) -> Any:
        raise TypeError("an unlocked keyring is not picklable: open it where it is used")

    def _entries(self) -> builtins.list[dict[str, Any]]:
        return list(self._doc["entries"])

    def _decrypt(self, entry: dict[str, Any]) -> SSECustomerKey:
        from cryptography.exceptions import InvalidTag  # loaded only with a keyring in use

        name, fingerprint = entry["name"], entry["fingerprint"]
        try:
            raw = self._secrets.aead.decrypt(
                _b64d(entry["nonce"]), _b64d(entry["ciphertext"]), _entry_ad(name, fingerprint)
            )
        except InvalidTag:
            raise KeyringError(
                f"keyring entry {name!r} fails its integrity check",
                hint="the keyring file was modified; restore it from a backup",
            ) from None
        key = SSECustomerKey(raw, source=f"keyring entry {name}")
        if key.fingerprint != fingerprint:
            raise KeyringError(f"keyring entry {name!r} does not match its fingerprint")
        return key

    # -- changing -----------------------------------------------------------------------------

    def add(self, name: str, key: SSECustomerKey) -> KeyInfo:
        """Store `key` as `name`. Never replaces a name, never stores one key twice."""
        _check_name(name)
        nonce = os.urandom(NONCE_BYTES)
        entry = {
            "name": name,
            "fingerprint": key.fingerprint,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "nonce": _b64(nonce),
            "ciphertext": _b64(
                self._secrets.aead.encrypt(nonce, key._raw, _entry_ad(name, key.fingerprint))
            ),
        }
        self._commit(add=entry)
        return KeyInfo(name, key.fingerprint, entry["created_at"])

    def generate(self, name: str) -> SSECustomerKey:
        """A new random key, stored before it is returned (so it cannot be used unsaved)."""
        key = SSECustomerKey.generate()
        self.add(name, key)
        return key

    def export(self, name: str, path: str | os.PathLike[str]) -> KeyInfo:
        """Write the raw key to a NEW file, mode 0600; never replaces an existing file."""
        key = self.get(name)
        target = Path(path)
        try:
            key.write_new_file(target)
        except FileExistsError:
            raise KeyringUsageError(
                f"{target} already exists; refusing to overwrite it (it may hold another key)",
                hint="choose a new file name",
            ) from None
        except FileNotFoundError:
            raise KeyringUsageError(f"folder {target.parent} does not exist") from None
        return next(info for info in self.list() if info.name == name)

    def remove(self, name: str) -> KeyInfo:
        """Delete one entry. Callers check first that no object still needs it (the CLI asks
        the ledger and wants confirmation)."""
        self.get(name)  # unknown name: a clear error before taking the lock
        removed = self._commit(remove=name)
        assert removed is not None
        return removed

    def _commit(
        self, *, add: dict[str, Any] | None = None, remove: str | None = None
    ) -> KeyInfo | None:
        """Apply one change to the file as it is on disk now, under the lock: keys another
        process added meanwhile are kept, and an older file is never written back."""
        with _locked(self.path):
            disk = _read_doc(self.path)
            self._verify(disk)
            if disk["generation"] < self._doc["generation"]:
                raise KeyringError(
                    f"{self.path} is older (generation {disk['generation']}) than when it was "
                    f"opened (generation {self._doc['generation']}); refusing to change it",
                    hint="someone restored an older copy: check it before going on",
                )
            entries: builtins.list[dict[str, Any]] = list(disk["entries"])
            removed: KeyInfo | None = None
            if add is not None:
                for e in entries:
                    if e["name"] == add["name"]:
                        raise KeyringUsageError(
                            f"the keyring already holds a key named {add['name']!r} "
                            f"(fingerprint {e['fingerprint']}); refusing to replace it",
                            hint="choose another name: replacing a key can lose every object "
                            "it protects",
                        )
                    if e["fingerprint"] == add["fingerprint"]:
                        raise KeyringUsageError(
                            f"this key (fingerprint {e['fingerprint']}) is already in the "
                            f"keyring as {e['name']!r}",
                            hint="use that name",
                        )
                entries.append(add)
            if remove is not None:
                kept = [e for e in entries if e["name"] != remove]
                if len(kept) != len(entries) - 1:
                    raise KeyringUsageError(f"the keyring has no key named {remove!r}")
                gone = next(e for e in entries if e["name"] == remove)
                removed = KeyInfo(gone["name"], gone["fingerprint"], gone["created_at"])
                entries = kept
            doc = {**disk, "generation": disk["generation"] + 1, "entries": entries}
            doc.pop("seal", None)
            doc["seal"] = _seal(self._secrets, doc)
            _write_atomic(self.path, doc)
            self._doc = doc
        return removed


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise KeyringUsageError(
            f"{name!r} is not a valid key name",
            hint="use up to 128 letters, digits and . _ @ + : -, starting with a letter or digit",
        )


# -- the file -----------------------------------------------------------------------------------


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the keyring: read-modify-write by one process at a time."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write beside, fsync, rename over: a crash leaves the old file or the new, never half."""
    data = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_doc(path: Path) -> dict[str, Any]:
    """Parse and shape-check the file, so later code can trust field types."""

    def damaged(why: str) -> KeyringError:
        return KeyringError(
            f"{path} is not a usable keyring: {why}", hint="restore it from a backup"
        )

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyringUsageError(f"there is no keyring at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise damaged(f"cannot read it ({exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise damaged(f"not JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise damaged("not an ssec-transfer keyring")
    if doc.get("version") != VERSION:
        raise damaged(f"format version {doc.get('version')!r} is not supported")
    kdf, check, entries = doc.get("kdf"), doc.get("check"), doc.get("entries")
    generation = doc.get("generation")
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 1:
        raise damaged("bad generation")
    if not (
        isinstance(kdf, dict)
        and kdf.get("name") == "scrypt"
        and all(isinstance(kdf.get(k), int) and not isinstance(kdf.get(k), bool)
                for k in ("n", "r", "p"))
        and _is_b64(kdf.get("salt"))
    ):  # fmt: skip
        raise damaged("bad key-derivation parameters")
    if kdf["n"] < MIN_SCRYPT_N or kdf["n"] > 2**22 or not 1 <= kdf["r"] <= 32 or kdf["p"] != 1:
        raise damaged("key-derivation parameters out of range")
    if not (isinstance(check, dict) and _is_b64(check.get("nonce")) and _is_b64(
            check.get("ciphertext"))):  # fmt: skip
        raise damaged("bad passphrase check")
    if not isinstance(entries, list):
        raise damaged("bad entries")
    for entry in entries:
        if not (
            isinstance(entry, dict)
            and all(isinstance(entry.get(k), str) for k in ("name", "fingerprint", "created_at"))
            and _is_b64(entry.get("nonce"))
            and _is_b64(entry.get("ciphertext"))
        ):
            raise damaged("bad entry")
    return doc


def _is_b64(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True
