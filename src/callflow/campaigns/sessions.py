"""A campaign item's session: claim the record and create its session from the snapshot.

The session is made by :func:`callflow.lifecycle.trigger.create_session`, the same as a single
trigger's; the record is claimed first with the same :meth:`callflow.store.SessionStore.
claim_record`, so a record held by another session (active, or called within the trigger
window) is reported and skipped, never called twice. The session id is derived from the campaign
and the record (:func:`callflow.campaigns.model.campaign_session_id`): the Distributed Map retries
an item whose Lambda failed, and the retry finds the claim and the session it made before.

The item's call workflow is started by the campaign's state machine (``startExecution.sync:2``,
named after the session), not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from callflow.aws import CONDITION_FAILED, error_code
from callflow.campaigns import counters
from callflow.campaigns.model import CampaignState, campaign_session_id
from callflow.lifecycle.trigger import RECORD_ID_PATTERN, create_session
from callflow.observability import logger
from callflow.services import Services


@dataclass(frozen=True)
class ItemSession:
    """What became of one item: ``call`` (its session exists; run its workflow) or ``skip``."""

    session_id: str
    action: Literal["call", "skip"]
    reason: str = ""


def open_item(services: Services, campaign_id: str, item: dict[str, Any]) -> ItemSession:
    """The session of ``item`` (``{"record_id", "record"}``) in the campaign, created once."""
    record_id = str(item.get("record_id") or "")
    record = item.get("record")
    if not RECORD_ID_PATTERN.match(record_id) or not isinstance(record, dict):
        raise ValueError("a campaign item is {record_id: digits, record: {fields}}")
    campaign = services.campaigns.require(campaign_id)
    session_id = campaign_session_id(campaign_id, record_id)
    store = services.store
    if store.get(session_id) is not None:
        return ItemSession(session_id, "call", "session made by an earlier try")
    if campaign.state in (CampaignState.CANCELLED, CampaignState.FAILED):
        counters.add(store.table, campaign_id, {"skipped": 1})
        return ItemSession(session_id, "skip", f"the campaign is {campaign.state.value}")
    blocking = store.claim_record(
        campaign.module, record_id, session_id, services.settings.trigger_window_seconds
    )
    if blocking and blocking != session_id:
        counters.add(store.table, campaign_id, {"skipped": 1})
        logger.info(
            "campaign record held by another session; skipped",
            extra={"campaign_id": campaign_id, "holder": blocking},
        )
        return ItemSession(session_id, "skip", f"held by session {blocking}")
    try:
        create_session(
            services,
            campaign.module,
            record_id,
            record,
            session_id=session_id,
            campaign_id=campaign_id,
            flow=services.flows.get(campaign.flow) if campaign.flow else None,
        )
    except Exception as error:
        if error_code(error) != CONDITION_FAILED:
            raise
        # Made by a concurrent try of this same item: it is the session.
    return ItemSession(session_id, "call")
