"""Campaign task: enumerate the campaign's records from Zoho into S3, within its credit budget.

Answers ``run`` (with the items' location), ``wait`` (the budget is spent until ``wait_until``),
``continue`` (call again: the Lambda's time ran short) or ``stop``
(:func:`callflow.campaigns.steps.enumerate_records`).
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callflow.campaigns import steps
from callflow.observability import logger, metrics
from callflow.services import get_services


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Enumerate; ``event`` is ``{"campaign_id"}``."""
    logger.append_keys(campaign_id=event["campaign_id"])
    return steps.enumerate_records(get_services(), event, context.get_remaining_time_in_millis)
