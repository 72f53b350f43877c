"""ssec-transfer: fast S3 transfers with server-side encryption under customer keys (SSE-C).

The names below load on first use (PEP 562): `import ssec_transfer` and `ssec-transfer
--version` stay cheap, and the engine (aiobotocore, aiohttp, cryptography) is imported only
by code that touches it. `__version__` is a literal: pyproject.toml reads it from here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ssec_transfer.core.errors import (
        AccessDeniedError,
        EndpointError,
        InsecureEndpointError,
        IntegrityError,
        KeyFileError,
        KeyProblemError,
        MissingKeyError,
        NoAnswerError,
        NotFoundError,
        ObjectChangedError,
        ObjectExistsError,
        PlanError,
        SSECBlockedError,
        SSECTransferError,
        TransferFailedError,
        UnexpectedKeyError,
        UsageError,
        WrongKeyError,
    )
    from ssec_transfer.core.results import ObjectInfo, TransferResult
    from ssec_transfer.engine import TransferConfig, TransferEngine
    from ssec_transfer.keys.customer import SSECustomerKey
    from ssec_transfer.transfer.attributes import ObjectAttributes

# Each public name, and the module that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        (
            "AccessDeniedError",
            "EndpointError",
            "InsecureEndpointError",
            "IntegrityError",
            "KeyFileError",
            "KeyProblemError",
            "MissingKeyError",
            "NoAnswerError",
            "NotFoundError",
            "ObjectChangedError",
            "ObjectExistsError",
            "PlanError",
            "SSECBlockedError",
            "SSECTransferError",
            "TransferFailedError",
            "UnexpectedKeyError",
            "UsageError",
            "WrongKeyError",
        ),
        "ssec_transfer.core.errors",
    ),
    "ObjectInfo": "ssec_transfer.core.results",
    "TransferResult": "ssec_transfer.core.results",
    "TransferConfig": "ssec_transfer.engine",
    "TransferEngine": "ssec_transfer.engine",
    "SSECustomerKey": "ssec_transfer.keys.customer",
    "ObjectAttributes": "ssec_transfer.transfer.attributes",
}

__all__ = [
    "AccessDeniedError",
    "EndpointError",
    "InsecureEndpointError",
    "IntegrityError",
    "KeyFileError",
    "KeyProblemError",
    "MissingKeyError",
    "NoAnswerError",
    "NotFoundError",
    "ObjectAttributes",
    "ObjectChangedError",
    "ObjectExistsError",
    "ObjectInfo",
    "PlanError",
    "SSECBlockedError",
    "SSECTransferError",
    "SSECustomerKey",
    "TransferConfig",
    "TransferEngine",
    "TransferFailedError",
    "TransferResult",
    "UnexpectedKeyError",
    "UsageError",
    "WrongKeyError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        # Not ours: `from ssec_transfer import sync` then imports the submodule.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
