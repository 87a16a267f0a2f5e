"""Enumerating a campaign's records from Zoho, within its API credit budget, resumably.

One page at a time, each written to S3 as a part (:mod:`callflow.campaigns.items`) before the
cursor that follows it is saved on the campaign, so a Lambda that dies mid-way repeats at most
one page. The three sources page as Zoho makes them:

- a custom view (``cvid``): ``page`` for the first 2,000 records, then ``page_token`` (each page
  hands the next one's). A token expires (a day): the listing then starts again at page 1, the
  records already written are kept once each (the parts are joined without repeats), and the
  credits of the pages read again are spent again;
- a COQL criteria: ``select <fields> from <module> where (<criteria>) order by id asc
  limit <offset>, <n>``, OFFSET plus LIMIT at most 100,000; each query's LIMIT is the largest
  of Zoho's credit tiers (200, 1,000, 2,000 rows for 1, 2, 3 credits) the budget still covers;
- record ids: reads of 100 ids each; an id with no record is counted as ``missing``.

Only the fields a session needs are read (:func:`callflow.lifecycle.trigger.record_fields`).
The budget (``campaign_credit_budget`` credits per 24 hours, Zoho's own window) is checked
before every request: when the next one does not fit, the enumeration stops with the time its
window restarts, and the state machine waits until then and calls it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from callflow.campaigns.items import CampaignItems, Item
from callflow.campaigns.model import Campaign
from callflow.models import iso, utcnow
from callflow.observability import logger
from callflow.providers.errors import ProviderRejected
from callflow.providers.zoho.client import (
    COQL_MAX_LIMIT,
    COQL_MAX_OFFSET,
    MAX_IDS_PER_READ,
    MAX_PER_PAGE,
    PAGE_PARAM_LIMIT,
    Page,
    coql_credits,
)
from callflow.services import Services

CREDIT_WINDOW = timedelta(hours=24)
MAX_RESTARTS = 3
"""Restarts of a view's listing after an expired page token before the enumeration fails."""
SPARE_MILLIS = 30_000
"""Lambda time kept in hand: with less left, the enumeration stops and is called again."""


class EnumerationFailed(Exception):
    """The records cannot be enumerated (an unknown view, a refused query): the campaign fails,
    with this as its error."""


@dataclass(frozen=True)
class Progress:
    """Where an enumeration stopped: ``done``, or ``wait_until`` (the budget's window restarts;
    ``None`` to be called again at once, when the Lambda's time ran short)."""

    done: bool
    records: int
    wait_until: datetime | None = None


def enumerate_step(
    services: Services,
    campaign: Campaign,
    items: CampaignItems,
    remaining_millis: Any = None,
) -> Progress:
    """Read pages until the source is exhausted, the budget is spent, or time runs short;
    the cursor is saved on the campaign after every page. ``remaining_millis`` is the Lambda
    context's ``get_remaining_time_in_millis`` (``None``: no limit)."""
    from callflow.lifecycle.trigger import record_fields

    settings = services.settings
    cursor = dict(campaign.enumeration)
    now = utcnow()
    started = _parse(cursor.get("window_started")) or now
    if now >= started + CREDIT_WINDOW:
        started, cursor["window_credits"] = now, 0
    cursor["window_started"] = iso(started)
    budget = settings.campaign_credit_budget
    zoho = services.zoho
    before = zoho.credits_spent
    flow = services.flows.get(campaign.flow) if campaign.flow else None
    fields = record_fields(services, campaign.module, flow)
    _charge(cursor, zoho.credits_spent - before)  # the field metadata, when not cached
    if "id" in fields:
        fields.remove("id")
    while True:
        if remaining_millis is not None and remaining_millis() < SPARE_MILLIS:
            return _save(services, campaign, cursor, Progress(False, cursor.get("records", 0)))
        if cursor.get("records", 0) >= settings.campaign_max_records:
            cursor["truncated"] = True
            cursor["done"] = True
        if cursor.get("done"):
            return _save(services, campaign, cursor, Progress(True, cursor.get("records", 0)))
        left = budget - int(cursor.get("window_credits", 0))
        cost = _next_cost(campaign, left)
        if cost is None or cost > left:
            wait = started + CREDIT_WINDOW
            logger.info(
                "campaign enumeration paused: credit budget spent",
                extra={"campaign_id": campaign.campaign_id, "until": iso(wait)},
            )
            return _save(
                services, campaign, cursor, Progress(False, cursor.get("records", 0), wait)
            )
        before = zoho.credits_spent
        try:
            page, found = _read(services, campaign, fields, cursor, left)
        finally:
            _charge(cursor, zoho.credits_spent - before)
        if found:
            part = int(cursor.get("parts", 0))
            items.put_part(campaign.campaign_id, part, found)
            cursor["parts"] = part + 1
            cursor["records"] = int(cursor.get("records", 0)) + len(found)
        _advance(campaign, cursor, page)
        campaign = _save_cursor(services, campaign, cursor)


def _charge(cursor: dict[str, Any], credits: int) -> None:
    """Count ``credits`` against the budget's window and the campaign's total."""
    cursor["window_credits"] = int(cursor.get("window_credits", 0)) + credits
    cursor["credits"] = int(cursor.get("credits", 0)) + credits


def _next_cost(campaign: Campaign, left: int) -> int | None:
    """The credits the next request costs (a COQL query the largest tier ``left`` covers)."""
    if campaign.source.kind != "coql":
        return 1
    for limit in (COQL_MAX_LIMIT, 1000, 200):
        if coql_credits(limit) <= left:
            return coql_credits(limit)
    return None


def _read(
    services: Services,
    campaign: Campaign,
    fields: list[str],
    cursor: dict[str, Any],
    left: int,
) -> tuple[Page, list[Item]]:
    zoho = services.zoho
    source = campaign.source
    module = campaign.module
    try:
        if source.kind == "ids":
            start = int(cursor.get("index", 0))
            batch = source.ids[start : start + MAX_IDS_PER_READ]
            records = zoho.get_records(module, batch, fields)
            cursor["missing"] = int(cursor.get("missing", 0)) + len(batch) - len(records)
            more = start + len(batch) < len(source.ids)
            return Page(records, more=more), _snapshots(records)
        if source.kind == "coql":
            limit = next(n for n in (COQL_MAX_LIMIT, 1000, 200) if coql_credits(n) <= left)
            offset = int(cursor.get("offset", 0))
            limit = min(limit, COQL_MAX_OFFSET - offset)
            # The criteria is the operator's own (an authenticated request), run by Zoho with
            # the org's permissions; module and fields are API names checked before.
            query = (
                f"select {', '.join(fields)} from {module} where ({source.criteria})"  # noqa: S608
                f" order by id asc limit {offset}, {limit}"
            )
            cursor["limit"] = limit
            page = zoho.coql(query, limit)
            return page, _snapshots(page.records)
        token = str(cursor.get("page_token", ""))
        try:
            page = zoho.list_page(
                module,
                fields,
                cvid=source.cvid,
                page=int(cursor.get("page", 1)),
                page_token=token,
                per_page=MAX_PER_PAGE,
            )
        except ProviderRejected:
            if not token:
                raise
            return _restart(cursor), []
        return page, _snapshots(page.records)
    except ProviderRejected as error:
        raise EnumerationFailed(f"Zoho refused the listing: {error.message}") from error


def _restart(cursor: dict[str, Any]) -> Page:
    """An expired (or refused) page token: the listing starts again at page 1."""
    restarts = int(cursor.get("restarts", 0)) + 1
    if restarts > MAX_RESTARTS:
        raise EnumerationFailed(f"Zoho refused the listing's page token {restarts} times")
    logger.info("page token refused; listing again from page 1", extra={"restarts": restarts})
    cursor.update({"restarts": restarts, "page": 1, "page_token": ""})
    return Page([], more=True, next_page_token="")


def _advance(campaign: Campaign, cursor: dict[str, Any], page: Page) -> None:
    """Move the cursor past ``page``."""
    kind = campaign.source.kind
    if kind == "ids":
        cursor["index"] = int(cursor.get("index", 0)) + MAX_IDS_PER_READ
        cursor["done"] = not page.more
        return
    if kind == "coql":
        cursor["offset"] = int(cursor.get("offset", 0)) + int(cursor.get("limit", 0))
        if page.more and cursor["offset"] >= COQL_MAX_OFFSET:
            cursor["truncated"] = True
        cursor["done"] = not page.more or cursor["offset"] >= COQL_MAX_OFFSET
        return
    if cursor.get("restarts") and not page.records and page.more and not cursor.get("page_token"):
        return  # a restart: page 1 is next
    if not page.more:
        cursor["done"] = True
        return
    number = int(cursor.get("page", 1))
    if not cursor.get("page_token") and (number + 1) * MAX_PER_PAGE <= PAGE_PARAM_LIMIT:
        cursor["page"] = number + 1
        return
    if not page.next_page_token:
        raise EnumerationFailed("Zoho gave no page token for the records past the first pages")
    cursor["page_token"] = page.next_page_token


def _snapshots(records: list[dict[str, Any]]) -> list[Item]:
    return [{"record_id": str(r["id"]), "record": r} for r in records]


def _save_cursor(services: Services, campaign: Campaign, cursor: dict[str, Any]) -> Campaign:
    return services.campaigns.set_fields(campaign.campaign_id, {"enumeration": cursor})


def _save(
    services: Services, campaign: Campaign, cursor: dict[str, Any], progress: Progress
) -> Progress:
    _save_cursor(services, campaign, cursor)
    return progress


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
