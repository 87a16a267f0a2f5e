"""Campaign task: one record's session, made from its snapshot (or why it is skipped).

The Distributed Map runs it once per item, then the call workflow for the session it answers
(:func:`callflow.campaigns.steps.open_campaign_item`).
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callflow.campaigns import steps
from callflow.observability import logger, metrics
from callflow.services import get_services


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Open the item's session; ``event`` is ``{"campaign_id", "item"}``."""
    logger.append_keys(campaign_id=event["campaign_id"])
    return steps.open_campaign_item(get_services(), event)
