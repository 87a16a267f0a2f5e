"""The workflow's decisions, one by one, without sockets: attempt planning, retry planning, error
routing, writeback receipts and rejected records.

Each test runs the real lifecycle function against the session store on an in-process moto and
small fakes of the provider clients and Step Functions, so a regression shows here in
milliseconds rather than in a socket run of the whole stack.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from moto import mock_aws

from callflow.config import Settings
from callflow.lifecycle import calling, writeback
from callflow.lifecycle.workflow import error_cause
from callflow.models import Outcome, Session, SessionStatus
from callflow.providers.errors import ProviderRejected, RetryableProviderError
from callflow.providers.infobip.calls import CallInfo, DialogInfo
from callflow.providers.zoho.client import WriteResult, ZohoField
from callflow.services import Services
from callflow_dev.local.aws import create_table

ZONE = "America/Los_Angeles"
"""The time zone of the 415 numbers the sessions dial (found from the number)."""


@dataclass
class FakeInfobip:
    placed: list[dict[str, Any]] = field(default_factory=list)
    hung_up: list[str] = field(default_factory=list)

    def place_call(
        self,
        phone_number: str,
        *,
        custom_data: dict[str, str],
        external_id: str,
        caller_id: str = "",
        machine_detection: bool | None = None,
    ) -> CallInfo:
        self.placed.append(
            {
                "to": phone_number,
                "custom_data": custom_data,
                "id": external_id,
                "caller_id": caller_id,
                "machine_detection": machine_detection,
            }
        )
        return CallInfo(id=f"call-{len(self.placed)}", state="CALLING")

    def hangup_call(self, call_id: str, error_code: str = "") -> bool:
        self.hung_up.append(call_id)
        return True

    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What ``GET /calls/1/calls/{id}`` answers, by call id (absent: 404)."""

    def get_call(self, call_id: str) -> dict[str, Any]:
        if call_id not in self.calls:
            raise ProviderRejected("infobip", "call not found", status=404)
        return self.calls[call_id]

    dialogs: list[str] = field(default_factory=list)
    """The parent call ids dialogs were requested for."""

    def create_dialog(self, parent_call_id: str, *, custom_data: dict[str, str]) -> DialogInfo:
        self.dialogs.append(parent_call_id)
        return DialogInfo(id=f"dialog-{len(self.dialogs)}", state="CREATED")

    def find_dialog(self, parent_call_id: str) -> DialogInfo | None:
        """The dialog made for the call, if any (one per call here)."""
        if parent_call_id not in self.dialogs:
            return None
        return DialogInfo(id=f"dialog-{self.dialogs.index(parent_call_id) + 1}", state="CREATED")


@dataclass
class FakeElevenLabs:
    """The signed-URL endpoint: a URL per request, or ``failure`` raised."""

    failure: Exception | None = None
    issued: list[str] = field(default_factory=list)

    def get_signed_url(self, agent_id: str | None = None) -> str:
        if self.failure is not None:
            raise self.failure
        self.issued.append(
            f"wss://agents.test/v1/convai/conversation?conversation_signature=s{len(self.issued)}"
        )
        return self.issued[-1]


@dataclass
class FakeSfn:
    """Step Functions' task-token API: the outputs each token was resumed with."""

    resumed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def send_task_success(self, *, taskToken: str, output: str) -> None:
        self.resumed[taskToken] = json.loads(output)


@dataclass
class FakeZoho:
    updates: list[dict[str, Any]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    refuse_update: str = ""
    fail_notes: int = 0
    """Notes refused (5xx) before they are saved."""
    lose_note_answers: int = 0
    """Notes saved, then answered 5xx: the writeback cannot know they exist."""
    lookups: int = 0
    fields: tuple[str, ...] = ("Interested", "Monthly_Bill", "Site_Visit_Date", "Lead_Status")
    """The fields the record's module has (its field metadata)."""

    def module_fields(self, module: str) -> dict[str, ZohoField]:
        return {name: ZohoField(name, "text") for name in self.fields}

    def update_record_dropping_invalid(
        self, module: str, record_id: str, data: dict[str, Any]
    ) -> WriteResult:
        if self.refuse_update:
            raise ProviderRejected("zoho", self.refuse_update, status=400)
        self.updates.append(dict(data))
        return WriteResult(True, record_id, "SUCCESS")

    def add_note(self, module: str, record_id: str, title: str, content: str) -> str:
        if self.fail_notes:
            self.fail_notes -= 1
            raise RetryableProviderError("zoho", "503", status=503)
        self.notes.append((title, content))
        if self.lose_note_answers:
            self.lose_note_answers -= 1
            raise RetryableProviderError("zoho", "500 after saving", status=500)
        return f"note-{len(self.notes)}"

    def log_call(self, module: str, record_id: str, **fields: Any) -> str:
        self.calls.append(fields)
        return f"calllog-{len(self.calls)}"

    def find_note(self, module: str, record_id: str, marker: str) -> str | None:
        self.lookups += 1
        for index, (_, content) in enumerate(self.notes, start=1):
            if marker in content:
                return f"note-{index}"
        return None

    def find_call(self, module: str, record_id: str, marker: str) -> str | None:
        self.lookups += 1
        for index, fields in enumerate(self.calls, start=1):
            if marker in fields["description"]:
                return f"calllog-{index}"
        return None


def build(**overrides: Any) -> Services:
    values: dict[str, Any] = {
        "table_name": "decisions",
        "aws_region": "us-east-1",
        "default_timezone": ZONE,
        "calling_hours_start": "00:00",
        "calling_hours_end": "24:00",
        "calling_days": "0,1,2,3,4,5,6",
        "retry_delay_seconds": 600,
    }
    settings = Settings(**{**values, **overrides})
    services = Services(settings)
    # cached_property reads the instance dict first: these stand in for the real clients.
    services.__dict__["infobip"] = FakeInfobip()
    services.__dict__["zoho"] = FakeZoho()
    services.__dict__["sfn"] = None
    return services


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        create_table("decisions", "us-east-1")
        yield


@pytest.fixture
def services(aws: None) -> Services:
    return build()


def new_session(services: Services, phone: str = "(415) 555-0100", **fields: Any) -> Session:
    return services.store.create(
        Session(session_id="s1", module="Leads", record_id="42", phone_raw=phone, **fields)
    )


def infobip(services: Services) -> FakeInfobip:
    fake = services.infobip
    assert isinstance(fake, FakeInfobip)
    return fake


def zoho(services: Services) -> FakeZoho:
    fake = services.zoho
    assert isinstance(fake, FakeZoho)
    return fake


# --- attempt planning -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "attempt", "call_id", "dialled"),
    [
        (SessionStatus.CREATED, 0, "", 1),
        (SessionStatus.SCHEDULED, 2, "", 2),  # the attempt it was scheduled for
        (SessionStatus.DIALING, 2, "", 2),  # placing failed before Infobip took it: same attempt
        (SessionStatus.DIALING, 2, "call-9", 3),
        (SessionStatus.CALL_ENDED, 1, "call-9", 2),
    ],
)
def test_attempt_to_place(status: SessionStatus, attempt: int, call_id: str, dialled: int) -> None:
    session = Session(
        session_id="s", module="Leads", record_id="1", status=status, attempt=attempt
    ).model_copy(update={"call_id": call_id})
    assert calling.attempt_to_place(session) == dialled


def test_a_retried_placement_dials_the_same_attempt_once_more(services: Services) -> None:
    new_session(services)
    calling.prepare(services, {"session_id": "s1"})
    services.store.advance("s1", SessionStatus.DIALING, attempt=1)  # placed, then Infobip failed
    placed = calling.place_call(services, {"session_id": "s1"}, "token-2")
    assert placed["attempt"] == 1
    assert infobip(services).placed[-1]["id"] == "s1-1"
    assert services.store.require("s1").task_token == "token-2"


def test_a_call_is_placed_with_the_session_and_attempt_in_custom_data(services: Services) -> None:
    new_session(services)
    calling.prepare(services, {"session_id": "s1"})
    result = calling.place_call(services, {"session_id": "s1"}, "token-1")
    assert result == {"placed": True, "call_id": "call-1", "attempt": 1}
    [call] = infobip(services).placed
    assert call["to"] == "14155550100"
    assert call["custom_data"] == {"session_id": "s1", "attempt": "1"}
    session = services.store.require("s1")
    assert session.status is SessionStatus.DIALING and session.call_id == "call-1"


def test_a_placed_call_keeps_a_signed_url_for_the_bridge(services: Services) -> None:
    eleven = services.__dict__["elevenlabs"] = FakeElevenLabs()
    new_session(services)
    calling.prepare(services, {"session_id": "s1"})
    before = time.time()
    calling.place_call(services, {"session_id": "s1"}, "token-1")
    session = services.store.require("s1")
    assert session.agent_signed_url == eleven.issued[-1]
    assert before - 1 <= session.agent_signed_url_at <= time.time()
    assert session.call_id == "call-1"


def test_a_call_is_placed_without_a_signed_url_when_elevenlabs_gives_none(
    services: Services,
) -> None:
    eleven = services.__dict__["elevenlabs"] = FakeElevenLabs()
    new_session(services)
    calling.prepare(services, {"session_id": "s1"})
    calling.place_call(services, {"session_id": "s1"}, "token-1")
    assert services.store.require("s1").agent_signed_url  # the first attempt's
    services.store.advance("s1", SessionStatus.SCHEDULED, attempt=2)
    eleven.failure = RetryableProviderError("elevenlabs", "503 from the API", status=503)

    result = calling.place_call(services, {"session_id": "s1"}, "token-2")

    assert result["placed"] is True and result["attempt"] == 2
    session = services.store.require("s1")
    # The first attempt's URL is spent (single use): the bridge must fetch one itself.
    assert session.agent_signed_url == "" and session.agent_signed_url_at == 0
    assert session.call_id == "call-2"


def test_a_session_that_moved_on_is_not_dialled(services: Services) -> None:
    new_session(services)
    services.store.advance("s1", SessionStatus.COLLECTING)
    assert calling.place_call(services, {"session_id": "s1"}, "t") == {"placed": False}
    assert infobip(services).placed == []


# --- prepare: phone and calling hours ---------------------------------------------------------


def test_an_invalid_phone_goes_straight_to_the_writeback(services: Services) -> None:
    new_session(services, phone="not a number")
    state = calling.prepare(services, {"session_id": "s1"})
    assert state["action"] == calling.WRITE_BACK
    assert services.store.require("s1").outcome is Outcome.INVALID_PHONE


def test_inside_calling_hours_the_call_is_placed_now(services: Services) -> None:
    new_session(services)
    state = calling.prepare(services, {"session_id": "s1"})
    assert state["action"] == calling.CALL
    session = services.store.require("s1")
    assert session.phone == "+14155550100" and session.timezone == ZONE


def _closed_today() -> str:
    today = datetime.now(ZoneInfo(ZONE)).weekday()
    return ",".join(str(d) for d in range(7) if d != today)


def test_outside_calling_hours_the_call_waits_for_the_next_opening(aws: None) -> None:
    services = build(calling_days=_closed_today())
    new_session(services)
    state = calling.prepare(services, {"session_id": "s1"})
    assert state["action"] == calling.WAIT
    opening = datetime.fromisoformat(state["wait_until"].replace("Z", "+00:00"))
    assert opening.astimezone(ZoneInfo(ZONE)).weekday() != datetime.now(ZoneInfo(ZONE)).weekday()
    session = services.store.require("s1")
    assert session.status is SessionStatus.SCHEDULED and session.attempt == 1


def test_outside_calling_hours_with_skip_writes_back_outside_hours(aws: None) -> None:
    services = build(calling_days=_closed_today(), outside_hours_policy="skip")
    new_session(services)
    assert calling.prepare(services, {"session_id": "s1"})["action"] == calling.WRITE_BACK
    assert services.store.require("s1").outcome is Outcome.OUTSIDE_HOURS


# --- retry planning and error routing ---------------------------------------------------------


def _ended(services: Services, outcome: Outcome, attempt: int = 1) -> None:
    new_session(services, max_attempts=3)
    services.store.advance(
        "s1", SessionStatus.CALL_ENDED, attempt=attempt, fields={"outcome": outcome.value}
    )


def test_busy_with_attempts_left_schedules_the_next_attempt_after_the_delay(
    services: Services,
) -> None:
    _ended(services, Outcome.BUSY)
    before = datetime.now(UTC)
    state = calling.plan_retry(services, {"session_id": "s1", "call": {"outcome": "busy"}})
    assert state["action"] == calling.WAIT
    when = datetime.fromisoformat(state["wait_until"].replace("Z", "+00:00"))
    assert when >= before + timedelta(seconds=600)
    session = services.store.require("s1")
    assert session.status is SessionStatus.SCHEDULED and session.attempt == 2


def test_no_answer_on_the_last_attempt_gives_up_and_says_so(services: Services) -> None:
    _ended(services, Outcome.NO_ANSWER, attempt=3)
    state = calling.plan_retry(services, {"session_id": "s1", "call": {"outcome": "no_answer"}})
    assert state["action"] == calling.WRITE_BACK
    assert services.store.require("s1").outcome_detail == "no_answer on all 3 attempts"


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.REJECTED, Outcome.MACHINE])
def test_outcomes_that_are_not_retried_go_to_the_writeback(
    services: Services, outcome: Outcome
) -> None:
    _ended(services, outcome)
    state = calling.plan_retry(services, {"session_id": "s1", "call": {"outcome": outcome.value}})
    assert state["action"] == calling.WRITE_BACK
    assert services.store.require("s1").status is SessionStatus.CALL_ENDED


TIMEOUT = {"Error": "States.Timeout", "Cause": ""}


def _dialled(services: Services, call: dict[str, Any] | None = None) -> None:
    """Session s1 dialled on attempt 1 as call-7; Infobip reports ``call`` for it."""
    new_session(services, max_attempts=3)
    services.store.advance("s1", SessionStatus.DIALING, attempt=1, fields={"call_id": "call-7"})
    if call is not None:
        infobip(services).calls["call-7"] = call


def _first_check(services: Services, **state: Any) -> dict[str, Any]:
    """The state PlanAfterError hands over when PlaceCall's first wait (``call_wait``) ran out."""
    placed = calling.next_state(services, "s1", calling.CALL)
    return calling.plan_retry(services, {**placed, **state, "error": TIMEOUT})


def test_the_first_check_comes_at_the_connect_timeout_plus_a_margin() -> None:
    state = calling.next_state(build(infobip_connect_timeout=40), "s1", calling.CALL)
    assert state["call_wait"] == 40 + 15 < state["outcome_timeout"]
    short = build(infobip_connect_timeout=40, call_outcome_timeout_seconds=20)
    assert calling.next_state(short, "s1", calling.CALL)["call_wait"] == 20


def test_a_call_whose_answer_event_was_lost_gets_its_dialog_when_checked(
    services: Services,
) -> None:
    _dialled(services, {"state": "ESTABLISHED", "answerTime": "2026-12-01T15:00:05.000+0000"})
    state = _first_check(services)
    assert state["action"] == calling.WATCH
    session = services.store.require("s1")
    assert session.status is SessionStatus.IN_CALL and session.dialog_requested
    assert infobip(services).dialogs == ["call-7"] and infobip(services).hung_up == []
    # Waited for until the outcome timeout after dialling, not hung up.
    assert state["call_wait"] == state["outcome_timeout"] - calling.first_check_after(services)
    assert [e.event for e in session.timeline][-1] == "call checked"


def test_a_checked_call_whose_dialog_was_requested_gets_no_second_one(
    services: Services,
) -> None:
    _dialled(services, {"state": "ESTABLISHED"})
    services.store.advance(
        "s1", SessionStatus.IN_CALL, attempt=1, fields={"dialog_requested": True}
    )
    assert _first_check(services)["action"] == calling.WATCH
    assert infobip(services).dialogs == []


def test_a_call_still_ringing_is_checked_again_a_bounded_number_of_times(
    services: Services,
) -> None:
    _dialled(services, {"state": "RINGING"})
    state = _first_check(services)
    for checks in range(1, calling.MAX_RINGING_CHECKS + 1):
        assert state["action"] == calling.WATCH and state["ringing_checks"] == checks
        assert state["call_wait"] == services.settings.call_check_margin_seconds
        state = calling.plan_retry(services, {**state, "error": TIMEOUT})
    # Still ringing past the bound: hung up, and the session ends with the reconciled outcome.
    assert state["action"] == calling.WRITE_BACK
    assert infobip(services).hung_up == ["call-7"]
    assert services.store.require("s1").outcome is Outcome.TIMEOUT


def test_a_call_found_ended_at_the_check_is_planned_like_any_other(services: Services) -> None:
    _dialled(services, {"state": "NO_ANSWER"})
    assert _first_check(services)["action"] == calling.WAIT
    assert services.store.require("s1").attempt == 2


def test_a_check_past_the_deadline_hangs_up_a_live_call(services: Services) -> None:
    _dialled(services, {"state": "ESTABLISHED", "answerTime": "2026-12-01T15:00:05.000+0000"})
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert _first_check(services, call_deadline=past)["action"] == calling.COLLECT
    assert infobip(services).hung_up == ["call-7"]


def test_watching_again_resumes_at_once_when_the_outcome_came_in_between(
    services: Services,
) -> None:
    sfn = FakeSfn()
    services.__dict__["sfn"] = sfn
    _dialled(services)
    services.store.advance(
        "s1",
        SessionStatus.CALL_ENDED,
        attempt=1,
        fields={"outcome": Outcome.ANSWERED.value, "call_duration": 42},
    )
    assert calling.watch_call(services, {"session_id": "s1"}, "token-2") == {"watching": True}
    assert sfn.resumed == {"token-2": {"outcome": "answered", "attempt": 1, "duration": 42}}
    assert services.store.require("s1").task_token == "token-2"


def test_watching_a_live_call_stores_the_token_for_the_end_event(services: Services) -> None:
    sfn = FakeSfn()
    services.__dict__["sfn"] = sfn
    _dialled(services)
    calling.watch_call(services, {"session_id": "s1"}, "token-2")
    assert sfn.resumed == {} and services.store.require("s1").task_token == "token-2"


def test_a_call_whose_end_event_was_lost_is_reconciled_and_collected(services: Services) -> None:
    _dialled(
        services,
        {
            "state": "FINISHED",
            "answerTime": "2026-12-01T15:00:05.000+0000",
            "endTime": "2026-12-01T15:01:05.000+0000",
        },
    )
    state = calling.plan_retry(services, {"session_id": "s1", "error": TIMEOUT})
    assert state["action"] == calling.COLLECT
    session = services.store.require("s1")
    assert session.outcome is Outcome.ANSWERED and session.call_duration == 60
    assert session.status is SessionStatus.CALL_ENDED
    assert "no call event arrived; Infobip said FINISHED" in session.outcome_detail
    assert infobip(services).hung_up == []


def test_a_lost_no_answer_is_reconciled_and_retried(services: Services) -> None:
    _dialled(services, {"state": "NO_ANSWER"})
    state = calling.plan_retry(services, {"session_id": "s1", "error": TIMEOUT})
    assert state["action"] == calling.WAIT
    assert services.store.require("s1").attempt == 2


def test_a_call_still_live_past_its_timeout_is_hung_up_and_collected(services: Services) -> None:
    _dialled(services, {"state": "ESTABLISHED", "answerTime": "2026-12-01T15:00:05.000+0000"})
    state = calling.plan_retry(services, {"session_id": "s1", "error": TIMEOUT})
    assert state["action"] == calling.COLLECT
    assert infobip(services).hung_up == ["call-7"]


def test_an_outcome_that_arrived_without_resuming_the_task_is_used_as_is(
    services: Services,
) -> None:
    _dialled(services)
    services.store.advance(
        "s1", SessionStatus.CALL_ENDED, attempt=1, fields={"outcome": Outcome.BUSY.value}
    )
    state = calling.plan_retry(services, {"session_id": "s1", "error": TIMEOUT})
    assert state["action"] == calling.WAIT  # busy, retried; Infobip was not asked
    assert infobip(services).calls == {}


def test_a_call_infobip_no_longer_knows_is_failed_unless_the_agent_spoke(
    services: Services,
) -> None:
    _dialled(services)
    state = calling.plan_retry(services, {"session_id": "s1", "error": TIMEOUT})
    assert state["action"] == calling.WRITE_BACK
    assert services.store.require("s1").outcome is Outcome.FAILED


def test_a_timeout_before_any_call_was_placed_is_written_back_as_timeout(
    services: Services,
) -> None:
    new_session(services)
    state = calling.plan_retry(services, {"session_id": "s1", "error": TIMEOUT})
    assert state["action"] == calling.WRITE_BACK
    assert services.store.require("s1").outcome is Outcome.TIMEOUT


def test_a_failed_task_is_written_back_as_failed_with_its_cause(services: Services) -> None:
    new_session(services)
    cause = json.dumps({"errorMessage": "infobip: calls configuration not found"})
    error = {"Error": "ProviderRejected", "Cause": cause}
    calling.plan_retry(services, {"session_id": "s1", "error": error})
    session = services.store.require("s1")
    assert session.outcome is Outcome.FAILED
    assert session.outcome_detail == "ProviderRejected: infobip: calls configuration not found"
    assert infobip(services).hung_up == []


@pytest.mark.parametrize(
    ("cause", "text"),
    [
        ('{"errorMessage": "boom", "errorType": "X"}', "boom"),
        ("plain text", "plain text"),
        ('["not", "an object"]', '["not", "an object"]'),
        (None, ""),
    ],
)
def test_error_cause_reads_lambda_and_plain_causes(cause: Any, text: str) -> None:
    assert error_cause(cause) == text


# --- writeback receipts and rejected records --------------------------------------------------


def _answered(services: Services, duration: int = 42) -> None:
    new_session(services)
    services.store.advance(
        "s1",
        SessionStatus.CALL_ENDED,
        attempt=1,
        fields={
            "outcome": Outcome.ANSWERED.value,
            "call_duration": duration,
            "call_answered_at": "2026-12-01T15:00:00.000Z",
            "results": {
                "status": "done",
                "summary": "Wants a visit.",
                "data_collection": {"interested": True},
            },
        },
    )


def test_a_completed_writeback_writes_fields_one_note_and_one_call(services: Services) -> None:
    _answered(services)
    result = writeback.write_back(services, "s1")
    assert result["status"] == "completed"
    fake = zoho(services)
    assert len(fake.notes) == 1 and len(fake.calls) == 1
    assert fake.calls[0]["duration_seconds"] == 42
    assert services.store.require("s1").status is SessionStatus.COMPLETED


def test_a_mapped_field_the_module_lacks_is_reported_and_not_sent(services: Services) -> None:
    _answered(services)
    fake = zoho(services)
    fake.fields = ("Monthly_Bill",)  # a module without Interested (the mapping names it)

    writeback.write_back(services, "s1")

    assert fake.updates == []  # nothing else was collected: no write at all
    (_, note) = fake.notes[0]
    assert "Interested: the Leads module has no such field" in note


def test_a_retried_writeback_skips_the_steps_it_has_receipts_for(services: Services) -> None:
    _answered(services)
    fake = zoho(services)
    fake.fail_notes = 1
    with pytest.raises(RetryableProviderError):
        writeback.write_back(services, "s1")
    assert "fields" in services.store.require("s1").writeback  # the first step's receipt
    writeback.write_back(services, "s1")  # the state machine's retry
    assert len(fake.notes) == 1 and len(fake.calls) == 1


def test_a_completed_session_is_not_written_twice(services: Services) -> None:
    _answered(services)
    writeback.write_back(services, "s1")
    again = writeback.write_back(services, "s1")
    assert again["status"] == "completed"
    assert len(zoho(services).notes) == 1


def test_a_record_that_refuses_the_update_still_gets_the_note(services: Services) -> None:
    _answered(services)
    zoho(services).refuse_update = "validation rule: Phone must not change"
    writeback.write_back(services, "s1")
    [(_, content)] = zoho(services).notes
    assert "fields not written: validation rule: Phone must not change" in content
    assert services.store.require("s1").status is SessionStatus.COMPLETED


def test_a_call_that_never_connected_gets_a_note_but_no_call_log(services: Services) -> None:
    new_session(services)
    services.store.advance(
        "s1", SessionStatus.CALL_ENDED, attempt=1, fields={"outcome": Outcome.NO_ANSWER.value}
    )
    writeback.write_back(services, "s1")
    assert zoho(services).calls == []
    [(title, _)] = zoho(services).notes
    assert title == "AI call: No answer"


def test_a_call_answered_and_dropped_within_the_second_is_still_logged(services: Services) -> None:
    new_session(services)
    services.store.advance(
        "s1",
        SessionStatus.CALL_ENDED,
        attempt=1,
        fields={
            "outcome": Outcome.AGENT_UNAVAILABLE.value,
            "call_answered_at": "2026-12-02T10:00:00+00:00",
            "call_duration": 0,
        },
    )
    writeback.write_back(services, "s1")
    [logged] = zoho(services).calls
    assert logged["duration_seconds"] == 0  # the client sends it as 00:01, Zoho's least


def test_retries_exhausted_mark_the_session_failed_and_keep_the_results(
    services: Services,
) -> None:
    _answered(services)
    error = {"Error": "RetryableProviderError", "Cause": '{"errorMessage": "zoho: 503"}'}
    assert writeback.mark_failed(services, "s1", error) == {"status": "writeback_failed"}
    session = services.store.require("s1")
    assert session.status is SessionStatus.WRITEBACK_FAILED
    assert session.writeback["error"] == "RetryableProviderError: zoho: 503"
    assert session.results["summary"] == "Wants a visit."


def test_a_replay_of_a_failed_writeback_completes_it(services: Services) -> None:
    _answered(services)
    writeback.mark_failed(services, "s1", {"Error": "X"})
    assert writeback.replay(services, "s1")["status"] == "completed"
    assert len(zoho(services).notes) == 1


def test_a_replay_of_a_completed_session_is_refused(services: Services) -> None:
    _answered(services)
    writeback.write_back(services, "s1")
    with pytest.raises(writeback.NotReplayable, match="is completed: only a writeback_failed"):
        writeback.replay(services, "s1")


def test_a_note_whose_answer_was_lost_is_found_and_not_written_twice(services: Services) -> None:
    _answered(services)
    fake = zoho(services)
    fake.lose_note_answers = 1
    with pytest.raises(RetryableProviderError):
        writeback.write_step(services, "s1", "note")
    writeback.write_step(services, "s1", "note")  # the state machine's retry of this step
    assert len(fake.notes) == 1 and fake.lookups == 1
    assert services.store.require("s1").writeback["note_id"] == "note-1"


def test_a_note_that_never_reached_zoho_is_written_on_the_retry(services: Services) -> None:
    _answered(services)
    fake = zoho(services)
    fake.fail_notes = 1
    with pytest.raises(RetryableProviderError):
        writeback.write_step(services, "s1", "note")
    writeback.write_step(services, "s1", "note")
    assert len(fake.notes) == 1 and fake.lookups == 1  # looked, found none, wrote it


def test_the_first_try_of_a_step_does_not_look_for_an_earlier_one(services: Services) -> None:
    _answered(services)
    writeback.write_back(services, "s1")
    assert zoho(services).lookups == 0  # no extra Zoho credit on the usual path


def test_the_call_log_carries_the_session_so_a_lost_one_can_be_found(services: Services) -> None:
    _answered(services)
    writeback.write_back(services, "s1")
    [call] = zoho(services).calls
    assert call["description"].endswith("Session: s1")


def test_each_step_writes_only_its_own_part(services: Services) -> None:
    _answered(services)
    assert writeback.write_step(services, "s1", "fields")["status"] == "writing_back"
    fake = zoho(services)
    assert len(fake.updates) == 1 and fake.notes == [] and fake.calls == []
    assert writeback.write_step(services, "s1", "note")["status"] == "writing_back"
    assert len(fake.notes) == 1 and fake.calls == []
    assert writeback.write_step(services, "s1", "call")["status"] == "completed"
    assert services.store.require("s1").status is SessionStatus.COMPLETED


def test_a_replay_that_fails_again_is_listed_as_failed_again(services: Services) -> None:
    _answered(services)
    writeback.mark_failed(services, "s1", {"Error": "X"})
    zoho(services).fail_notes = 1
    with pytest.raises(RetryableProviderError):
        writeback.replay(services, "s1")
    session = services.store.require("s1")
    assert session.status is SessionStatus.WRITEBACK_FAILED
    assert session.writeback["error"].startswith("RetryableProviderError")
    assert not session.active


def test_an_answered_call_with_no_agent_conversation_is_retried(services: Services) -> None:
    from callflow.lifecycle import analysis

    new_session(services, max_attempts=3)
    services.store.advance(
        "s1",
        SessionStatus.CALL_ENDED,
        attempt=1,
        fields={
            "outcome": Outcome.ANSWERED.value,
            "bridge": {"end_reason": "agent_unavailable", "end_detail": "agent unreachable"},
        },
    )
    assert analysis.fetch_analysis(services, {"session_id": "s1"}) == {"status": "no_conversation"}
    state = calling.plan_retry(
        services,
        {"session_id": "s1", "call": {"outcome": "answered"}, "analysis": {}},
    )
    assert state["action"] == calling.WAIT
    session = services.store.require("s1")
    assert session.status is SessionStatus.SCHEDULED and session.attempt == 2
