"""Admission: the slot pools, the account-wide rates, and the workflow's Admit step.

Everything runs against moto's DynamoDB in this process; the concurrency tests make their
writes from threads, with moto's item operations made atomic as DynamoDB's are.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from callflow.admission import slots
from callflow.admission.pools import Pool, Pools, holder_id
from callflow.admission.rates import RateLimited, Rates
from callflow.aws import failed_conditions
from callflow.campaigns import control
from callflow.campaigns.gate import campaign_gate
from callflow.campaigns.model import Campaign, CampaignSource, CampaignWindow, new_campaign_id
from callflow.lifecycle import admission, calling, stopped
from callflow.models import Outcome, Session, SessionStatus, iso, utcnow
from callflow.services import Services
from callflow_dev.local.aws import _serialise_dynamodb_writes, create_table
from tests.unit.test_workflow_decisions import FakeInfobip, build

AGENT = "agent#elevenlabs"


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        _serialise_dynamodb_writes()
        create_table("decisions", "us-east-1")
        yield boto3.resource("dynamodb", region_name="us-east-1").Table("decisions")


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- pools ------------------------------------------------------------------------------------


def test_a_pool_admits_up_to_its_capacity_and_refuses_the_next(table: Any) -> None:
    pools = Pools(table)
    agent = Pool("agent", 2)
    assert pools.acquire([agent], "a#1", 60) is None
    assert pools.acquire([agent], "b#1", 60) is None
    refusal = pools.acquire([agent], "c#1", 60)
    assert refusal is not None and refusal.full == ("agent",)
    assert set(pools.holders(agent)) == {"a#1", "b#1"}


def test_acquiring_again_for_the_same_holder_takes_nothing_more(table: Any) -> None:
    """A retried Admit whose first answer was lost must not take a second slot."""
    clock = Clock()
    pools = Pools(table, clock=clock)
    agent = Pool("agent", 1)
    assert pools.acquire([agent], "a#1", 60) is None
    clock.now += 30
    assert pools.acquire([agent], "a#1", 60) is None  # renewed, not refused
    assert pools.holders(agent) == {"a#1": int(clock.now) + 60}


def test_a_call_takes_a_slot_in_every_pool_or_in_none(table: Any) -> None:
    pools = Pools(table)
    agent, bridge = Pool("agent", 1), Pool("bridge", 5)
    assert pools.acquire([agent, bridge], "a#1", 60) is None
    refusal = pools.acquire([agent, bridge], "b#1", 60)
    assert refusal is not None and refusal.full == ("agent",)
    assert set(pools.holders(bridge)) == {"a#1"}  # b took no bridge slot


def test_a_cancelled_transaction_names_the_items_whose_condition_failed() -> None:
    def cancelled(*codes: str) -> ClientError:
        response: Any = {
            "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
            "CancellationReasons": [{"Code": code} for code in codes],
        }
        return ClientError(response, "TransactWriteItems")

    assert failed_conditions(cancelled("None", "ConditionalCheckFailed"), ["a", "b"]) == ("b",)
    assert failed_conditions(cancelled("TransactionConflict", "None"), ["a", "b"]) == ()
    other = ClientError({"Error": {"Code": "ThrottlingException"}}, "TransactWriteItems")
    assert failed_conditions(other, ["a"]) is None
    assert failed_conditions(ValueError("x"), ["a"]) is None


def test_a_released_slot_is_free_again_and_releasing_twice_is_harmless(table: Any) -> None:
    pools = Pools(table)
    agent = Pool("agent", 1)
    pools.acquire([agent], "a#1", 60)
    pools.release([agent], "a#1")
    pools.release([agent], "a#1")
    pools.release([Pool("never-used", 1)], "a#1")
    assert pools.acquire([agent], "b#1", 60) is None


def test_a_leaked_slot_is_reclaimed_once_its_lease_has_expired(table: Any) -> None:
    clock = Clock()
    pools = Pools(table, clock=clock)
    agent = Pool("agent", 1)
    pools.acquire([agent], "lost#1", 60)  # its release never comes
    clock.now += 59
    assert pools.acquire([agent], "b#1", 60) is not None
    clock.now += 2
    assert pools.acquire([agent], "b#1", 60) is None
    assert set(pools.holders(agent)) == {"b#1"}


def test_a_lease_renewed_meanwhile_is_not_reclaimed(table: Any) -> None:
    clock = Clock()
    pools = Pools(table, clock=clock)
    agent = Pool("agent", 1)
    pools.acquire([agent], "a#1", 60)
    clock.now += 61
    stale_view = pools.holders(agent)
    pools.acquire([agent], "a#1", 60)  # the holder renews before the reclaim writes
    pools.holders = lambda pool: stale_view  # type: ignore[method-assign]
    assert pools.acquire([agent], "b#1", 60) is not None
    assert "a#1" in Pools(table).holders(agent)


def test_a_burst_of_acquires_never_exceeds_the_capacity(table: Any) -> None:
    agent, bridge = Pool("agent", 4), Pool("bridge", 6)
    admitted: list[str] = []
    barrier = threading.Barrier(24)

    def one(index: int) -> None:
        pools = Pools(table)
        barrier.wait()
        if pools.acquire([agent, bridge], f"s{index}#1", 60) is None:
            admitted.append(f"s{index}#1")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 4
    assert set(Pools(table).holders(agent)) == set(admitted)
    assert set(Pools(table).holders(bridge)) == set(admitted)


# --- rates ------------------------------------------------------------------------------------


def test_reservations_are_spaced_by_the_rate_across_callers(table: Any) -> None:
    clock = Clock()
    waits = [Rates(table, clock=clock).reserve("calls", 6, 10) for _ in range(8)]
    assert waits == pytest.approx([0, 0.167, 0.334, 0.501, 0.668, 0.835, 1.002, 1.169])


def test_an_idle_rate_starts_again_at_now(table: Any) -> None:
    clock = Clock()
    rates = Rates(table, clock=clock)
    rates.reserve("calls", 6, 10)
    rates.reserve("calls", 6, 10)
    clock.now += 5
    assert rates.reserve("calls", 6, 10) == 0


def test_no_more_than_the_rate_in_any_second_under_concurrency(table: Any) -> None:
    clock = Clock()
    starts: list[float] = []
    lock = threading.Lock()

    def one() -> None:
        wait = Rates(table, clock=clock).reserve("calls", 6, 60)
        assert wait is not None
        with lock:
            starts.append(clock.now + wait)

    threads = [threading.Thread(target=one) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    starts.sort()
    for index, start in enumerate(starts):
        in_window = [s for s in starts[index:] if s < start + 1.0]
        assert len(in_window) <= 6


def test_a_reservation_further_off_than_the_caller_can_wait_is_refused_and_takes_nothing(
    table: Any,
) -> None:
    clock = Clock()
    slept: list[float] = []
    rates = Rates(table, clock=clock, sleep=slept.append)
    for _ in range(3):
        rates.wait_turn("calls", 2, 1.0)  # 0, 0.5, 1.0 s
    with pytest.raises(RateLimited):
        rates.wait_turn("calls", 2, 1.0)
    assert slept == [0.5, 1.0]
    clock.now += 1.5
    assert rates.reserve("calls", 2, 1.0) == 0  # the refusal did not push the schedule on


# --- the Admit step ---------------------------------------------------------------------------


@pytest.fixture
def services(table: Any) -> Services:
    return build(agent_concurrency=1, bridge_capacity=10)


def session(services: Services, session_id: str = "s1", **fields: Any) -> Session:
    values = {"phone": "+14155550100", "timezone": "America/Los_Angeles", **fields}
    return services.store.create(
        Session(session_id=session_id, module="Leads", record_id=session_id, **values)
    )


def test_an_admitted_call_holds_a_slot_in_each_pool_and_goes_on_to_dial(
    services: Services,
) -> None:
    session(services)
    state = admission.admit(services, {"session_id": "s1"})
    assert state["action"] == admission.DIAL
    stored = services.store.require("s1")
    assert (stored.status, stored.attempt) == (SessionStatus.QUEUED, 1)
    assert stored.slots == {AGENT: "s1#1", "bridge": "s1#1"}
    assert calling.attempt_to_place(stored) == 1  # PlaceCall dials the admitted attempt


def test_a_call_with_no_free_slot_is_queued_and_raises_for_the_retry(services: Services) -> None:
    session(services, "s1")
    session(services, "s2")
    admission.admit(services, {"session_id": "s1"})
    with pytest.raises(admission.NoSlotFree, match=AGENT):
        admission.admit(services, {"session_id": "s2"})
    queued = services.store.require("s2")
    assert queued.status is SessionStatus.QUEUED and queued.queued_at
    assert [e.event for e in queued.timeline][-1] == "queued"
    with pytest.raises(admission.NoSlotFree):
        admission.admit(services, {"session_id": "s2"})
    assert [e.event for e in services.store.require("s2").timeline][-1] == "queued"  # once


def test_a_queued_call_is_admitted_once_the_slot_is_released(services: Services) -> None:
    session(services, "s1")
    session(services, "s2")
    admission.admit(services, {"session_id": "s1"})
    with pytest.raises(admission.NoSlotFree):
        admission.admit(services, {"session_id": "s2"})
    slots.release(services, services.store.require("s1"))
    assert admission.admit(services, {"session_id": "s2"})["action"] == admission.DIAL
    admitted = services.store.require("s2")
    assert admitted.slots == {AGENT: "s2#1", "bridge": "s2#1"} and not admitted.queued_at


def test_a_call_queued_past_its_deadline_ends_cancelled_and_is_written_back(
    services: Services,
) -> None:
    session(services, "s1")
    long_ago = utcnow() - timedelta(seconds=services.settings.admission_deadline_seconds + 1)
    session(
        services,
        "s2",
        status=SessionStatus.QUEUED,
        attempt=1,
        queued_at=iso(long_ago),
    )
    admission.admit(services, {"session_id": "s1"})
    state = admission.admit(services, {"session_id": "s2"})
    assert state["action"] == calling.WRITE_BACK
    ended = services.store.require("s2")
    assert ended.outcome is Outcome.CANCELLED and "no free slot" in ended.outcome_detail


def test_a_queue_that_outlasts_calling_hours_waits_for_their_next_opening(
    table: Any,
) -> None:
    hour = datetime.now(UTC).hour
    closed = build(
        calling_hours_start=f"{(hour + 2) % 24:02d}:00",
        calling_hours_end=f"{(hour + 3) % 24:02d}:00",
    )
    session(closed, "s1", timezone="UTC", status=SessionStatus.QUEUED, attempt=1, queued_at="x")
    state = admission.admit(closed, {"session_id": "s1"})
    assert state["action"] == calling.WAIT
    assert datetime.fromisoformat(state["wait_until"].replace("Z", "+00:00")) > utcnow()
    waiting = closed.store.require("s1")
    assert waiting.queued_at == "" and waiting.slots == {}  # no slot held overnight


def test_a_late_release_for_an_earlier_attempt_cannot_free_a_later_attempts_slot(
    services: Services,
) -> None:
    session(services, "s1")
    admission.admit(services, {"session_id": "s1"})
    slots.release(services, services.store.require("s1"))  # attempt 1 ends
    services.store.advance("s1", SessionStatus.SCHEDULED, attempt=2)
    admission.admit(services, {"session_id": "s1"})  # attempt 2 holds the slot now
    services.pools.release(slots.configured_pools(services.settings), holder_id("s1", 1))
    session(services, "s2")
    with pytest.raises(admission.NoSlotFree):
        admission.admit(services, {"session_id": "s2"})


def test_planning_a_retry_releases_the_attempts_slots(services: Services) -> None:
    session(services, "s1", max_attempts=2)
    admission.admit(services, {"session_id": "s1"})
    services.store.advance(
        "s1", SessionStatus.CALL_ENDED, attempt=1, fields={"outcome": Outcome.NO_ANSWER.value}
    )
    calling.plan_retry(services, {"session_id": "s1", "call": {"outcome": "no_answer"}})
    session(services, "s2")
    assert admission.admit(services, {"session_id": "s2"})["action"] == admission.DIAL


def test_a_stopped_execution_hangs_up_releases_and_ends_its_session(services: Services) -> None:
    session(services, "s1")
    admission.admit(services, {"session_id": "s1"})
    services.store.advance("s1", SessionStatus.IN_CALL, attempt=1, fields={"call_id": "call-7"})
    detail = {"name": "s1", "status": "ABORTED", "executionArn": "arn:...:s1"}
    assert stopped.execution_stopped(services, detail) == {"handled": True, "status": "ABORTED"}
    ended = services.store.require("s1")
    assert ended.status is SessionStatus.WRITEBACK_FAILED and not ended.active
    assert "ExecutionAborted" in ended.writeback["error"]
    fake = services.infobip
    assert isinstance(fake, FakeInfobip) and fake.hung_up == ["call-7"]
    session(services, "s2")
    assert admission.admit(services, {"session_id": "s2"})["action"] == admission.DIAL
    # The event redelivered: nothing more happens.
    assert stopped.execution_stopped(services, detail)["handled"] is True
    assert fake.hung_up == ["call-7"]


def test_a_status_event_of_a_running_or_unknown_execution_is_ignored(services: Services) -> None:
    assert not stopped.execution_stopped(services, {"name": "s9", "status": "RUNNING"})["handled"]
    assert not stopped.execution_stopped(services, {"name": "s9", "status": "FAILED"})["handled"]
    assert not stopped.execution_stopped(services, {"name": "../x", "status": "FAILED"})["handled"]


# --- a campaign's gate at admission -----------------------------------------------------------


def campaign(services: Services, **fields: Any) -> Campaign:
    source = CampaignSource(kind="ids", ids=["1", "2"])
    return services.campaigns.create(
        Campaign(campaign_id=new_campaign_id(), module="Leads", source=source, **fields)
    )


def live_counters(services: Services, campaign_id: str) -> dict[str, int]:
    found = services.campaigns.require(campaign_id).counters
    return {name: value for name, value in found.items() if value}


def test_a_paused_campaigns_queued_call_waits_holding_no_slot_until_resumed(
    services: Services,
) -> None:
    ours = campaign(services)
    session(services, "s1", campaign_id=ours.campaign_id)
    long_ago = utcnow() - timedelta(seconds=services.settings.admission_deadline_seconds + 1)
    session(
        services,
        "s2",
        campaign_id=ours.campaign_id,
        status=SessionStatus.QUEUED,
        attempt=1,
        queued_at=iso(long_ago),
    )
    assert admission.admit(services, {"session_id": "s1"})["action"] == admission.DIAL
    control.act(services, ours.campaign_id, "pause")
    for _ in range(2):  # the Wait brings it back while still paused
        state = admission.admit(services, {"session_id": "s2"})
        assert state["action"] == calling.WAIT
        until = datetime.fromisoformat(state["wait_until"].replace("Z", "+00:00"))
        pause = services.settings.campaign_pause_recheck_seconds
        assert abs((until - utcnow()).total_seconds() - pause) < 5
    waiting = services.store.require("s2")
    assert waiting.queued_at == "" and waiting.slots == {} and waiting.outcome is None
    assert [e.event for e in waiting.timeline].count("the campaign is paused") == 1
    assert set(services.pools.holders(Pool(AGENT, 1))) == {"s1#1"}
    assert live_counters(services, ours.campaign_id) == {"queued": 2}

    control.act(services, ours.campaign_id, "resume")
    # The pool is still full: queued again with a fresh deadline, not cancelled for the old one.
    with pytest.raises(admission.NoSlotFree):
        admission.admit(services, {"session_id": "s2"})
    queued = services.store.require("s2")
    assert queued.outcome is None and queued.queued_at > iso(long_ago)
    slots.release(services, services.store.require("s1"))
    assert admission.admit(services, {"session_id": "s2"})["action"] == admission.DIAL


def test_a_cancelled_campaigns_waiting_call_ends_cancelled_and_counts_so(
    services: Services,
) -> None:
    ours = campaign(services)
    session(services, "s1", campaign_id=ours.campaign_id)
    session(services, "s2", campaign_id=ours.campaign_id)
    admission.admit(services, {"session_id": "s1"})
    with pytest.raises(admission.NoSlotFree):
        admission.admit(services, {"session_id": "s2"})
    control.act(services, ours.campaign_id, "cancel")
    state = admission.admit(services, {"session_id": "s2"})
    assert state["action"] == calling.WRITE_BACK
    ended = services.store.require("s2")
    assert ended.outcome is Outcome.CANCELLED
    assert ended.outcome_detail == "the campaign was cancelled" and ended.slots == {}
    assert set(services.pools.holders(Pool(AGENT, 1))) == {"s1#1"}  # s2 took none
    services.store.advance("s2", SessionStatus.WRITING_BACK)
    services.store.advance("s2", SessionStatus.COMPLETED)
    assert live_counters(services, ours.campaign_id) == {
        "queued": 1,
        "written_back": 1,
        "cancelled": 1,
    }


def test_a_call_dialled_before_the_cancel_is_not_touched_by_it(services: Services) -> None:
    ours = campaign(services)
    session(services, "s1", campaign_id=ours.campaign_id)
    admission.admit(services, {"session_id": "s1"})
    services.store.advance("s1", SessionStatus.IN_CALL, attempt=1)
    control.act(services, ours.campaign_id, "cancel")
    live = services.store.require("s1")
    assert live.status is SessionStatus.IN_CALL and live.outcome is None
    assert live_counters(services, ours.campaign_id) == {"in_call": 1}


def test_a_closed_campaign_window_waits_for_its_opening_then_admits(services: Services) -> None:
    hour = datetime.now(UTC).hour
    shut = CampaignWindow(hours_start=f"{(hour + 2) % 24:02d}:00", hours_end="24:00")
    if (hour + 2) % 24 < 2:  # the window would wrap midnight; take the early morning instead
        shut = CampaignWindow(hours_start="00:00", hours_end=f"{hour - 1:02d}:00")
    ours = campaign(services, window=shut)
    session(services, "s1", campaign_id=ours.campaign_id, status=SessionStatus.QUEUED, attempt=1)
    state = admission.admit(services, {"session_id": "s1"})
    assert state["action"] == calling.WAIT
    reopens = campaign_gate(services.store, ours.campaign_id, utcnow()).reopens_at
    assert reopens is not None and state["wait_until"] == iso(reopens)
    waiting = services.store.require("s1")
    assert waiting.slots == {} and waiting.queued_at == ""
    assert waiting.timeline[-1].event == "outside the campaign's window"
    services.campaigns.set_fields(ours.campaign_id, {"window": CampaignWindow().model_dump()})
    assert admission.admit(services, {"session_id": "s1"})["action"] == admission.DIAL


def test_a_campaign_whose_window_has_ended_cancels_its_waiting_calls(services: Services) -> None:
    yesterday = (utcnow() - timedelta(days=1)).date().isoformat()
    ours = campaign(services, window=CampaignWindow(end=yesterday))
    session(services, "s1", campaign_id=ours.campaign_id)
    assert admission.admit(services, {"session_id": "s1"})["action"] == calling.WRITE_BACK
    ended = services.store.require("s1")
    assert ended.outcome is Outcome.CANCELLED
    assert ended.outcome_detail == "the campaign's window has ended"


def test_an_unreadable_campaign_keeps_the_call_queued_for_the_retry(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = campaign(services)
    session(services, "s1", campaign_id=ours.campaign_id)

    def unreachable(*_: object) -> None:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    monkeypatch.setattr(admission, "campaign_gate", unreachable)
    with pytest.raises(admission.NoSlotFree, match="campaign unreadable"):
        admission.admit(services, {"session_id": "s1"})
    unread = services.store.require("s1")
    assert unread.slots == {} and unread.outcome is None
    assert services.pools.holders(Pool(AGENT, 1)) == {}


def test_a_single_trigger_is_not_asked_about_any_campaign(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    session(services, "s1")

    def never(*_: object) -> None:
        raise AssertionError("a single trigger has no campaign to ask")

    monkeypatch.setattr(admission, "campaign_gate", never)
    assert admission.admit(services, {"session_id": "s1"})["action"] == admission.DIAL
