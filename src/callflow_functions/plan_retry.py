"""Workflow task: after an unanswered call or a failed step, try again or write back."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callflow.lifecycle import calling
from callflow.observability import bind_session, logger, metrics
from callflow.services import get_services


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Schedule another attempt or go on to the writeback; ``event`` is the workflow state."""
    bind_session(event["session_id"])
    return calling.plan_retry(get_services(), event)
