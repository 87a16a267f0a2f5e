"""The call workflow's paths, through the real handlers and the real ASL executed by moto.

Each test drives one session through the embedded stack and asserts the DynamoDB state, the
workflow's execution, and what reached each provider stand-in.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from callflow.lifecycle import writeback
from callflow.models import Outcome, SessionStatus
from callflow.phone import normalise
from callflow.services import get_services
from callflow_dev.local.demo import DemoResult, Printer, Scenario, run_scenario
from callflow_dev.local.stack import LocalStack, StackOptions
from callflow_dev.sandbox import phone_network as net

pytestmark = pytest.mark.slow
_numbers = itertools.count(3000)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    options = StackOptions(brief_clips_ms=700, retry_delay_seconds=1, fast_retries=True)
    with LocalStack(options) as running:
        yield running


def call(
    stack: LocalStack,
    tmp_path: Path,
    behaviours: Callable[[], list[Any]],
    phone: str | None = None,
) -> DemoResult:
    scenario = Scenario("test", "", behaviours)
    number = phone or f"(415) 555-{next(_numbers)}"
    return run_scenario(stack, scenario, tmp_path, Printer(quiet=True), phone=number)


def history(stack: LocalStack, session_id: str) -> list[dict[str, Any]]:
    return stack.aws.execution_history(session_id) if stack.aws else []


def failed_tasks(stack: LocalStack, session_id: str) -> list[str]:
    return [
        e["taskFailedEventDetails"]["error"]
        for e in history(stack, session_id)
        if e["type"] == "TaskFailed"
    ]


def test_no_answer_twice_then_answered(stack: LocalStack, tmp_path: Path) -> None:
    result = call(
        stack, tmp_path, lambda: [net.no_answer(after_s=1), net.no_answer(after_s=1), net.answer(1)]
    )
    session = result.session
    assert (session.status, session.outcome, session.attempt) == (
        SessionStatus.COMPLETED,
        Outcome.ANSWERED,
        3,
    )
    placed = [
        r for r in stack.infobip.requests if r.method == "POST" and r.path == "/calls/1/calls"
    ]
    mine = [r.body for r in placed if r.body["customData"]["session_id"] == session.session_id]
    assert [b["customData"]["attempt"] for b in mine] == ["1", "2", "3"]
    assert {b["externalId"] for b in mine} == {f"{session.session_id}-{n}" for n in (1, 2, 3)}
    assert result.record_after["Interested"] is True


def test_unreachable_number_fails_and_is_written_back(stack: LocalStack, tmp_path: Path) -> None:
    result = call(stack, tmp_path, lambda: [net.unreachable()])
    assert result.session.outcome is Outcome.FAILED
    assert result.session.attempt == 1  # a failed call is not retried
    [note] = result.notes
    assert note["Note_Title"] == "AI call: Call failed"


def test_writeback_throttled_then_accepted(stack: LocalStack, tmp_path: Path) -> None:
    stack.zoho.fail_next_writes(2, status=429)
    result = call(stack, tmp_path, lambda: [net.busy()])
    session = result.session
    assert session.status is SessionStatus.COMPLETED
    assert failed_tasks(stack, session.session_id).count("RetryableProviderError") == 2
    assert len(result.notes) == 1  # retried steps never write twice


def test_writeback_failing_for_good_keeps_the_results_for_replay(
    stack: LocalStack, tmp_path: Path
) -> None:
    stack.zoho.fail_writes_forever(status=503)
    try:
        result = call(stack, tmp_path, lambda: [net.answer(1)])
    finally:
        stack.zoho.heal()
    session = result.session
    assert session.status is SessionStatus.WRITEBACK_FAILED
    assert result.execution_status == "FAILED"
    assert session.results["data_collection"]["interested"] is True  # nothing lost
    assert (
        "503" in session.writeback["error"]
        or "RetryableProviderError" in session.writeback["error"]
    )
    assert failed_tasks(stack, session.session_id).count("RetryableProviderError") == 7
    # The operator replays it once Zoho is back.
    receipt = writeback.replay(get_services(), session.session_id)
    assert receipt["status"] == "completed"
    record = stack.zoho.records["Leads"][session.record_id]
    assert record["Interested"] is True
    assert len([n for n in stack.zoho.notes if n["Parent_Id"]["id"] == session.record_id]) == 1


def busy_record(stack: LocalStack, name: str) -> str:
    """A record whose phone, as dialled, answers busy at once (a quick call)."""
    phone = f"(415) 555-{next(_numbers)}"
    stack.infobip.set_behaviour(normalise(phone, "US").infobip, [net.busy()])
    return stack.zoho.seed_record("Leads", {"Last_Name": name, "Phone": phone})


def test_a_note_zoho_saved_but_answered_500_for_is_written_once(
    stack: LocalStack, tmp_path: Path
) -> None:
    stack.zoho.lose_answers(1, path="/crm/v8/Notes")
    result = call(stack, tmp_path, lambda: [net.answer(1)])
    assert result.session.status is SessionStatus.COMPLETED
    assert len(result.notes) == 1  # found by its session line, not written again
    assert failed_tasks(stack, result.session.session_id) == ["RetryableProviderError"]


def test_each_writeback_step_has_its_own_retries(stack: LocalStack, tmp_path: Path) -> None:
    """Four failures of the note and four of the call: more than one step's budget (six
    retries) in all, and within each step's own."""
    stack.zoho.fail_next_writes(4, status=503, path="/crm/v8/Notes")
    stack.zoho.fail_next_writes(4, status=503, path="/crm/v8/Calls")
    result = call(stack, tmp_path, lambda: [net.answer(1)])
    assert result.session.status is SessionStatus.COMPLETED
    assert failed_tasks(stack, result.session.session_id).count("RetryableProviderError") == 8
    assert len(result.notes) == 1


def test_replaying_a_completed_session_is_refused_in_words(
    stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from callflow_dev.cli import main

    result = call(stack, tmp_path, lambda: [net.busy()])
    assert main(["replay", result.session.session_id]) == 1
    assert (
        "is completed: only a writeback_failed session can be replayed" in capsys.readouterr().err
    )


def test_second_trigger_for_the_same_record_is_refused(stack: LocalStack) -> None:
    record_id = busy_record(stack, "Twice")
    first = stack.trigger("Leads", record_id)
    second = stack.trigger("Leads", record_id)
    assert first.status_code == 202
    assert second.status_code == 409
    assert second.json()["session_id"] == first.json()["session_id"]
    stack.wait_for_execution(first.json()["session_id"])
    session = get_services().store.require(first.json()["session_id"])
    assert session.outcome is Outcome.BUSY  # the number the behaviour was set for was dialled


def test_trigger_for_an_unknown_record_is_a_404(stack: LocalStack) -> None:
    response = stack.trigger("Leads", "5725767000999999999")
    assert response.status_code == 404
    assert "no Leads record" in response.json()["detail"]


def test_trigger_accepts_zoho_form_parameters(stack: LocalStack) -> None:
    import httpx

    record_id = busy_record(stack, "Form")
    response = httpx.post(
        f"{stack.api_url}/webhooks/zoho",
        content=f"module=Leads&record_id={record_id}",
        headers={
            "X-Callflow-Secret": stack.secrets["zoho_trigger_secret"],
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert response.status_code == 202
    stack.wait_for_execution(response.json()["session_id"])


def test_status_route_shows_the_session_with_the_phone_masked(
    stack: LocalStack, tmp_path: Path
) -> None:
    import httpx

    result = call(stack, tmp_path, lambda: [net.busy()], phone="(415) 555-2999")
    response = httpx.get(
        f"{stack.api_url}/sessions/{result.session.session_id}",
        headers={"Authorization": f"Bearer {stack.secrets['status_api_token']}"},
    )
    view = response.json()
    assert response.status_code == 200 and view["status"] == "completed"
    assert "2999" not in json.dumps(view) and view["phone"].endswith("999")
    assert "task_token" not in view and "bridge_token_hash" not in view


def test_a_number_past_its_cap_is_not_dialled_and_capped_is_written_back(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Two records with one number: the first is busy on all three attempts, which is the
    number's cap (three in 24 hours); the second is never dialled, through the real workflow."""
    phone = f"(415) 555-{next(_numbers)}"
    first = call(stack, tmp_path, lambda: [net.busy()], phone=phone)
    second = call(stack, tmp_path, lambda: [net.busy()], phone=phone)
    assert first.session.attempt == 3 and first.session.outcome is Outcome.BUSY
    session = second.session
    assert session.status is SessionStatus.COMPLETED and second.execution_status == "SUCCEEDED"
    assert session.outcome is Outcome.CAPPED
    assert "phone number: 3 calls in 24 h" in session.outcome_detail
    placed = [
        r
        for r in stack.infobip.requests
        if r.method == "POST"
        and r.path == "/calls/1/calls"
        and r.body["customData"]["session_id"] == session.session_id
    ]
    assert placed == []
    [note] = second.notes
    assert note["Note_Title"] == "AI call: Not called: call limit reached"


def _window_excluding_now(zone: str) -> tuple[str, str]:
    start = datetime.now(ZoneInfo(zone)) + timedelta(hours=2)
    end = start + timedelta(hours=1)
    if end.day != start.day:  # keep the window inside one day
        start, end = start.replace(hour=1), start.replace(hour=2)
    return start.strftime("%H:00"), end.strftime("%H:00")


def test_outside_hours_with_skip_policy_is_written_back_without_calling(tmp_path: Path) -> None:
    hours = _window_excluding_now("America/Los_Angeles")
    options = StackOptions(calling_hours=hours, outside_hours_policy="skip")
    with LocalStack(options) as stack:
        result = call(stack, tmp_path, lambda: [net.answer(1)])
        assert result.session.outcome is Outcome.OUTSIDE_HOURS
        assert stack.infobip.calls == {}
        [note] = result.notes
        assert "America/Los_Angeles" in note["Note_Content"]


def test_outside_hours_with_wait_policy_schedules_the_call(tmp_path: Path) -> None:
    hours = _window_excluding_now("America/Los_Angeles")
    with LocalStack(StackOptions(calling_hours=hours)) as stack:
        record_id = stack.zoho.seed_record(
            "Leads", {"Last_Name": "Later", "Phone": "(415) 555-3999"}
        )
        session_id = stack.trigger("Leads", record_id).json()["session_id"]
        deadline = datetime.now() + timedelta(seconds=20)
        while stack.session(session_id).status is not SessionStatus.SCHEDULED:
            assert datetime.now() < deadline
        session = stack.session(session_id)
        opening = datetime.fromisoformat(session.next_attempt_at.replace("Z", "+00:00"))
        local = opening.astimezone(ZoneInfo("America/Los_Angeles"))
        assert local.strftime("%H:%M") == hours[0]
        assert stack.aws is not None
        assert stack.aws.execution(session_id)["status"] == "RUNNING"  # in the Wait state
        assert stack.infobip.calls == {}


def test_post_call_webhook_lost_falls_back_to_polling(tmp_path: Path) -> None:
    options = StackOptions(
        brief_clips_ms=700, drop_post_call_webhooks=True, analysis_wait_seconds=1
    )
    with LocalStack(options) as stack:
        result = call(stack, tmp_path, lambda: [net.answer(1)])
        session = result.session
        assert session.status is SessionStatus.COMPLETED
        collected = [e for e in session.timeline if e.event == "results collected"]
        assert collected[0].detail["source"] == "poll"
        assert result.record_after["Monthly_Bill"] == 150
