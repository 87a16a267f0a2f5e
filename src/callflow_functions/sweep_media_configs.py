"""Scheduled task (an EventBridge rule): delete per-session media-stream configs left behind.

Every end path of an attempt deletes its config (:mod:`callflow.lifecycle.media_configs`); this
catches the ones that could not be deleted then, or whose creation answer was lost, by the
creation time their names carry, so nothing in the table has to remember them.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callflow.config import get_settings
from callflow.lifecycle import media_configs
from callflow.observability import logger, metrics
from callflow.services import get_services


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    """Sweep once; the counts (deleted, failed, kept) are logged and returned. A stage whose
    Infobip key is not set yet has nothing to sweep (and must not fail every run)."""
    if not get_settings().infobip_api_key.get_secret_value():
        logger.info("no Infobip API key set: nothing to sweep")
        return {"deleted": 0, "failed": 0, "kept": 0}
    return media_configs.sweep(get_services())
