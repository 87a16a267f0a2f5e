"""The campaign state machine's three task steps: enumerate, open an item, finish.

The state machine (``callflow_functions/campaign.asl.json``) owns the order, the waiting and the
retries; each step here is one Lambda invocation that can be repeated without harm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from callflow.campaigns.enumeration import EnumerationFailed, enumerate_step
from callflow.campaigns.items import CampaignItems
from callflow.campaigns.model import CampaignState
from callflow.campaigns.report import recount
from callflow.campaigns.sessions import open_item
from callflow.campaigns.store import StateConflict
from callflow.lifecycle import workflow
from callflow.models import iso, utcnow
from callflow.observability import logger
from callflow.services import Services


def enumerate_records(
    services: Services, state: dict[str, Any], remaining_millis: Callable[[], int] | None = None
) -> dict[str, Any]:
    """Enumerate (or go on enumerating) the campaign's records.

    Answers ``action``: ``run`` with the items' ``bucket`` and ``key`` and the Map's
    ``max_concurrency``; ``wait`` with ``wait_until`` (the credit budget is spent); ``continue``
    (the Lambda's time ran short: call again at once); ``stop`` (cancelled while enumerating,
    or its records could not be enumerated: the error is on the campaign)."""
    campaign_id = str(state["campaign_id"])
    campaign = services.campaigns.require(campaign_id)
    answer: dict[str, Any] = {"campaign_id": campaign_id}
    if not campaign.active:
        return {**answer, "action": "stop"}
    bucket = services.settings.campaign_bucket
    items = CampaignItems(services.s3, bucket)
    try:
        progress = enumerate_step(services, campaign, items, remaining_millis)
    except EnumerationFailed as error:
        logger.warning("campaign enumeration failed", extra={"campaign_id": campaign_id})
        _move(services, campaign_id, CampaignState.FAILED, {"error": str(error)[:500]})
        return {**answer, "action": "stop"}
    if progress.wait_until is not None:
        return {**answer, "action": "wait", "wait_until": iso(progress.wait_until)}
    if not progress.done:
        return {**answer, "action": "continue"}
    key, count = items.join(campaign_id)
    # No session exists before the Map starts, so nothing else writes the counters yet.
    counted = {**campaign.counters, "records": count}
    services.campaigns.set_fields(campaign_id, {"items_key": key, "counters": counted})
    return {
        **answer,
        "action": "run",
        "bucket": bucket,
        "key": key,
        "max_concurrency": campaign.max_concurrency,
    }


def open_campaign_item(services: Services, state: dict[str, Any]) -> dict[str, Any]:
    """The item's session (``action`` ``call``) or why it is skipped (``skip``)."""
    opened = open_item(services, str(state["campaign_id"]), dict(state["item"]))
    return {"session_id": opened.session_id, "action": opened.action, "reason": opened.reason}


def finish(services: Services, state: dict[str, Any]) -> dict[str, Any]:
    """Recount every session and end the campaign: ``done`` (a cancelled or failed campaign
    keeps its state). With ``error`` (the state machine caught one) the campaign ``failed``."""
    campaign_id = str(state["campaign_id"])
    error = state.get("error")
    if isinstance(error, dict):
        cause = workflow.error_cause(error.get("Cause")) or str(error.get("Error") or "")
        _move(services, campaign_id, CampaignState.FAILED, {"error": cause[:500]})
    final = recount(services, campaign_id)
    fields: dict[str, Any] = {"counters": final, "finished_at": iso(utcnow())}
    campaign = _move(services, campaign_id, CampaignState.DONE, fields)
    return {"campaign_id": campaign_id, "state": campaign.state.value, "counters": final}


def _move(services: Services, campaign_id: str, to: CampaignState, fields: dict[str, Any]) -> Any:
    """Move a running or paused campaign to ``to``; one that is elsewhere (cancelled, failed)
    keeps its state and takes only ``fields``."""
    try:
        return services.campaigns.move(
            campaign_id, to, [CampaignState.RUNNING, CampaignState.PAUSED], fields
        )
    except StateConflict:
        return services.campaigns.set_fields(campaign_id, fields)
