"""A small error hierarchy, grouped by what the user must do, each with its exit code.

Every error names the operation and the object (`s3://bucket/key`) where one is involved, and
carries a hint: what to do next. Server errors are translated once, at the boundary, in
`ssec_transfer.s3.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorContext:
    operation: str | None = None
    bucket: str | None = None
    key: str | None = None
    part: int | None = None
    status: int | None = None
    request_id: str | None = None

    @property
    def url(self) -> str | None:
        if self.bucket is None:
            return None
        return f"s3://{self.bucket}/{self.key or ''}"


class SSECTransferError(Exception):
    """Base of every error the tool raises on purpose. `exit_code` is what the CLI returns."""

    exit_code = 1

    def __init__(
        self, message: str, *, hint: str | None = None, context: ErrorContext | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.context = context or ErrorContext()

    def __str__(self) -> str:
        text = self.describe()
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def describe(self) -> str:
        """One line: the request and object, what happened, the HTTP status and request id;
        without the hint (JSON gives it a field of its own, `core.report`)."""
        ctx = self.context
        where = []
        if ctx.operation:
            where.append(ctx.operation)
        if ctx.url:
            where.append(ctx.url)
        if ctx.part is not None:
            where.append(f"part {ctx.part}")
        text = (": ".join([" ".join(where), self.message])) if where else self.message
        details = []
        if ctx.status is not None:
            details.append(f"HTTP {ctx.status}")
        if ctx.request_id:
            details.append(f"request id {ctx.request_id}")
        if details:
            text += f" ({', '.join(details)})"
        return text

    def details(self) -> dict[str, object]:
        """What this kind of error adds to the command's JSON error line (`core.report`), such
        as a refused manifest's problems line by line: nothing by default."""
        return {}

    def to_dict(self) -> dict[str, object]:
        """Everything needed to raise this error again elsewhere (a Dask worker's error on the
        client, `apps.distributed.rebuild_error`); the JSON lines use `core.report`."""
        ctx = self.context
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "operation": ctx.operation,
            "bucket": ctx.bucket,
            "key": ctx.key,
            "part": ctx.part,
            "http_status": ctx.status,
            "request_id": ctx.request_id,
            "exit_code": self.exit_code,
        }


# -- exit 2: rejected before any request ------------------------------------------------------


class UsageError(SSECTransferError):
    """Bad arguments: nothing was sent."""

    exit_code = 2


class KeyFileError(UsageError):
    """The key could not be loaded (missing file, wrong length, not base64...)."""


class InsecureEndpointError(UsageError):
    """A request carrying an SSE-C key was about to go to a plain-HTTP endpoint."""


class PlanError(UsageError):
    """No part size can satisfy the S3 multipart limits for this object and these options."""


class ChecksumUnsupportedError(UsageError):
    """An explicitly requested checksum would not be verified by this server."""


class CredentialsError(UsageError):
    """No S3 credentials were found."""


# -- exit 3: key problems ---------------------------------------------------------------------


class KeyProblemError(SSECTransferError):
    """The key does not fit the object or the bucket."""

    exit_code = 3


class WrongKeyError(KeyProblemError):
    """The object is SSE-C encrypted under a different key."""


class MissingKeyError(KeyProblemError):
    """The object is SSE-C encrypted and no key was given."""


class UnexpectedKeyError(KeyProblemError):
    """A key was given for an object that is not SSE-C encrypted."""


class SSECBlockedError(KeyProblemError):
    """The bucket refuses SSE-C writes (AWS BlockedEncryptionTypes)."""


# -- not written on purpose -------------------------------------------------------------------


class ObjectExistsError(SSECTransferError):
    """`no_clobber`: the object exists, so nothing was written. The command line reports it
    as skipped (reason "exists", exit 0); the Python API raises it so a caller can tell."""


# -- exit 1: the transfer failed ---------------------------------------------------------------


class TransferFailedError(SSECTransferError):
    """Network or server failure."""


class NotFoundError(TransferFailedError):
    """Bucket, object or version does not exist."""


class NoSuchBucketError(NotFoundError):
    pass


class NoSuchObjectError(NotFoundError):
    pass


class NoSuchVersionError(NotFoundError):
    pass


class AccessDeniedError(TransferFailedError):
    """The credentials are not allowed to do this."""


class ObjectChangedError(TransferFailedError):
    """The object changed while it was being read (If-Match failed)."""


class EndpointError(TransferFailedError):
    """The endpoint could not be reached, or its TLS certificate was not trusted."""


class NoAnswerError(EndpointError):
    """The endpoint stayed silent past the timeouts on every attempt (connect, read, or the
    bound per request across its attempts)."""


class IntegrityError(TransferFailedError):
    """Data did not arrive as it was sent (short body, wrong length)."""


class LocalIOError(TransferFailedError):
    """Reading the source or writing the destination failed on this machine."""


class SourceKeptError(TransferFailedError):
    """`mv`: the new copy exists (verified, or at least written) but the source was not
    removed; both copies exist now, nothing is lost."""
