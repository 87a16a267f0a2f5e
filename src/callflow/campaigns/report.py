"""What a campaign's records became: the sessions behind its items, the exact counters, the CSV.

The sessions are found from the items alone (each session id is derived from the campaign and
the record, :func:`callflow.campaigns.model.campaign_session_id`), read 100 at a time with
``BatchGetItem``, so neither the export nor the final recount needs an index on the table.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from callflow.campaigns import counters
from callflow.campaigns.items import CampaignItems, Item
from callflow.campaigns.model import campaign_session_id
from callflow.models import Session
from callflow.services import Services
from callflow.store import session_from_item, session_key

BATCH = 100
"""Keys one ``BatchGetItem`` reads at most."""

EXPORT_COLUMNS = (
    "record_id",
    "session_id",
    "status",
    "outcome",
    "outcome_detail",
    "attempts",
    "duration_s",
    "fields_written",
)


def item_sessions(
    services: Services, campaign_id: str, items: list[Item]
) -> Iterator[tuple[Item, Session | None]]:
    """Each item with its session (``None`` for a record that was skipped), in item order."""
    client = services.store.table.meta.client
    table = services.store.table_name
    for start in range(0, len(items), BATCH):
        chunk = items[start : start + BATCH]
        ids = [campaign_session_id(campaign_id, str(item["record_id"])) for item in chunk]
        found: dict[str, Session] = {}
        keys: list[dict[str, Any]] = [session_key(i) for i in ids]
        for _ in range(10):
            if not keys:
                break
            response = client.batch_get_item(
                RequestItems={table: {"Keys": keys, "ConsistentRead": True}}
            )
            for row in response.get("Responses", {}).get(table, []):
                session = session_from_item(row)
                found[session.session_id] = session
            keys = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
        if keys:
            raise RuntimeError("DynamoDB left keys unprocessed after 10 tries")
        for item, session_id in zip(chunk, ids, strict=True):
            yield item, found.get(session_id)


def recount(services: Services, campaign_id: str) -> dict[str, int]:
    """The campaign's counters counted afresh from its items and sessions."""
    items = CampaignItems(services.s3, services.settings.campaign_bucket).read(campaign_id)
    sessions = [s for _, s in item_sessions(services, campaign_id, items) if s is not None]
    total = dict.fromkeys(counters_names(), 0)
    total.update(counters.tally((s.status, s.outcome) for s in sessions))
    total["records"] = len(items)
    total["sessions"] = len(sessions)
    total["skipped"] = len(items) - len(sessions)
    return total


def counters_names() -> tuple[str, ...]:
    """Every counter's name."""
    from callflow.campaigns.model import COUNTERS

    return COUNTERS


def export_csv(services: Services, campaign_id: str) -> str:
    """One CSV row per record: its session, status, outcome, attempts, call duration (seconds)
    and the fields written to it (JSON); a skipped record has no session and ``skipped``."""
    items = CampaignItems(services.s3, services.settings.campaign_bucket).read(campaign_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for item, session in item_sessions(services, campaign_id, items):
        if session is None:
            writer.writerow([item["record_id"], "", "skipped", "", "", 0, 0, "{}"])
            continue
        written = session.writeback.get("fields")
        writer.writerow(
            [
                session.record_id,
                session.session_id,
                session.status.value,
                session.outcome.value if session.outcome else "",
                _safe_cell(session.outcome_detail),
                session.attempt,
                session.call_duration,
                _safe_cell(json.dumps(written if isinstance(written, dict) else {}, default=str)),
            ]
        )
    return out.getvalue()


def _safe_cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection): text from the agent or
    the CRM that starts with ``= + - @`` gets a leading apostrophe."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
