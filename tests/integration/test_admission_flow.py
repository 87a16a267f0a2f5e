"""Admission through the real ASL on moto, the real handlers and the stand-ins over sockets.

A burst of triggers larger than the agent plan's concurrency: every call is dialled only with a
slot free, so the ElevenLabs stand-in (which refuses past its cap, as the real one does) refuses
none, no more are live than the cap, Infobip's creation rate is never exceeded, and every record
is written back. An execution stopped from outside releases its slot through the emulated
execution-status rule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from callflow.admission.pools import Pool
from callflow.admission.slots import configured_pools
from callflow.models import Outcome, SessionStatus
from callflow.services import get_services
from callflow_dev.local.demo import Scenario, seed_scenario
from callflow_dev.local.stack import LocalStack, StackOptions
from callflow_dev.sandbox import phone_network as net

pytestmark = pytest.mark.slow
CAP = 2


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    options = StackOptions(
        brief_clips_ms=500, retry_delay_seconds=1, fast_retries=True, agent_concurrency=CAP
    )
    with LocalStack(options) as running:
        yield running


def seed(stack: LocalStack, number: str, behaviour: net.Behaviour) -> str:
    """A lead whose phone behaves as ``behaviour`` on its one attempt; its record id."""
    return seed_scenario(
        stack, Scenario("burst", "", lambda: [behaviour], phone=f"(415) 555-{number}")
    )


def trigger_all(stack: LocalStack, record_ids: list[str]) -> list[str]:
    sessions: dict[str, str] = {}
    barrier = threading.Barrier(len(record_ids))

    def one(record_id: str) -> None:
        barrier.wait()
        response = stack.trigger("Leads", record_id)
        assert response.status_code == 202, response.text
        sessions[record_id] = response.json()["session_id"]

    threads = [threading.Thread(target=one, args=(r,)) for r in record_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [sessions[r] for r in record_ids]


def test_a_burst_past_the_agents_cap_is_queued_not_refused(stack: LocalStack) -> None:
    records = [seed(stack, f"41{i:02d}", net.answer(0.5)) for i in range(6)]
    sessions = trigger_all(stack, records)
    for session_id in sessions:
        assert stack.wait_for_execution(session_id, timeout=240)["status"] == "SUCCEEDED"
    assert stack.elevenlabs.refused == []
    assert stack.elevenlabs.peak_active <= CAP
    ended = [stack.session(s) for s in sessions]
    assert {(s.status, s.outcome) for s in ended} == {(SessionStatus.COMPLETED, Outcome.ANSWERED)}
    assert any("queued" in [e.event for e in s.timeline] for s in ended)
    for record_id in records:
        assert stack.zoho.records["Leads"][record_id]["Interested"] is True
    created, refused = stack.infobip.creations("call")
    assert refused == 0
    for index, at in enumerate(created):
        assert len([t for t in created[index:] if t < at + 1.0]) <= 6
    for pool in configured_pools(get_services().settings):
        assert get_services().pools.holders(pool) == {}  # every slot given back


def test_an_execution_stopped_from_outside_gives_its_slot_back(stack: LocalStack) -> None:
    [record] = [seed(stack, "4190", net.no_answer(after_s=None))]  # rings until stopped
    [session_id] = trigger_all(stack, [record])
    deadline = time.monotonic() + 60
    while stack.session(session_id).status is not SessionStatus.RINGING:
        assert time.monotonic() < deadline, stack.session(session_id).status
        time.sleep(0.1)
    agent = Pool(f"agent#{get_services().settings.agent_pool_name}", CAP)
    assert f"{session_id}#1" in get_services().pools.holders(agent)
    assert stack.aws is not None
    arn = stack.aws.execution(session_id)["executionArn"]
    stack.aws.client("stepfunctions").stop_execution(executionArn=arn, cause="operator")
    while stack.session(session_id).status is not SessionStatus.WRITEBACK_FAILED:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert f"{session_id}#1" not in get_services().pools.holders(agent)
    ended = stack.session(session_id)
    assert "ExecutionAborted" in ended.writeback["error"] and not ended.active
    hangups = [r for r in stack.infobip.requests if r.path.endswith(f"{ended.call_id}/hangup")]
    assert hangups
