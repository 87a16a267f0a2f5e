"""Campaign task: recount every session and end the campaign (``done``, or ``failed`` with the
error the state machine caught; see :func:`callflow.campaigns.steps.finish`)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callflow.campaigns import steps
from callflow.observability import logger, metrics
from callflow.services import get_services


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Finish; ``event`` is ``{"campaign_id"}``, with ``error`` after a caught failure."""
    logger.append_keys(campaign_id=event["campaign_id"])
    return steps.finish(get_services(), event)
