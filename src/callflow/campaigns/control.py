"""Starting a campaign and the operator's pause, resume and cancel.

Starting stores the campaign (``running``) and starts its state machine's execution, named after
the campaign: enumerate, then one item per record through the call workflow, then finish
(``callflow_functions/campaign.asl.json``). When the execution cannot be started the campaign is
marked ``failed`` with the reason and the error propagates (the API answers 503): nothing was
called, and starting it again makes a new campaign.

Pause, resume and cancel change only the campaign's state (one conditional write each, see
:mod:`callflow.campaigns.store`); each call reads it at its next admission
(:func:`callflow.campaigns.gate.campaign_gate`).
"""

from __future__ import annotations

import json
from typing import Any

from callflow.campaigns.gate import window_gate
from callflow.campaigns.model import (
    TRANSITIONS,
    Campaign,
    CampaignSource,
    CampaignState,
    CampaignWindow,
    new_campaign_id,
)
from callflow.campaigns.store import StateConflict
from callflow.lifecycle.trigger import MODULE_PATTERN
from callflow.models import utcnow
from callflow.observability import logger
from callflow.services import Services


class CampaignRefused(ValueError):
    """The campaign cannot be started as asked; ``reason`` says why (a 4xx)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def start_campaign(
    services: Services,
    module: str,
    source: CampaignSource,
    window: CampaignWindow,
    max_concurrency: int,
    name: str = "",
    flow: str = "",
) -> Campaign:
    """Store the campaign and start its execution; :class:`CampaignRefused` for a request
    that cannot run (the source and window are validated by their models already)."""
    settings = services.settings
    if not MODULE_PATTERN.match(module):
        raise CampaignRefused("module must be a Zoho module API name such as Leads")
    limit = settings.campaign_max_concurrency
    if not 1 <= max_concurrency <= limit:
        raise CampaignRefused(f"max_concurrency must be 1 to {limit}")
    if source.kind == "ids" and len(source.ids) > settings.campaign_max_records:
        raise CampaignRefused(f"at most {settings.campaign_max_records} record ids")
    if flow:
        from callflow.flows.errors import UnknownFlow

        try:
            services.flows.get(flow)
        except UnknownFlow:
            raise CampaignRefused(f"unknown flow {flow[:64]!r}") from None
    if window_gate(window, utcnow()).verdict == "cancelled":
        raise CampaignRefused("the campaign's window has already ended")
    if not settings.campaign_state_machine_arn or not settings.campaign_bucket:
        raise CampaignRefused("campaigns are not configured on this deployment")
    campaign = services.campaigns.create(
        Campaign(
            campaign_id=new_campaign_id(),
            module=module,
            source=source,
            window=window,
            max_concurrency=max_concurrency,
            name=name[:200],
            flow=flow,
        )
    )
    try:
        response = services.sfn.start_execution(
            stateMachineArn=settings.campaign_state_machine_arn,
            name=campaign.campaign_id,
            input=json.dumps({"campaign_id": campaign.campaign_id}),
        )
    except Exception as error:
        _fail_quietly(services, campaign.campaign_id, f"not started: {type(error).__name__}")
        raise
    logger.info("campaign started", extra={"campaign_id": campaign.campaign_id})
    return services.campaigns.set_fields(
        campaign.campaign_id, {"execution_arn": str(response["executionArn"])}
    )


def act(services: Services, campaign_id: str, action: str) -> Campaign:
    """Pause, resume or cancel; :class:`callflow.campaigns.store.StateConflict` when the
    campaign is not in a state the action moves from."""
    sources, to = TRANSITIONS[action]
    try:
        campaign = services.campaigns.move(campaign_id, to, sources)
    except StateConflict as conflict:
        done = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[action]
        raise StateConflict(conflict.state, done) from None
    logger.info("campaign " + to.value, extra={"campaign_id": campaign_id})
    return campaign


def _fail_quietly(services: Services, campaign_id: str, reason: str) -> None:
    try:
        services.campaigns.move(
            campaign_id,
            CampaignState.FAILED,
            [CampaignState.RUNNING],
            {"error": reason},
        )
    except Exception:
        logger.exception("a campaign that did not start could not be marked failed")


def view(campaign: Campaign) -> dict[str, Any]:
    """The campaign as the API shows it."""
    shown: dict[str, Any] = campaign.model_dump(mode="json", exclude={"expires_at"})
    return shown
