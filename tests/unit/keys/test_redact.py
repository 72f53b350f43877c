"""Log redaction holds the forms of live keys only, is safe from many threads, and still keeps
every form of a live key out of log records (botocore's DEBUG messages included)."""

from __future__ import annotations

import base64
import gc
import logging
import os
import threading
from collections.abc import Iterator

import pytest

from ssec_transfer.keys import redact
from ssec_transfer.keys.customer import SSECustomerKey
from ssec_transfer.keys.redact import REDACTED


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self.guard:
            self.messages.append(record.getMessage())


@pytest.fixture
def collected() -> Iterator[tuple[logging.Logger, Collect]]:
    logger = logging.getLogger("botocore.endpoint.redaction-test")
    handler = Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, handler
    logger.removeHandler(handler)


def b64_of(key: SSECustomerKey) -> str:
    return key.export_base64()


def settled() -> int:
    gc.collect()
    return redact.registered_forms()


def test_a_dead_keys_forms_are_dropped() -> None:
    baseline = settled()
    key = SSECustomerKey(os.urandom(32))
    text = b64_of(key)
    assert redact.registered_forms() > baseline
    assert redact.redact(f"header {text}") == f"header {REDACTED}"
    del key
    assert settled() == baseline
    assert redact.redact(f"header {text}") == f"header {text}"  # nothing of it is held


def test_an_equal_key_keeps_the_forms_alive() -> None:
    raw = os.urandom(32)
    first, second = SSECustomerKey(raw), SSECustomerKey(raw)
    text = b64_of(first)
    del first
    gc.collect()
    assert redact.redact(text) == REDACTED  # `second` still needs it
    del second
    gc.collect()
    assert redact.redact(text) == text


def test_many_keys_made_and_dropped_leave_the_registry_bounded() -> None:
    baseline = settled()
    peak = 0
    for _ in range(3000):  # as a long `watch` run deriving one key per object would
        SSECustomerKey.generate()
        peak = max(peak, redact.registered_forms())
    assert peak <= baseline + 3  # one key's forms at the most
    assert settled() == baseline


def test_concurrent_registration_and_redaction(
    collected: tuple[logging.Logger, Collect],
) -> None:
    logger, handler = collected
    baseline = settled()
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def worker() -> None:
        try:
            start.wait()
            for _ in range(200):
                key = SSECustomerKey.generate()
                text = b64_of(key)
                logger.debug("headers: {'x-amz-server-side-encryption-customer-key': '%s'}", text)
                assert text not in redact.redact(f"again {text}")
                del key
        except BaseException as exc:  # reported below, on the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(handler.messages) == 8 * 200
    assert all(REDACTED in message for message in handler.messages)
    assert settled() == baseline


def test_a_live_key_is_redacted_in_botocore_style_debug_records(
    collected: tuple[logging.Logger, Collect],
) -> None:
    logger, handler = collected
    passphrase = b"a 32-byte passphrase, printable!"
    binary = bytes(range(200, 232))
    keys = [SSECustomerKey(passphrase), SSECustomerKey(binary)]
    gc.collect()  # a collection now must not drop the forms of keys still alive
    for key, raw in zip(keys, (passphrase, binary), strict=True):
        b64 = b64_of(key)
        params = {
            "url_path": "/bucket/object",
            "headers": {
                "x-amz-server-side-encryption-customer-algorithm": "AES256",
                "x-amz-server-side-encryption-customer-key": b64,
                "x-amz-server-side-encryption-customer-key-MD5": key.fingerprint,
            },
        }
        logger.debug("Making request for OperationModel(name=PutObject) with params: %s", params)
        logger.debug(
            "CanonicalRequest:\nPUT\n/bucket/object\n\n"
            "x-amz-server-side-encryption-customer-key:%s\n",
            b64,
        )
        logger.debug("raw key bytes %r", raw)
        for message in handler.messages[-3:]:
            assert REDACTED in message
            assert b64 not in message
            assert repr(raw)[2:-1] not in message
        assert key.fingerprint in handler.messages[-3]  # the public name stays readable
    assert passphrase.decode() not in "".join(handler.messages)
    assert base64.b64encode(binary).decode() not in "".join(handler.messages)


def test_install_is_idempotent() -> None:
    SSECustomerKey.generate()  # installs the factory, if no key did before
    factory = logging.getLogRecordFactory()
    redact.install()
    redact.install()
    assert logging.getLogRecordFactory() is factory
