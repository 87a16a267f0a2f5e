"""Workflow task: the writeback failed after every retry; keep the data, raise the alarm."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callflow.lifecycle import writeback
from callflow.observability import bind_session, logger, metrics
from callflow.services import get_services


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Flag the session's writeback as failed; ``event`` carries the caught ``error``."""
    bind_session(event["session_id"])
    return writeback.mark_failed(get_services(), event["session_id"], event.get("error") or {})
