"""Workflow task: write the results to the CRM record (fields, note, logged call)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callflow.lifecycle import writeback
from callflow.observability import bind_session, logger, metrics
from callflow.services import get_services


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Write the session's results to its CRM record; ``event`` is the workflow state."""
    bind_session(event["session_id"])
    return writeback.write_back(get_services(), event["session_id"])
