"""A campaign through the real campaign ASL on moto: started by the API, enumerated from the Zoho
stand-in into moto's S3, a Distributed Map that makes each record's session and runs the same
call workflow a single trigger runs (``startExecution.sync:2``), and a finish step that counts.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from callflow.admission.slots import configured_pools
from callflow.campaigns.counters import PHASES
from callflow.campaigns.model import campaign_session_id
from callflow.models import Outcome, Session, SessionStatus
from callflow.services import get_services
from callflow_dev.local.demo import Scenario, seed_scenario
from callflow_dev.local.stack import LocalStack, StackOptions
from callflow_dev.sandbox import phone_network as net

pytestmark = pytest.mark.slow
CAP = 2
PAUSE_RECHECK_S = 2


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    options = StackOptions(
        brief_clips_ms=500,
        retry_delay_seconds=1,
        fast_retries=True,
        agent_concurrency=CAP,
        max_attempts=1,
        extra_env={"CALLFLOW_CAMPAIGN_PAUSE_RECHECK_SECONDS": str(PAUSE_RECHECK_S)},
    )
    with LocalStack(options) as running:
        yield running


def lead(stack: LocalStack, phone: str, behaviour: net.Behaviour | None) -> str:
    behaviours = [behaviour] if behaviour else []
    return seed_scenario(stack, Scenario("campaign", "", lambda: behaviours, phone=phone))


def test_a_campaign_calls_each_record_once_through_the_call_workflow(stack: LocalStack) -> None:
    answered = [lead(stack, f"(415) 555-43{i:02d}", net.answer(0.5)) for i in range(3)]
    invalid = lead(stack, "12", None)
    held = lead(stack, "(415) 555-4399", net.answer(0.5))
    store = get_services().store
    store.create(Session(session_id="single-trigger", module="Leads", record_id=held))
    assert store.claim_record("Leads", held, "single-trigger", 3600) is None
    auth = {"Authorization": f"Bearer {stack.secrets['status_api_token']}"}
    body = {
        "module": "Leads",
        "source": {"ids": [*answered, invalid, held]},
        "max_concurrency": 3,
    }
    started = httpx.post(f"{stack.api_url}/campaigns", json=body, headers=auth, timeout=30)
    assert started.status_code == 202, started.text
    campaign_id = started.json()["campaign_id"]
    assert stack.aws is not None
    deadline = time.monotonic() + 240
    while stack.aws.campaign_execution(campaign_id)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert stack.aws.campaign_execution(campaign_id)["status"] == "SUCCEEDED"

    shown = httpx.get(f"{stack.api_url}/campaigns/{campaign_id}", headers=auth).json()
    assert shown["state"] == "done" and shown["finished_at"]
    counted = {k: v for k, v in shown["counters"].items() if v}
    assert counted == {
        "records": 5,
        "sessions": 4,
        "skipped": 1,
        "written_back": 4,
        "reached": 3,
        "not_reached": 1,
    }
    for record_id in answered:
        session = stack.session(campaign_session_id(campaign_id, record_id))
        assert (session.status, session.outcome) == (SessionStatus.COMPLETED, Outcome.ANSWERED)
        assert session.campaign_id == campaign_id
        # The same per-record workflow a single trigger runs, one execution per session.
        assert stack.wait_for_execution(session.session_id)["status"] == "SUCCEEDED"
        assert stack.zoho.records["Leads"][record_id]["Interested"] is True
    invalid_session = stack.session(campaign_session_id(campaign_id, invalid))
    assert invalid_session.outcome is Outcome.INVALID_PHONE
    assert store.get(campaign_session_id(campaign_id, held)) is None
    assert stack.elevenlabs.refused == [] and stack.elevenlabs.peak_active <= CAP
    # One credit for the field metadata and one read of the five ids: no record read twice.
    reads = [
        r for r in stack.zoho.requests if r.method == "GET" and r.path.startswith("/crm/v8/Leads")
    ]
    assert len(reads) == 1 and reads[0].query["ids"].count(",") == 4

    exported = httpx.get(f"{stack.api_url}/campaigns/{campaign_id}/export", headers=auth)
    rows = {r["record_id"]: r for r in csv.DictReader(io.StringIO(exported.text))}
    assert set(rows) == {*answered, invalid, held}
    assert rows[held]["status"] == "skipped"
    assert rows[answered[0]]["outcome"] == "answered" and rows[answered[0]]["attempts"] == "1"
    assert int(rows[answered[0]]["duration_s"]) > 0
    assert '"Interested": true' in rows[answered[0]]["fields_written"]


def auth(stack: LocalStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.secrets['status_api_token']}"}


def start(stack: LocalStack, record_ids: list[str]) -> str:
    body = {"module": "Leads", "source": {"ids": record_ids}, "max_concurrency": len(record_ids)}
    started = httpx.post(f"{stack.api_url}/campaigns", json=body, headers=auth(stack), timeout=30)
    assert started.status_code == 202, started.text
    return str(started.json()["campaign_id"])


def sessions_of(campaign_id: str, record_ids: list[str]) -> list[Session | None]:
    store = get_services().store
    return [store.get(campaign_session_id(campaign_id, r)) for r in record_ids]


def until(check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.2)


def queued_behind_the_pool(campaign_id: str, record_ids: list[str]) -> bool:
    found = sessions_of(campaign_id, record_ids)
    return any(s is not None and s.status is SessionStatus.QUEUED and s.queued_at for s in found)


def in_flight(session: Session | None) -> bool:
    """Holding its slots or dialled already: pausing or cancelling no longer stops it."""
    return session is not None and (bool(session.slots) or PHASES[session.status] != "queued")


def act(stack: LocalStack, campaign_id: str, action: str) -> None:
    url = f"{stack.api_url}/campaigns/{campaign_id}/{action}"
    answered = httpx.post(url, headers=auth(stack), timeout=30)
    assert answered.status_code == 200, answered.text


def finished(stack: LocalStack, campaign_id: str) -> dict[str, object]:
    aws = stack.aws
    assert aws is not None
    until(lambda: aws.campaign_execution(campaign_id)["status"] != "RUNNING", 240)
    assert aws.campaign_execution(campaign_id)["status"] == "SUCCEEDED"
    shown = httpx.get(f"{stack.api_url}/campaigns/{campaign_id}", headers=auth(stack)).json()
    assert isinstance(shown, dict)
    return shown


def test_a_pause_holds_the_queued_calls_until_resumed_and_a_cancel_ends_them_cancelled(
    stack: LocalStack,
) -> None:
    held = [lead(stack, f"(415) 555-45{i:02d}", net.answer(0.5)) for i in range(4)]
    paused = start(stack, held)
    until(lambda: queued_behind_the_pool(paused, held))
    act(stack, paused, "pause")
    going = [s.session_id for s in sessions_of(paused, held) if s is not None and in_flight(s)]
    assert 1 <= len(going) <= CAP  # the pool is full: the rest wait for a slot
    until(lambda: all(stack.session(s).status is SessionStatus.COMPLETED for s in going))
    time.sleep(3 * PAUSE_RECHECK_S)  # several rechecks while paused, slots free all along
    waiting = [s for s in sessions_of(paused, held) if s is not None and s.session_id not in going]
    assert waiting and len(waiting) + len(going) == len(held)
    for session in waiting:
        assert PHASES[session.status] == "queued" and not session.call_id, session.status
        assert session.slots == {} and session.outcome is None
        assert "the campaign is paused" in [e.event for e in session.timeline]
    act(stack, paused, "resume")
    shown = finished(stack, paused)
    assert shown["state"] == "done"
    counted = {k: v for k, v in dict(shown["counters"]).items() if v}  # type: ignore[call-overload]
    assert counted == {"records": 4, "sessions": 4, "written_back": 4, "reached": 4}
    for resumed in sessions_of(paused, held):
        assert resumed is not None and resumed.outcome is Outcome.ANSWERED

    doomed = [lead(stack, f"(415) 555-46{i:02d}", net.answer(0.5)) for i in range(3)]
    cancelled = start(stack, doomed)
    until(lambda: queued_behind_the_pool(cancelled, doomed))
    act(stack, cancelled, "cancel")
    going = [s.session_id for s in sessions_of(cancelled, doomed) if s and in_flight(s)]
    shown = finished(stack, cancelled)
    assert shown["state"] == "cancelled"
    ended = [s for s in sessions_of(cancelled, doomed) if s is not None]
    never = [s for s in ended if s.session_id not in going]
    assert never and len(ended) == len(doomed)
    for session in ended:
        assert session.status is SessionStatus.COMPLETED
        if session.session_id in going:  # dialled before the cancel: carried on to its end
            assert session.outcome is Outcome.ANSWERED
            continue
        assert (session.outcome, session.outcome_detail) == (
            Outcome.CANCELLED,
            "the campaign was cancelled",
        )
        assert not session.call_id and session.attempt <= 1
        notes = [n for n in stack.zoho.notes if n["Parent_Id"]["id"] == session.record_id]
        assert [n["Note_Title"] for n in notes] == ["AI call: Not called: cancelled"]
    counted = {k: v for k, v in dict(shown["counters"]).items() if v}  # type: ignore[call-overload]
    assert counted == {
        "records": 3,
        "sessions": 3,
        "written_back": 3,
        "reached": len(going),
        "cancelled": len(never),
    }
    assert stack.elevenlabs.refused == [] and stack.elevenlabs.peak_active <= CAP
    for pool in configured_pools(get_services().settings):
        assert get_services().pools.holders(pool) == {}
