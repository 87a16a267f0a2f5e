"""Workflow task (``.waitForTaskToken``): wait for the ElevenLabs post-call webhook."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callflow.lifecycle import analysis
from callflow.observability import bind_session, logger, metrics
from callflow.services import get_services


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Park the task's token on the session (``event`` holds ``state`` and ``task_token``)."""
    bind_session(event["state"]["session_id"])
    return analysis.await_analysis(get_services(), event["state"], event["task_token"])
