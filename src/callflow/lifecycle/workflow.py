"""Talking to the call workflow (Step Functions): start an execution, resume a waiting task.

A waiting task can be resumed from two places (a provider webhook and the task itself when the
data was already there), so resuming twice must be harmless: a token that was already used, or
whose task timed out, is reported as ``False`` instead of raising.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from callflow.aws import error_code
from callflow.observability import logger

_STALE_TOKEN_ERRORS = frozenset({"TaskDoesNotExist", "TaskTimedOut", "InvalidToken"})


def start(sfn: Any, state_machine_arn: str, session_id: str, payload: dict[str, Any]) -> str:
    """Start the session's execution, named after the session.

    Step Functions treats a second start with the same name and input as the same execution, so a
    retry of *this* call (the SDK's own, or ours after a lost answer) cannot start a second one.
    A retried trigger is another matter: it makes a new session id, and only the record claim in
    :func:`callflow.lifecycle.trigger.start_session` refuses it."""
    response = sfn.start_execution(
        stateMachineArn=state_machine_arn, name=session_id, input=json.dumps(payload)
    )
    return str(response["executionArn"])


def resume(sfn: Any, task_token: str, output: dict[str, Any]) -> bool:
    """Complete a waiting task with ``output``; ``False`` when there is no token or it was already
    used, timed out or is invalid (other Step Functions errors raise)."""
    if not task_token:
        return False
    try:
        sfn.send_task_success(taskToken=task_token, output=json.dumps(output))
    except ClientError as error:
        code = error_code(error)
        if code in _STALE_TOKEN_ERRORS:
            logger.info("task token already used or expired", extra={"code": code})
            return False
        raise
    return True


def error_cause(cause: Any) -> str:
    """The message inside a caught error's ``Cause``: Lambda errors carry JSON with
    ``errorMessage``, other errors plain text."""
    if not isinstance(cause, str):
        return ""
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause
    return str(parsed.get("errorMessage", cause)) if isinstance(parsed, dict) else cause
