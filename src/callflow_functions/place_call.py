"""Workflow task (``.waitForTaskToken``): dial the person; the Infobip events webhook resumes.

The same function serves WatchCall, the wait for a call's outcome again after a check with
Infobip (state ``action`` is ``watch``): it stores the new token and dials nothing.

Idempotent on the task token: if Step Functions re-invokes this function after a Lambda service
error, the call that was already placed is not placed again.
"""

from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from callflow.config import get_settings
from callflow.lifecycle import calling
from callflow.observability import bind_session, logger, metrics
from callflow.services import get_services

_persistence = DynamoDBPersistenceLayer(table_name=get_settings().table_name, key_attr="pk")
_config = IdempotencyConfig(event_key_jmespath="task_token", expires_after_seconds=24 * 3600)


@metrics.log_metrics
@logger.inject_lambda_context
@idempotent(persistence_store=_persistence, config=_config)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Dial the attempt (``event`` holds ``state`` and ``task_token``); a repeated invocation
    with the same token does not dial again."""
    bind_session(event["state"]["session_id"])
    if event["state"].get("action") == calling.WATCH:
        return calling.watch_call(get_services(), event["state"], event["task_token"])
    return calling.place_call(get_services(), event["state"], event["task_token"])
