"""A session of a second flow (``reminder``) is dialled, retried and written back by that flow's
settings, not the default flow's: caller id, machine detection, calling hours, retry per outcome,
the prefetched agent, opt-out field and caps, mapping and outcome picklist values.

The real lifecycle functions run on the session store in an in-process moto, with the provider
fakes of :mod:`tests.unit.test_workflow_decisions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from callflow.lifecycle import calling, trigger, writeback
from callflow.models import Outcome, Session, SessionStatus
from callflow.services import Services

from .test_workflow_decisions import ZONE, aws, build, infobip, zoho

__all__ = ["aws"]  # the fixture, used by name

REMINDER = """\
agent:
  agent_id: agent_reminder
  overrides:
    agent:
      first_message: "Hello {{First_Name}}, a quick reminder."
variables: [First_Name, Amount_Due]
caller_id: "+15550002222"
status_field: Reminder_Status
outcomes:
  answered: Reminded
  busy: Line Busy
retry:
  busy: {attempts: 2, delay_seconds: 60}
  no_answer: {attempts: 4, delay_seconds: 120}
machine:
  detection: true
mapping:
  - item: paid
    field: Paid
    type: boolean
optout:
  field: Do_Not_Call
  item: stop_calls
caps:
  per_record: 1
"""

RECORD = {
    "Phone": "(415) 555-0100",
    "First_Name": "Ada",
    "Amount_Due": "120.00",
    "Company": "Analytical Engines",
}


@dataclass
class AgentUrls:
    """ElevenLabs' signed-URL endpoint: one URL per request, for the agent asked for."""

    asked: list[str | None] = field(default_factory=list)

    def get_signed_url(self, agent_id: str | None = None) -> str:
        self.asked.append(agent_id)
        return (
            f"wss://agents.test/v1/convai/conversation?agent_id={agent_id}&conversation_signature=s"
        )


def flows_dir(tmp_path: Path, reminder: str = REMINDER) -> str:
    (tmp_path / "reminder.yaml").write_text(dedent(reminder), encoding="utf-8")
    return str(tmp_path)


@pytest.fixture
def services(aws: None, tmp_path: Path) -> Services:
    built = build(
        flows_dir=flows_dir(tmp_path),
        elevenlabs_agent_id="agent_default",
        infobip_from_number="+15550001111",
    )
    built.__dict__["elevenlabs"] = AgentUrls()
    zoho(built).fields = (
        "Phone",
        "First_Name",
        "Amount_Due",
        "Company",
        "Interested",
        "Paid",
        "Reminder_Status",
        "Do_Not_Call",
    )
    return built


def start(services: Services, flow: str, session_id: str = "s1", **record: Any) -> Session:
    return trigger.create_session(
        services,
        "Leads",
        "42",
        {**RECORD, **record},
        session_id=session_id,
        flow=services.flows.get(flow),
    )


def test_a_session_carries_its_flows_agent_variables_and_caller_id(services: Services) -> None:
    session = start(services, "reminder")
    assert session.flow == "reminder"
    assert session.agent_id == "agent_reminder"
    assert session.agent_overrides["agent"]["first_message"].startswith("Hello")
    assert session.caller_id == "+15550002222"
    assert set(session.variables) == {"first_name", "amount_due"}
    assert session.max_attempts == 4  # the reminder's most attempts (no answer)


def test_the_trigger_reads_the_flows_fields_from_the_record(services: Services) -> None:
    fields = trigger.record_fields(services, "Leads", services.flows.get("reminder"))
    assert {"Amount_Due", "Paid", "Reminder_Status", "Do_Not_Call"} <= set(fields)
    assert "Interested" not in fields  # the default mapping's, not the reminder's
    assert "Amount_Due" not in trigger.record_fields(services, "Leads")


def test_a_flows_call_is_placed_with_its_caller_id_detection_and_agent(
    services: Services,
) -> None:
    start(services, "reminder")
    start(services, "default", session_id="s2")
    for session_id in ("s1", "s2"):
        calling.prepare(services, {"session_id": session_id})
        calling.place_call(services, {"session_id": session_id}, f"token-{session_id}")
    reminder, default = infobip(services).placed
    assert (reminder["caller_id"], reminder["machine_detection"]) == ("+15550002222", True)
    assert (default["caller_id"], default["machine_detection"]) == ("+15550001111", False)
    urls = services.elevenlabs
    assert isinstance(urls, AgentUrls)
    assert urls.asked == ["agent_reminder", "agent_default"]
    assert "agent_id=agent_reminder" in services.store.require("s1").agent_signed_url


def test_a_flows_calling_hours_hold_its_calls_only(aws: None, tmp_path: Path) -> None:
    today = datetime.now(ZoneInfo(ZONE)).weekday()
    closed = REMINDER + f"hours: {{days: [{(today + 1) % 7}]}}\n"
    services = build(flows_dir=flows_dir(tmp_path, closed))
    start(services, "reminder")
    start(services, "default", session_id="s2")
    assert calling.prepare(services, {"session_id": "s1"})["action"] == calling.WAIT
    assert calling.prepare(services, {"session_id": "s2"})["action"] == calling.CALL


def _ended(services: Services, session_id: str, outcome: Outcome, attempt: int) -> None:
    services.store.advance(
        session_id, SessionStatus.CALL_ENDED, attempt=attempt, fields={"outcome": outcome.value}
    )


def test_a_flows_retry_policy_decides_per_outcome(services: Services) -> None:
    start(services, "reminder")
    start(services, "default", session_id="s2")
    _ended(services, "s1", Outcome.BUSY, attempt=2)
    _ended(services, "s2", Outcome.BUSY, attempt=2)
    assert calling.plan_retry(services, {"session_id": "s1"})["action"] == calling.WRITE_BACK
    assert services.store.require("s1").outcome_detail == "busy on all 2 attempts"
    assert calling.plan_retry(services, {"session_id": "s2"})["action"] == calling.WAIT


def test_a_flows_retry_delay_is_its_own(services: Services) -> None:
    start(services, "reminder")
    _ended(services, "s1", Outcome.NO_ANSWER, attempt=3)
    before = datetime.now(UTC)
    state = calling.plan_retry(services, {"session_id": "s1"})
    assert state["action"] == calling.WAIT
    when = datetime.fromisoformat(state["wait_until"].replace("Z", "+00:00"))
    # 120 s, the reminder's no-answer delay, not the settings' 600 s.
    assert before + timedelta(seconds=119) <= when <= before + timedelta(seconds=130)


def test_a_flows_opt_out_field_stops_the_dial(services: Services) -> None:
    start(services, "reminder", Do_Not_Call=True)
    start(services, "default", session_id="s2", Do_Not_Call=True)
    assert calling.prepare(services, {"session_id": "s1"})["action"] == calling.WRITE_BACK
    assert services.store.require("s1").outcome is Outcome.SUPPRESSED
    # The default flow names no opt-out field: the same record is dialled there.
    assert calling.prepare(services, {"session_id": "s2"})["action"] == calling.CALL


def test_a_flows_caps_are_its_own(services: Services) -> None:
    rules = services.flows.get("reminder").contact_rules
    assert (rules.record_cap, rules.number_cap) == (1, 3)
    assert (rules.optout_field, rules.optout_item) == ("Do_Not_Call", "stop_calls")
    assert services.contact_rules.record_cap == 3  # the default flow's, from the settings


def _answered(services: Services, session_id: str, collected: dict[str, Any]) -> None:
    services.store.advance(
        session_id,
        SessionStatus.CALL_ENDED,
        attempt=1,
        fields={
            "outcome": Outcome.ANSWERED.value,
            "call_duration": 30,
            "conversation_id": f"conv-{session_id}",
            "phone": "+14155550100",
            "call_answered_at": "2026-12-01T15:00:00.000Z",
            "results": {"status": "done", "summary": "Paid.", "data_collection": collected},
        },
    )


def test_a_flows_session_is_written_with_its_mapping_and_outcome_values(
    services: Services,
) -> None:
    start(services, "reminder")
    _answered(services, "s1", {"paid": True, "interested": True})
    assert writeback.write_back(services, "s1")["status"] == "completed"
    [update] = zoho(services).updates
    assert update == {"Paid": True, "Reminder_Status": "Reminded"}


def test_a_flows_collected_opt_out_sets_its_field(services: Services) -> None:
    start(services, "reminder")
    _answered(services, "s1", {"paid": False, "stop_calls": "yes"})
    writeback.write_back(services, "s1")
    [update] = zoho(services).updates
    assert update["Do_Not_Call"] is True and update["Paid"] is False
    assert services.suppressions.get("+14155550100") is not None


def test_a_flow_that_records_makes_recorded_sessions_where_there_is_a_bucket(
    aws: None, tmp_path: Path
) -> None:
    recorded = REMINDER + "recording: {enabled: true, max_seconds: 120}\n"
    for bucket, expected in (("recordings-bucket", (True, 120)), ("", (False, 0))):
        services = build(flows_dir=flows_dir(tmp_path, recorded), recording_bucket=bucket)
        services.__dict__["elevenlabs"] = AgentUrls()
        session = start(services, "reminder", session_id=f"s-{bool(bucket)}")
        assert (session.record_audio, session.recording_max_seconds) == expected
        default = start(services, "", session_id=f"d-{bool(bucket)}")
        assert default.record_audio is False  # the settings' default flow does not record


def test_a_flow_inherits_the_settings_recording_unless_it_says(aws: None, tmp_path: Path) -> None:
    services = build(
        flows_dir=flows_dir(tmp_path), recording_enabled=True, recording_bucket="recordings"
    )
    assert services.flows.get("reminder").spec.recording.enabled is True
    unrecorded = REMINDER + "recording: {enabled: false}\n"
    services = build(
        flows_dir=flows_dir(tmp_path, unrecorded), recording_enabled=True, recording_bucket="r"
    )
    assert services.flows.get("reminder").spec.recording.enabled is False
    assert services.flows.default.spec.recording.enabled is True
