"""Small facts about AWS errors, in one place."""

from __future__ import annotations

CONDITION_FAILED = "ConditionalCheckFailedException"
"""DynamoDB's answer when a conditional write's condition does not hold."""


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    details = response.get("Error")
    return str(details.get("Code", "")) if isinstance(details, dict) else ""
