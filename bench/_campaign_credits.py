"""Zoho API credits per campaign record: its share of the enumeration, and its writeback.

Real: the campaign's enumeration of a custom view (:func:`callflow.campaigns.enumeration.
enumerate_step`, pages of 200), each record's session made from the enumerated snapshot
(:func:`callflow.campaigns.sessions.open_item`) and its writeback
(:func:`callflow.lifecycle.writeback.write_back`: the fields, the note, the logged call for a call
that connected), through the real Zoho client against the Zoho stand-in over a socket, on the
embedded stack. Credits are counted as the client counts them for Zoho
(:attr:`callflow.providers.zoho.client.ZohoClient.credits_spent`: one per API request, a COQL
query by its LIMIT); OAuth token requests are not API calls and cost none.

The enumeration reads every record; the writeback, about half a second a record on the embedded
stack, is measured over the first ``sample`` of them (their outcomes in the same mix).

Simulated: each record's outcome (answered or not, from the benchmark's phone network); an
answered record's session carries the data the agent collected, as its analysis would.
"""

from __future__ import annotations

from typing import Any

ANSWERED_DATA = {
    "interested": {"value": True},
    "monthly_bill": {"value": "120"},
    "lead_status": {"value": "interested"},
}


def zoho_credits(answered: list[bool], sample: int = 100) -> dict[str, Any]:
    """Credits per record for a campaign of ``len(answered)`` records (``answered[i]``: whether
    record i's call was answered), the writeback measured over the first ``sample``."""
    from callflow.campaigns.enumeration import enumerate_step
    from callflow.campaigns.items import CampaignItems
    from callflow.campaigns.model import Campaign, CampaignSource, new_campaign_id
    from callflow.campaigns.sessions import open_item
    from callflow.lifecycle.writeback import write_back
    from callflow.models import SessionStatus, iso, utcnow
    from callflow.observability import metrics
    from callflow.services import get_services
    from callflow_dev.local.stack import LocalStack, StackOptions

    with LocalStack(StackOptions()) as stack:
        services = get_services()
        records = [
            stack.zoho.seed_record(
                "Leads", {"Last_Name": f"Bench {i}", "Phone": f"+1415{5550000 + i}"}
            )
            for i in range(len(answered))
        ]
        outcome_of = dict(zip(records, answered, strict=True))
        cvid = stack.zoho.add_view("Leads", lambda record: record["id"] in outcome_of)
        campaign_id = new_campaign_id()
        services.campaigns.create(
            Campaign(
                campaign_id=campaign_id,
                module="Leads",
                source=CampaignSource(kind="view", cvid=cvid),
            )
        )
        items = CampaignItems(services.s3, services.settings.campaign_bucket)
        zoho = services.zoho
        before = zoho.credits_spent
        while not enumerate_step(services, services.campaigns.require(campaign_id), items).done:
            pass
        items.join(campaign_id)
        enumeration = zoho.credits_spent - before
        before = zoho.credits_spent
        written = 0
        enumerated = items.read(campaign_id)
        for item in enumerated[:sample]:
            opened = open_item(services, campaign_id, item)
            reached = outcome_of[item["record_id"]]
            fields: dict[str, Any] = {"outcome": "answered" if reached else "no_answer"}
            if reached:
                fields |= {
                    "results": {"data_collection": ANSWERED_DATA, "summary": "Interested."},
                    "call_answered_at": iso(utcnow()),
                    "call_duration": 42,
                }
            services.store.advance(
                opened.session_id, SessionStatus.CALL_ENDED, attempt=1, fields=fields
            )
            write_back(services, opened.session_id)
            # No Lambda ends here to flush the metrics: they would print EMF among the JSON.
            metrics.clear_metrics()
            written += services.store.require(opened.session_id).status is SessionStatus.COMPLETED
        writeback = zoho.credits_spent - before
    count, sampled = len(answered), min(sample, len(answered))
    if len(enumerated) != count or written != sampled:
        raise RuntimeError(f"{len(enumerated)} of {count} enumerated, {written} written back")
    per_record = {"enumeration": enumeration / count, "writeback": writeback / sampled}
    return {
        "zoho_credits_per_record": round(sum(per_record.values()), 3),
        "zoho_enumeration_credits_per_record": round(per_record["enumeration"], 3),
        "zoho_writeback_credits_per_record": round(per_record["writeback"], 3),
        "zoho_writeback_measured_over": sampled,
    }
