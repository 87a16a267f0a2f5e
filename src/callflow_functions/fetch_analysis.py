"""Workflow task: poll the conversation when the webhook did not come (raises AnalysisPending
while ElevenLabs is still processing; the state machine retries)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callflow.lifecycle import analysis
from callflow.observability import bind_session, logger, metrics
from callflow.services import get_services


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Poll the session's conversation; ``event`` is the workflow state."""
    bind_session(event["session_id"])
    return analysis.fetch_analysis(get_services(), event)
