"""Small facts about AWS errors, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

CONDITION_FAILED = "ConditionalCheckFailedException"
"""DynamoDB's answer when a conditional write's condition does not hold."""


class SecretsUnavailable(RuntimeError):
    """Secrets Manager could not be read (unreachable, throttled, refused); ``reason`` says why
    without naming the secret's value. Nothing is cached, so the next call tries again. (Here
    rather than in :mod:`callflow.config`: the API registers its handler at import, and the
    health route must not pay for the settings module.)"""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    details = response.get("Error")
    return str(details.get("Code", "")) if isinstance(details, dict) else ""


def failure_reason(error: BaseException) -> str:
    """What went wrong with an AWS call, short enough for an answer or a log line: the operation
    and error code of a ``ClientError``, the class name of anything else (a connection failure's
    message names the endpoint, which tells a caller nothing it can use)."""
    code = error_code(error)
    if code:
        operation = getattr(error, "operation_name", "") or "request"
        return f"{operation} failed: {code}"
    return type(error).__name__


TRANSACTION_CANCELLED = "TransactionCanceledException"
"""DynamoDB's answer when a ``TransactWriteItems`` wrote nothing; each item's reason is in the
error's ``CancellationReasons``, in the order of the items."""
CANCELLED_BY_CONDITION = "ConditionalCheckFailed"
"""The cancellation reason of an item whose own condition did not hold."""


def failed_conditions(error: BaseException, items: Sequence[T]) -> tuple[T, ...] | None:
    """Of a transaction over ``items`` that ``error`` cancelled, the items whose own condition
    failed; empty when it was cancelled for another reason only (a conflict with a concurrent
    transaction on one of them: nothing was written, and the same write may succeed a moment
    later). ``None`` when ``error`` is not a cancelled transaction (the caller raises it)."""
    if error_code(error) != TRANSACTION_CANCELLED:
        return None
    reasons = getattr(error, "response", {}).get("CancellationReasons") or []
    codes = [str(reason.get("Code") or "") for reason in reasons if isinstance(reason, dict)]
    return tuple(
        item for item, code in zip(items, codes, strict=False) if code == CANCELLED_BY_CONDITION
    )
