"""ssec-transfer: fast S3 transfers with server-side encryption under customer keys (SSE-C)."""

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

__version__ = "0.1.0"

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
    "ObjectChangedError",
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
