"""Number fallback: a flow's ``phone_fields`` are tried in order; the next number is dialled
when one is invalid, or unreachable once its retry rule is spent; each attempt records the field
it dialled, and the note says which number reached the person."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from callflow.lifecycle import calling, trigger, writeback
from callflow.models import Outcome, Session, SessionStatus
from callflow.services import Services

from .test_flow_consumers import AgentUrls
from .test_workflow_decisions import aws, build, infobip, zoho

__all__ = ["aws"]  # the fixture, used by name

FLOW = """\
agent: {agent_id: agent_fallback}
phone_fields: [Phone, Mobile]
retry:
  no_answer: {attempts: 2, delay_seconds: 60}
"""
PHONE, MOBILE = "(415) 555-0100", "(415) 555-0199"


@pytest.fixture
def services(aws: None, tmp_path: Path) -> Services:
    (tmp_path / "fallback.yaml").write_text(dedent(FLOW), encoding="utf-8")
    built = build(flows_dir=str(tmp_path), default_flow="fallback")
    built.__dict__["elevenlabs"] = AgentUrls()
    zoho(built).fields = ("Phone", "Mobile", "First_Name", "Interested")
    return built


def start(services: Services, **record: Any) -> Session:
    return trigger.create_session(
        services, "Leads", "42", {"Phone": PHONE, "Mobile": MOBILE, **record}, session_id="s1"
    )


def _ended(services: Services, outcome: Outcome, attempt: int) -> None:
    services.store.advance(
        "s1", SessionStatus.CALL_ENDED, attempt=attempt, fields={"outcome": outcome.value}
    )


def test_the_trigger_reads_every_phone_field_and_keeps_them_in_order(services: Services) -> None:
    assert {"Phone", "Mobile"} <= set(trigger.record_fields(services, "Leads"))
    session = start(services)
    assert [n["field"] for n in session.phone_numbers] == ["Phone", "Mobile"]
    assert (session.phone_field, session.phone_raw) == ("Phone", PHONE)
    assert session.max_attempts == 6  # the most attempts of any outcome, per number


def test_an_empty_first_field_starts_on_the_next(services: Services) -> None:
    session = start(services, Phone="")
    assert (session.phone_field, session.phone_raw) == ("Mobile", MOBILE)


def test_an_invalid_number_is_skipped_for_the_next_field(services: Services) -> None:
    start(services, Phone="not a number")
    assert calling.prepare(services, {"session_id": "s1"})["action"] == calling.CALL
    session = services.store.require("s1")
    assert (session.phone, session.phone_field) == ("+14155550199", "Mobile")


def test_a_record_without_a_valid_number_is_invalid_phone(services: Services) -> None:
    start(services, Phone="nope", Mobile="12")
    assert calling.prepare(services, {"session_id": "s1"})["action"] == calling.WRITE_BACK
    assert services.store.require("s1").outcome is Outcome.INVALID_PHONE


def test_an_unreachable_number_gives_way_to_the_next_after_its_attempts(
    services: Services,
) -> None:
    start(services)
    calling.prepare(services, {"session_id": "s1"})
    _ended(services, Outcome.NO_ANSWER, attempt=1)
    assert calling.plan_retry(services, {"session_id": "s1"})["action"] == calling.WAIT
    assert services.store.require("s1").phone_field == "Phone"  # its second attempt

    _ended(services, Outcome.NO_ANSWER, attempt=2)
    assert calling.plan_retry(services, {"session_id": "s1"})["action"] == calling.WAIT
    session = services.store.require("s1")
    assert (session.attempt, session.phone, session.phone_field) == (3, "+14155550199", "Mobile")
    assert session.phone_from_attempt == 3

    _ended(services, Outcome.NO_ANSWER, attempt=3)
    assert calling.plan_retry(services, {"session_id": "s1"})["action"] == calling.WAIT
    _ended(services, Outcome.NO_ANSWER, attempt=4)
    assert calling.plan_retry(services, {"session_id": "s1"})["action"] == calling.WRITE_BACK
    assert services.store.require("s1").outcome_detail == "no_answer on all 4 attempts"


@pytest.mark.parametrize("outcome", [Outcome.BUSY, Outcome.FAILED])
def test_busy_and_failed_numbers_fall_back_too(services: Services, outcome: Outcome) -> None:
    start(services)
    calling.prepare(services, {"session_id": "s1"})
    _ended(services, outcome, attempt=3 if outcome is Outcome.BUSY else 1)
    assert calling.plan_retry(services, {"session_id": "s1"})["action"] == calling.WAIT
    assert services.store.require("s1").phone_field == "Mobile"


def test_a_rejected_call_does_not_try_the_next_number(services: Services) -> None:
    start(services)
    calling.prepare(services, {"session_id": "s1"})
    _ended(services, Outcome.REJECTED, attempt=1)
    assert calling.plan_retry(services, {"session_id": "s1"})["action"] == calling.WRITE_BACK
    assert services.store.require("s1").phone_field == "Phone"


def test_each_attempt_records_its_field_and_the_note_names_the_number_that_reached(
    services: Services,
) -> None:
    start(services)
    calling.prepare(services, {"session_id": "s1"})
    calling.place_call(services, {"session_id": "s1"}, "t1")
    _ended(services, Outcome.FAILED, attempt=1)
    calling.plan_retry(services, {"session_id": "s1"})
    calling.place_call(services, {"session_id": "s1"}, "t2")
    assert [c["to"] for c in infobip(services).placed] == ["14155550100", "14155550199"]
    assert services.store.require("s1").attempt_numbers == {"1": "Phone", "2": "Mobile"}

    services.store.advance(
        "s1",
        SessionStatus.CALL_ENDED,
        attempt=2,
        fields={
            "outcome": Outcome.ANSWERED.value,
            "conversation_id": "conv-1",
            "results": {"status": "done", "summary": "Talked.", "data_collection": {}},
        },
    )
    writeback.write_back(services, "s1")
    [(_, note)] = zoho(services).notes
    assert "Reached on: Mobile (+********199)" in note
    assert "555-0199" not in note and "5550199" not in note
