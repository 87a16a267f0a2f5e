"""Callbacks: the collected time parsed (or refused with a reason, scheduling nothing), clamped
into calling hours, scheduled once however often the writeback runs, waited for by Prepare, and
counted against the frequency caps at admission like any dial.

The session store is an in-process moto; Step Functions is a fake that keeps each execution by
name and refuses a second start of one name as Step Functions does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from callflow.callbacks.schedule import (
    CallbackRefused,
    callback_session_id,
    callback_time,
    schedule,
)
from callflow.lifecycle import admission, calling, writeback
from callflow.models import Outcome, Session, SessionStatus, iso, utcnow
from callflow.services import Services
from callflow_dev.local.aws import _serialise_dynamodb_writes
from tests.unit.test_workflow_decisions import build

ZONE = "America/New_York"


@dataclass
class FakeSfn:
    """Executions by name; a second start of a name is ``ExecutionAlreadyExists``."""

    started: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: int = 0

    def start_execution(self, stateMachineArn: str, name: str, input: str) -> dict[str, str]:
        self.attempts += 1
        if name in self.started:
            raise ClientError(
                {"Error": {"Code": "ExecutionAlreadyExists", "Message": "exists"}},
                "StartExecution",
            )
        self.started[name] = {"input": input, "state_machine": stateMachineArn}
        return {"executionArn": f"arn:aws:states:::execution:call:{name}"}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    from callflow_dev.local.aws import create_table

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    _serialise_dynamodb_writes()
    with mock_aws():
        create_table("decisions", "us-east-1")
        yield


def make(aws: None, **settings: Any) -> Services:
    values = {"state_machine_arn": "arn:aws:states:::stateMachine:call", **settings}
    services = build(**values)
    services.__dict__["sfn"] = FakeSfn()
    return services


def sfn(services: Services) -> FakeSfn:
    fake = services.sfn
    assert isinstance(fake, FakeSfn)
    return fake


def asked(services: Services, value: Any, session_id: str = "s1") -> Session:
    services.store.create(
        Session(
            session_id=session_id,
            module="Leads",
            record_id="42",
            phone_raw="(415) 555-0100",
            timezone=ZONE,
            variables={"First_Name": "Maria"},
        )
    )
    updated = services.store.set_fields(
        session_id,
        {
            "outcome": Outcome.ANSWERED.value,
            "call_answered_at": iso(utcnow()),
            "call_duration": 20,
            "results": {"status": "done", "data_collection": {"callback_at": value}},
        },
    )
    assert updated is not None
    return updated


# --- the time ---------------------------------------------------------------------------------


def test_iso_times_with_an_offset_or_z_are_taken_as_given() -> None:
    assert callback_time("2026-12-04T15:00:00Z", ZONE) == datetime(2026, 12, 4, 15, tzinfo=UTC)
    assert callback_time("2026-12-04T10:00:00-05:00", ZONE) == datetime(2026, 12, 4, 15, tzinfo=UTC)


def test_a_time_without_an_offset_is_the_persons_local_time() -> None:
    assert callback_time("2026-12-04T10:00", ZONE) == datetime(2026, 12, 4, 15, tzinfo=UTC)
    assert callback_time("2026-07-04T10:00", ZONE) == datetime(2026, 7, 4, 14, tzinfo=UTC)


@pytest.mark.parametrize("value", ["tomorrow at 3", "", "  ", 1764860400, None, True, "2026-13-01"])
def test_anything_else_is_refused(value: Any) -> None:
    with pytest.raises(CallbackRefused):
        callback_time(value, ZONE)


def test_an_unreadable_time_schedules_nothing_and_says_why(aws: None) -> None:
    services = make(aws)
    session = asked(services, "when I'm back from lunch")
    receipt = schedule(services, session)
    assert receipt["callback"]["refused"].startswith("not an ISO 8601 time")
    assert sfn(services).started == {}
    assert services.store.get(callback_session_id("s1")) is None


def test_a_past_time_schedules_nothing(aws: None) -> None:
    services = make(aws)
    session = asked(services, iso(utcnow() - timedelta(minutes=5)))
    assert schedule(services, session)["callback"]["refused"] == "the time is in the past"
    assert sfn(services).started == {}


def test_a_time_too_far_ahead_schedules_nothing(aws: None) -> None:
    services = make(aws, callback_max_days=7)
    session = asked(services, iso(utcnow() + timedelta(days=8)))
    assert schedule(services, session)["callback"]["refused"] == "more than 7 days ahead"


def test_no_callback_asked_is_no_receipt(aws: None) -> None:
    services = make(aws)
    assert schedule(services, asked(services, "")) == {}


# --- scheduling ---------------------------------------------------------------------------------


def test_a_time_outside_calling_hours_is_moved_to_the_next_opening(aws: None) -> None:
    services = make(aws, calling_hours_start="09:00", calling_hours_end="20:00")
    now = datetime(2026, 12, 3, 18, tzinfo=UTC)  # 13:00 in New York, a Thursday
    session = asked(services, "2026-12-03T21:30")  # 21:30 local: after hours
    receipt = schedule(services, session, now=now)
    assert receipt["callback"]["at"] == "2026-12-04T14:00:00.000Z"  # Friday 09:00 local
    callback = services.store.require(callback_session_id("s1"))
    assert callback.not_before == "2026-12-04T14:00:00.000Z"
    assert callback.callback_of == "s1" and callback.record_id == "42"
    assert callback.variables == {"First_Name": "Maria"} and callback.timezone == ZONE


def test_a_retried_writeback_never_schedules_twice(aws: None) -> None:
    services = make(aws)
    session = asked(services, iso(utcnow() + timedelta(hours=2)))
    first = schedule(services, session)
    second = schedule(services, session)
    assert first == second
    assert list(sfn(services).started) == [callback_session_id("s1")]
    assert sfn(services).attempts == 2  # the second start was refused, not a second execution


def test_the_writeback_schedules_it_and_the_note_says_when(aws: None) -> None:
    services = make(aws)
    wanted = utcnow() + timedelta(days=1)
    asked(services, iso(wanted))
    services.store.advance("s1", SessionStatus.CALL_ENDED, attempt=1)
    writeback.write_back(services, "s1")
    receipt = services.store.require("s1").writeback
    assert receipt["callback"]["session_id"] == callback_session_id("s1")
    [(_, note)] = services.zoho.notes  # type: ignore[attr-defined]
    assert "Callback: asked for" in note and "the call is scheduled for" in note
    # A replay of the completed writeback schedules nothing more.
    writeback.write_back(services, "s1")
    assert len(sfn(services).started) == 1


def test_a_refused_callback_is_in_the_note(aws: None) -> None:
    services = make(aws)
    asked(services, "next week sometime")
    services.store.advance("s1", SessionStatus.CALL_ENDED, attempt=1)
    writeback.write_back(services, "s1")
    [(_, note)] = services.zoho.notes  # type: ignore[attr-defined]
    assert "Callback: asked for 'next week sometime', not scheduled: not an ISO 8601" in note


def test_the_shortened_wait_is_a_setting(aws: None) -> None:
    services = make(aws, callback_max_wait_seconds=5)
    now = utcnow()
    session = asked(services, iso(now + timedelta(hours=3)))
    receipt = schedule(services, session, now=now)
    assert receipt["callback"]["at"] == iso(now + timedelta(seconds=5))


# --- the callback's call ------------------------------------------------------------------------


def test_prepare_waits_for_the_callbacks_time(aws: None) -> None:
    services = make(aws)
    session = asked(services, iso(utcnow() + timedelta(hours=2)))
    at = schedule(services, session)["callback"]["at"]
    state = calling.prepare(services, {"session_id": callback_session_id("s1")})
    assert state["action"] == calling.WAIT and state["wait_until"] == at
    assert services.store.require(callback_session_id("s1")).status is SessionStatus.SCHEDULED


def test_a_due_callback_is_called_at_once(aws: None) -> None:
    services = make(aws)
    services.store.create(
        Session(
            session_id="cb",
            module="Leads",
            record_id="42",
            phone_raw="(415) 555-0100",
            not_before=iso(utcnow() - timedelta(seconds=1)),
        )
    )
    assert calling.prepare(services, {"session_id": "cb"})["action"] == calling.CALL


def test_a_callback_never_skips_for_being_outside_hours(aws: None) -> None:
    services = make(aws, outside_hours_policy="skip")
    session = asked(services, iso(utcnow() + timedelta(hours=2)))
    schedule(services, session)
    state = calling.prepare(services, {"session_id": callback_session_id("s1")})
    assert state["action"] == calling.WAIT


def test_the_callback_counts_against_the_cap_and_says_so(aws: None) -> None:
    services = make(aws, cap_attempts_per_record=1, cap_attempts_per_number=0)
    asked(services, iso(utcnow() + timedelta(seconds=1)))
    # The first call's dial was counted when it was admitted.
    assert calling.prepare(services, {"session_id": "s1"})["action"] == calling.CALL
    assert admission.admit(services, {"session_id": "s1"})["action"] == admission.DIAL
    schedule(services, services.store.require("s1"), now=utcnow() - timedelta(seconds=2))
    callback = callback_session_id("s1")
    services.store.set_fields(callback, {"not_before": iso(utcnow())})
    assert calling.prepare(services, {"session_id": callback})["action"] == calling.CALL
    state = admission.admit(services, {"session_id": callback})
    assert state["action"] == calling.WRITE_BACK
    capped = services.store.require(callback)
    assert capped.outcome is Outcome.CAPPED and "1 calls in 24 h" in capped.outcome_detail


def test_without_a_call_workflow_to_start_the_callback_is_refused_not_failed(aws: None) -> None:
    services = make(aws, state_machine_arn="")
    session = asked(services, iso(utcnow() + timedelta(hours=2)))
    receipt = schedule(services, session)
    assert receipt["callback"]["refused"].startswith("callbacks are not configured here")
    assert services.store.get(callback_session_id("s1")) is None


def test_the_callback_starts_on_the_workflow_the_writeback_runs_in(aws: None) -> None:
    services = make(aws, state_machine_arn="")
    session = asked(services, iso(utcnow() + timedelta(hours=2)))
    running = "arn:aws:states:eu-west-1:123456789012:stateMachine:callflow-prod-call"
    receipt = schedule(services, session, workflow_arn=running)
    assert receipt["callback"]["session_id"] == callback_session_id("s1")
    started = sfn(services).started
    assert [e["state_machine"] for e in started.values()] == [running]


def test_a_flow_names_its_own_callback_item_and_horizon(aws: None, tmp_path: Any) -> None:
    (tmp_path / "later.yaml").write_text(
        "agent: {agent_id: agent_later}\n"
        "callback: {item: call_me_at, max_days: 1, task: true, task_subject: Ring back}\n"
    )
    services = make(aws, flows_dir=str(tmp_path))
    flow = services.flows.get("later")
    rules = flow.callback_rules(services.callback_rules)
    assert (rules.item, rules.max_days, rules.task, rules.task_subject) == (
        "call_me_at",
        1,
        True,
        "Ring back",
    )
    default = services.flows.default.callback_rules(services.callback_rules)
    assert (default.item, default.task) == ("callback_at", False)
    # A session of that flow: callback_at is not its item, so nothing is scheduled...
    session = asked(services, iso(utcnow() + timedelta(hours=2)))
    flowed = services.store.set_fields("s1", {"flow": "later"})
    assert flowed is not None and schedule(services, flowed) == {}
    # ...and the default flow's session schedules from callback_at as before.
    assert schedule(services, session)["callback"]["session_id"] == callback_session_id("s1")
