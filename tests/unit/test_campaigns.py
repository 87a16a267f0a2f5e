"""Campaign state on moto: the gate admission asks, pause/resume/cancel, the counters each
session status change moves (once), the item's session, the recount and the CSV export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from callflow.campaigns import control
from callflow.campaigns.gate import campaign_gate, window_gate
from callflow.campaigns.items import items_key
from callflow.campaigns.model import (
    Campaign,
    CampaignSource,
    CampaignState,
    CampaignWindow,
    campaign_session_id,
    new_campaign_id,
)
from callflow.campaigns.report import export_csv, recount
from callflow.campaigns.sessions import open_item
from callflow.campaigns.store import StateConflict
from callflow.config import Settings
from callflow.models import Outcome, Session, SessionStatus
from callflow.services import Services
from callflow_dev.local.aws import create_table

REGION = "us-east-1"
BUCKET = "campaigns-unit"
NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture(name="services")
def services_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        create_table("campaigns-unit", REGION)
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        yield Services(Settings(table_name="campaigns-unit", campaign_bucket=BUCKET))


def new_campaign(services: Services, **fields: object) -> Campaign:
    source = CampaignSource(kind="ids", ids=["1", "2", "3"])
    return services.campaigns.create(
        Campaign(campaign_id=new_campaign_id(), module="Leads", source=source, **fields)  # type: ignore[arg-type]
    )


# --- the gate ------------------------------------------------------------------------------


def test_a_running_campaign_without_a_window_is_open(services: Services) -> None:
    campaign = new_campaign(services)
    assert campaign_gate(services.store, campaign.campaign_id, NOW).verdict == "open"


def test_pause_resume_and_cancel_change_the_gate_at_the_next_ask(services: Services) -> None:
    campaign_id = new_campaign(services).campaign_id
    control.act(services, campaign_id, "pause")
    assert campaign_gate(services.store, campaign_id, NOW).verdict == "paused"
    control.act(services, campaign_id, "resume")
    assert campaign_gate(services.store, campaign_id, NOW).verdict == "open"
    control.act(services, campaign_id, "cancel")
    gate = campaign_gate(services.store, campaign_id, NOW)
    assert (gate.verdict, gate.reason) == ("cancelled", "the campaign was cancelled")


def test_actions_the_state_does_not_allow_are_refused_with_the_state(services: Services) -> None:
    campaign_id = new_campaign(services).campaign_id
    with pytest.raises(StateConflict, match="running"):
        control.act(services, campaign_id, "resume")
    control.act(services, campaign_id, "cancel")
    for action in ("pause", "resume", "cancel"):
        with pytest.raises(StateConflict) as conflict:
            control.act(services, campaign_id, action)
        assert conflict.value.state is CampaignState.CANCELLED


def test_an_unknown_campaign_cancels_its_waiting_calls(services: Services) -> None:
    assert campaign_gate(services.store, "c0000000000000000", NOW).verdict == "cancelled"
    assert campaign_gate(services.store, "", NOW).verdict == "open"  # a single trigger


def test_before_the_window_starts_the_gate_is_closed_until_its_start() -> None:
    window = CampaignWindow(start="2026-12-07", timezone="Europe/Berlin")
    gate = window_gate(window, NOW)
    assert gate.verdict == "closed"
    assert gate.reopens_at == datetime(2026, 12, 6, 23, 0, tzinfo=UTC)


def test_outside_its_hours_and_weekdays_the_gate_reopens_at_the_next_opening() -> None:
    window = CampaignWindow(weekdays=[4], hours_start="09:00", hours_end="12:00", timezone="UTC")
    gate = window_gate(window, NOW)
    assert gate.verdict == "closed"
    assert gate.reopens_at == datetime(2026, 12, 4, 9, 0, tzinfo=UTC)  # Friday 09:00
    assert window_gate(window, datetime(2026, 12, 4, 10, 0, tzinfo=UTC)).verdict == "open"


def test_past_the_window_end_or_with_no_opening_left_calls_are_cancelled() -> None:
    ended = CampaignWindow(end="2026-12-01", timezone="UTC")
    assert window_gate(ended, NOW).verdict == "cancelled"
    no_opening = CampaignWindow(end="2026-12-03", weekdays=[4], timezone="UTC")
    gate = window_gate(no_opening, NOW)
    assert gate.verdict == "cancelled" and "does not open again" in gate.reason


def test_a_window_whose_start_is_not_before_its_end_is_refused() -> None:
    with pytest.raises(ValueError, match="start"):
        CampaignWindow(start="2026-12-05", end="2026-12-04")
    with pytest.raises(ValueError, match="time zone"):
        CampaignWindow(timezone="Mars/Olympus")


# --- counters ------------------------------------------------------------------------------


def campaign_session(services: Services, campaign: Campaign, record_id: str) -> Session:
    return services.store.create(
        Session(
            session_id=campaign_session_id(campaign.campaign_id, record_id),
            module="Leads",
            record_id=record_id,
            campaign_id=campaign.campaign_id,
        )
    )


def counters(services: Services, campaign: Campaign) -> dict[str, int]:
    found = services.campaigns.require(campaign.campaign_id).counters
    return {name: value for name, value in found.items() if value}


def test_each_status_change_moves_the_campaign_counters_once(services: Services) -> None:
    campaign = new_campaign(services)
    store = services.store
    session = campaign_session(services, campaign, "1")
    assert counters(services, campaign) == {"queued": 1}
    store.advance(session.session_id, SessionStatus.DIALING, attempt=1)
    assert counters(services, campaign) == {"dialling": 1}
    assert store.advance(session.session_id, SessionStatus.DIALING, attempt=1) is None
    store.advance(session.session_id, SessionStatus.RINGING, attempt=1)  # same counter
    store.advance(session.session_id, SessionStatus.IN_CALL, attempt=1)
    assert counters(services, campaign) == {"in_call": 1}
    store.set_fields(session.session_id, {"outcome": Outcome.ANSWERED.value})
    store.advance(session.session_id, SessionStatus.WRITING_BACK)
    store.advance(session.session_id, SessionStatus.COMPLETED)
    store.advance(session.session_id, SessionStatus.COMPLETED)  # a duplicate: not counted
    assert counters(services, campaign) == {"written_back": 1, "reached": 1}


def test_a_replayed_writeback_moves_its_result_out_and_back_once(services: Services) -> None:
    campaign = new_campaign(services)
    store = services.store
    session_id = campaign_session(services, campaign, "1").session_id
    store.set_fields(session_id, {"outcome": Outcome.NO_ANSWER.value})
    store.advance(session_id, SessionStatus.WRITEBACK_FAILED)
    assert counters(services, campaign) == {"writeback_failed": 1, "not_reached": 1}
    store.reopen_writeback(session_id)
    assert counters(services, campaign) == {"writing_back": 1}
    store.advance(session_id, SessionStatus.COMPLETED)
    assert counters(services, campaign) == {"written_back": 1, "not_reached": 1}


def test_a_single_triggers_session_counts_on_no_campaign(services: Services) -> None:
    campaign = new_campaign(services)
    store = services.store
    session = store.create(Session(session_id="single", module="Leads", record_id="9"))
    store.advance(session.session_id, SessionStatus.DIALING, attempt=1)
    assert counters(services, campaign) == {}


def test_the_recount_matches_the_live_counters(services: Services) -> None:
    campaign = new_campaign(services)
    put_items(services, campaign, ["1", "2", "3"])
    store = services.store
    first = campaign_session(services, campaign, "1").session_id
    second = campaign_session(services, campaign, "2").session_id
    store.advance(first, SessionStatus.DIALING, attempt=1)
    store.set_fields(second, {"outcome": Outcome.CANCELLED.value})
    store.advance(second, SessionStatus.COMPLETED)
    final = recount(services, campaign.campaign_id)
    live = counters(services, campaign)
    assert {
        k: v for k, v in final.items() if v and k not in ("records", "sessions", "skipped")
    } == live
    assert (final["records"], final["sessions"], final["skipped"]) == (3, 2, 1)
    assert live == {"dialling": 1, "written_back": 1, "cancelled": 1}


def put_items(services: Services, campaign: Campaign, record_ids: list[str]) -> None:
    items = [{"record_id": r, "record": {"id": r, "Phone": "+14155550100"}} for r in record_ids]
    services.s3.put_object(
        Bucket=BUCKET, Key=items_key(campaign.campaign_id), Body=json.dumps(items).encode()
    )


# --- an item's session ------------------------------------------------------------------------


def item(record_id: str) -> dict[str, object]:
    return {"record_id": record_id, "record": {"id": record_id, "Phone": "+14155550123"}}


def test_an_item_makes_its_session_from_the_snapshot_once(services: Services) -> None:
    campaign = new_campaign(services)
    opened = open_item(services, campaign.campaign_id, item("1"))
    again = open_item(services, campaign.campaign_id, item("1"))  # the Map retries an item
    assert opened.action == again.action == "call" and opened.session_id == again.session_id
    session = services.store.require(opened.session_id)
    assert (session.campaign_id, session.phone_raw) == (campaign.campaign_id, "+14155550123")
    assert counters(services, campaign) == {"queued": 1}


def test_a_record_held_by_another_session_is_skipped_and_counted(services: Services) -> None:
    campaign = new_campaign(services)
    services.store.create(Session(session_id="single", module="Leads", record_id="2"))
    assert services.store.claim_record("Leads", "2", "single", 3600) is None
    opened = open_item(services, campaign.campaign_id, item("2"))
    assert opened.action == "skip" and "single" in opened.reason
    assert services.store.get(opened.session_id) is None
    assert counters(services, campaign) == {"skipped": 1}


def test_a_cancelled_campaign_opens_no_more_sessions(services: Services) -> None:
    campaign = new_campaign(services)
    control.act(services, campaign.campaign_id, "cancel")
    opened = open_item(services, campaign.campaign_id, item("3"))
    assert opened.action == "skip" and services.store.get(opened.session_id) is None


# --- export ---------------------------------------------------------------------------------


def test_the_export_has_a_row_per_record_with_outcome_attempts_duration_and_fields(
    services: Services,
) -> None:
    campaign = new_campaign(services)
    put_items(services, campaign, ["1", "2"])
    session_id = campaign_session(services, campaign, "1").session_id
    services.store.set_fields(
        session_id,
        {
            "outcome": Outcome.ANSWERED.value,
            "outcome_detail": "=HYPERLINK(1)",
            "attempt": 2,
            "call_duration": 73,
            "writeback": {"fields": {"Interested": True}},
        },
    )
    services.store.advance(session_id, SessionStatus.COMPLETED)
    rows = list(csv.DictReader(io.StringIO(export_csv(services, campaign.campaign_id))))
    assert [r["record_id"] for r in rows] == ["1", "2"]
    first, second = rows
    assert (first["status"], first["outcome"], first["attempts"], first["duration_s"]) == (
        "completed",
        "answered",
        "2",
        "73",
    )
    assert json.loads(first["fields_written"]) == {"Interested": True}
    assert first["outcome_detail"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    assert (second["session_id"], second["status"]) == ("", "skipped")


def test_a_campaign_ending_later_than_now_is_started_in_its_window() -> None:
    later = (NOW + timedelta(days=3)).date().isoformat()
    assert window_gate(CampaignWindow(end=later), NOW).verdict == "open"


# --- the campaign's flow ------------------------------------------------------------------


def test_a_campaign_calls_its_records_with_the_flow_it_names(
    services: Services, tmp_path: Path
) -> None:
    (tmp_path / "reminder.yaml").write_text("agent: {agent_id: agent_reminder}\n")
    with_flows = Services(services.settings.model_copy(update={"flows_dir": str(tmp_path)}))
    campaign = new_campaign(with_flows, flow="reminder")
    opened = open_item(with_flows, campaign.campaign_id, item("4"))
    assert with_flows.store.require(opened.session_id).flow == "reminder"
    plain = new_campaign(with_flows)
    default = open_item(with_flows, plain.campaign_id, item("5"))
    assert with_flows.store.require(default.session_id).flow == with_flows.flows.default.name


def test_a_campaign_naming_an_unknown_flow_is_refused_before_it_is_stored(
    services: Services,
) -> None:
    source = CampaignSource(kind="ids", ids=["1"])
    with pytest.raises(control.CampaignRefused, match="unknown flow 'nope'"):
        control.start_campaign(services, "Leads", source, CampaignWindow(), 2, flow="nope")
