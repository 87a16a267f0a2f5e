"""Typed provider errors.

The workflow's Retry policies match on the Lambda error type, which is the exception's class
name, so these names are part of the contract with ``functions/workflow.asl.json``:

- ``RetryableProviderError``: throttling (429), server errors (5xx), timeouts, connection errors.
  The state machine retries these with backoff.
- ``ProviderRejected``: the provider refused the request for good (4xx other than 429, a per-record
  error such as Zoho's ``INVALID_DATA``). Retrying will not help.
- ``ProviderAuthError``: credentials are wrong or expired beyond repair (a subclass of
  ``ProviderRejected``).
"""

from __future__ import annotations


class ProviderError(Exception):
    """A provider call failed; ``provider`` is ``zoho``, ``infobip`` or ``elevenlabs``."""

    retryable = False

    def __init__(
        self, provider: str, message: str, *, status: int | None = None, code: str = ""
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message
        self.status = status
        self.code = code


class RetryableProviderError(ProviderError):
    """Throttling, a server error, a timeout or a connection failure: worth retrying with
    backoff."""

    retryable = True


class ProviderRejected(ProviderError):
    """The provider refused the request for good; retrying will not help."""

    pass


class ProviderAuthError(ProviderRejected):
    """The credentials are wrong or expired beyond repair (HTTP 401 or 403, for one)."""

    pass


class RecordNotFound(ProviderRejected):
    """The CRM record does not exist (or the credentials cannot see it)."""


class UnknownModule(ProviderRejected):
    """The CRM has no module of that API name: the caller named the wrong one."""

    def __init__(self, provider: str, module: str, message: str, *, status: int, code: str) -> None:
        super().__init__(provider, message, status=status, code=code)
        self.module = module


def error_for_status(provider: str, status: int, message: str, code: str = "") -> ProviderError:
    """The error class an HTTP status deserves."""
    if status == 429 or status >= 500:
        return RetryableProviderError(provider, message, status=status, code=code)
    if status in (401, 403):
        return ProviderAuthError(provider, message, status=status, code=code)
    return ProviderRejected(provider, message, status=status, code=code)
