"""Workflow task: normalise the phone, find the time zone, check calling hours."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callflow.lifecycle import calling
from callflow.observability import bind_session, logger, metrics
from callflow.services import get_services


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Prepare the session for calling; ``event`` is the workflow state."""
    bind_session(event["session_id"])
    return calling.prepare(get_services(), event)
