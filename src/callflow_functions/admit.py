"""Workflow task: take a slot in every pool before the call is dialled.

Raises ``NoSlotFree`` while a pool is full; the state machine's Retry asks again with jittered
backoff (:mod:`callflow.lifecycle.admission`).
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callflow.lifecycle import admission
from callflow.observability import bind_session, logger, metrics
from callflow.services import get_services


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Admit the session's next attempt; ``event`` is the workflow state."""
    bind_session(event["session_id"])
    return admission.admit(get_services(), event)
