"""The fault-injection suite: one test per fault, on one local stack, each asserting the end state.

Every fault is switched on in the stand-in for one call and off again, and every test checks the
same end state: the session's status and outcome, the execution's status, the record's fields,
and exactly one note and one call log. The stack shortens the waits so a lost event costs
seconds: the connect timeout is 3 s, the margin of the first check 2 s (the call's events are
awaited 5 s before Infobip is asked), the outcome timeout 20 s. Writeback faults are in
``test_call_workflow.py`` next to the writeback they break; the API's input in
``test_api_fuzz.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from callflow.models import Outcome, SessionStatus
from callflow.phone import normalise
from callflow.providers.elevenlabs.client import SIGNATURE_HEADER
from callflow.services import get_services
from callflow_dev.local.demo import DemoResult, Printer, Scenario, run_scenario
from callflow_dev.local.stack import LocalStack, StackOptions
from callflow_dev.sandbox import phone_network as net

pytestmark = pytest.mark.slow
_numbers = itertools.count(6000)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    options = StackOptions(
        brief_clips_ms=700,
        retry_delay_seconds=1,
        fast_retries=True,
        extra_env={
            "CALLFLOW_INFOBIP_CONNECT_TIMEOUT": "3",
            "CALLFLOW_CALL_CHECK_MARGIN_SECONDS": "2",
            "CALLFLOW_CALL_OUTCOME_TIMEOUT_SECONDS": "20",
        },
    )
    with LocalStack(options) as running:
        yield running


@contextlib.contextmanager
def fault(target: Any, **values: Any) -> Iterator[None]:
    """Set the stand-in's attributes for the block, and put the old values back after."""
    saved = {name: getattr(target, name) for name in values}
    for name, value in values.items():
        setattr(target, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(target, name, value)


def call(stack: LocalStack, tmp_path: Path, behaviours: Callable[[], list[Any]]) -> DemoResult:
    scenario = Scenario("fault", "", behaviours)
    number = f"(415) 555-{next(_numbers)}"
    return run_scenario(stack, scenario, tmp_path, Printer(quiet=True), phone=number)


def states_entered(stack: LocalStack, session_id: str) -> list[str]:
    history = stack.aws.execution_history(session_id) if stack.aws else []
    return [e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("Entered")]


def assert_end_state(
    result: DemoResult,
    outcome: Outcome,
    *,
    attempts: int = 1,
    call_logs: int = 1,
    fields_written: bool = True,
) -> None:
    """Completed with ``outcome`` after ``attempts``, the execution succeeded, the record's
    fields written (when the agent collected any), one note and ``call_logs`` call logs."""
    session = result.session
    assert (session.status, session.outcome, session.attempt) == (
        SessionStatus.COMPLETED,
        outcome,
        attempts,
    )
    assert result.execution_status == "SUCCEEDED"
    assert (result.record_after != result.record_before) is fields_written
    assert len(result.notes) == 1
    assert len(result.calls) == call_logs


def test_a_lost_call_established_is_found_by_the_short_check(
    stack: LocalStack, tmp_path: Path
) -> None:
    """PlaceCall's wait ends 5 s after dialling; Infobip says established, the dialog is
    requested then, and WatchCall waits for the end event, which completes the call."""
    with fault(stack.infobip, lost_event_types={"CALL_ESTABLISHED"}):
        result = call(stack, tmp_path, lambda: [net.answer(1)])
    assert_end_state(result, Outcome.ANSWERED)
    session = result.session
    events = [e.event for e in session.timeline]
    assert "answered (reconciled)" in events and "call checked" in events
    assert "call reconciled" not in events  # the end event came; the long timeout never ran out
    states = states_entered(stack, session.session_id)
    assert states.count("PlaceCall") == 1 and "WatchCall" in states
    dialogs = [
        r
        for r in stack.infobip.requests
        if (r.method, r.path) == ("POST", "/calls/1/dialogs")
        and r.body["parentCallId"] == session.call_id
    ]
    assert len(dialogs) == 1
    assert session.results["data_collection"]


def test_a_lost_call_finished_keeps_the_agents_results(stack: LocalStack, tmp_path: Path) -> None:
    """CALL_FINISHED never comes: the check at the outcome timeout asks Infobip what became of
    the call and goes on to the analysis as if the event had come."""
    with fault(stack.infobip, lost_event_types={"CALL_FINISHED"}):
        result = call(stack, tmp_path, lambda: [net.answer(1)])
    assert_end_state(result, Outcome.ANSWERED)
    session = result.session
    assert "no call event arrived; Infobip said FINISHED" in session.outcome_detail
    assert session.results["data_collection"]  # the conversation's results were collected
    assert [e for e in session.timeline if e.event == "call reconciled"]


def test_duplicate_and_reordered_events_are_harmless(stack: LocalStack, tmp_path: Path) -> None:
    with fault(stack.infobip, duplicate_events=True, reorder_events=True):
        result = call(stack, tmp_path, lambda: [net.answer(1)])
    assert_end_state(result, Outcome.ANSWERED)
    dialogs = [
        r
        for r in stack.infobip.requests
        if (r.method, r.path) == ("POST", "/calls/1/dialogs")
        and r.body["parentCallId"] == result.session.call_id
    ]
    assert len(dialogs) == 1


def test_an_answered_call_the_agent_refused_is_not_reached_and_is_retried(
    stack: LocalStack, tmp_path: Path
) -> None:
    with fault(stack.elevenlabs, max_concurrent_conversations=0):  # every one over the cap
        result = call(stack, tmp_path, lambda: [net.answer(1)])
    assert_end_state(
        result,
        Outcome.AGENT_UNAVAILABLE,
        attempts=result.session.max_attempts,
        call_logs=1,  # the person picked up: the call happened (its talk time), and is logged
        fields_written=False,  # nobody spoke, so nothing was collected to map
    )
    [note] = result.notes
    assert note["Note_Title"] == "AI call: Answered, no agent"
    assert "nobody spoke: the agent could not take the call" in note["Note_Content"]


def test_twenty_parallel_triggers_for_one_record_cost_one_zoho_read(stack: LocalStack) -> None:
    """The claim comes before the read: the 19 refused triggers spend no Zoho credit."""
    phone = f"(415) 555-{next(_numbers)}"
    stack.infobip.set_behaviour(normalise(phone, "US").infobip, [net.busy()])
    record_id = stack.zoho.seed_record("Leads", {"Last_Name": "Crowd", "Phone": phone})
    path = f"/crm/v8/Leads/{record_id}"

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: stack.trigger("Leads", record_id), range(20)))

    assert sorted(r.status_code for r in responses) == [202] + [409] * 19
    [accepted] = [r.json()["session_id"] for r in responses if r.status_code == 202]
    assert {r.json()["session_id"] for r in responses if r.status_code == 409} == {accepted}
    reads = [r for r in stack.zoho.requests if r.method == "GET" and r.path == path]
    assert len(reads) == 1
    stack.wait_for_execution(accepted)
    session = stack.session(accepted)
    assert (session.status, session.outcome) == (SessionStatus.COMPLETED, Outcome.BUSY)
    notes = [n for n in stack.zoho.notes if n["Parent_Id"]["id"] == record_id]
    assert len(notes) == 1  # one session, one note


def test_an_agent_that_drops_mid_call_is_reached_and_says_so(
    stack: LocalStack, tmp_path: Path
) -> None:
    """The agent's socket closes 1011 three seconds into the conversation: the person was
    reached, the outcome says the agent's side failed, and the writeback lands once."""
    dropping = replace(stack.elevenlabs.agent, drop_after_s=3.0)
    with fault(stack.elevenlabs, agent=dropping):
        result = call(stack, tmp_path, lambda: [net.answer(1)])
    # Nothing was collected in three seconds, so no field changes; the call is logged.
    assert_end_state(result, Outcome.AGENT_DROPPED, fields_written=False)
    [note] = result.notes
    assert note["Note_Title"] == "AI call: Reached, call dropped by the agent"
    assert "agent closed 1011" in note["Note_Content"]


@contextlib.contextmanager
def bridge_process(stack: LocalStack) -> Iterator[subprocess.Popen[bytes]]:
    """A second bridge in a process of its own (``python -m callflow_bridge``, as on Fargate),
    on the stack's table and secret, with the media-stream config pointing at it for the block:
    a process the test can kill, as a task dies, without it writing its calls' end."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "CALLFLOW_BRIDGE_HOST": "127.0.0.1", "CALLFLOW_BRIDGE_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "callflow_bridge"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            assert process.poll() is None and time.monotonic() < deadline, "bridge did not start"
            time.sleep(0.1)
        url = f"ws://127.0.0.1:{port}/{stack.secrets['bridge_path_secret']}"
        config_id = get_services().infobip.create_media_stream_config("killable", url, 16000)
        saved = os.environ["CALLFLOW_INFOBIP_MEDIA_STREAM_CONFIG_ID"]
        os.environ["CALLFLOW_INFOBIP_MEDIA_STREAM_CONFIG_ID"] = config_id
        stack.refresh_settings()
        try:
            yield process
        finally:
            os.environ["CALLFLOW_INFOBIP_MEDIA_STREAM_CONFIG_ID"] = saved
            stack.refresh_settings()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_the_bridge_killed_mid_call_loses_no_result(stack: LocalStack, tmp_path: Path) -> None:
    """SIGKILL of the bridge two seconds into the conversation: the media socket and the agent's
    drop without a close, nothing of the bridge's end is written. The call still ends, the
    conversation's results are collected by the session's conversation id, and the writeback
    lands once."""
    with bridge_process(stack) as bridge, ThreadPoolExecutor(max_workers=1) as pool:
        before = set(stack.infobip.dialogs)
        running = pool.submit(call, stack, tmp_path, lambda: [net.answer(1)])
        live_session(stack, before)
        time.sleep(2.0)
        bridge.send_signal(signal.SIGKILL)
        result = running.result(timeout=180)
    session = result.session
    assert "end_reason" not in session.bridge  # killed: the bridge wrote nothing of the end
    assert (session.status, session.outcome) == (SessionStatus.COMPLETED, Outcome.ANSWERED)
    assert result.execution_status == "SUCCEEDED"
    assert session.results["conversation_id"] == session.conversation_id
    assert len(result.notes) == 1 and len(result.calls) == 1


def live_session(stack: LocalStack, dialogs_before: set[str], timeout_s: float = 60) -> str:
    """The session whose dialog appeared since ``dialogs_before`` and reached the agent."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for dialog_id in set(stack.infobip.dialogs) - dialogs_before:
            candidate = stack.infobip.dialogs[dialog_id].custom_data.get("session_id", "")
            if candidate and stack.session(candidate).conversation_id:
                return candidate
        time.sleep(0.1)
    raise AssertionError("the call never reached the agent")


def test_a_second_stream_with_the_calls_token_is_refused_before_any_agent(
    stack: LocalStack, tmp_path: Path
) -> None:
    """While the call is live, a WebSocket presenting the call's own session id and token (an
    attacker who read them) is closed 1008 before any agent is contacted; the results written
    are the session's own conversation's."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        before = set(stack.infobip.dialogs)
        running = pool.submit(call, stack, tmp_path, lambda: [net.answer(1)])
        session_id = live_session(stack, before)
        (dialog,) = [
            d
            for d in stack.infobip.dialogs.values()
            if d.custom_data.get("session_id") == session_id
        ]
        conversations = len(stack.elevenlabs.conversations)
        hello = json.dumps({"event": "websocket:connected", **dialog.custom_data})

        async def intrude() -> tuple[int | None, str | None]:
            async with websockets.connect(stack.bridge_url) as intruder:
                await intruder.send(hello)
                await asyncio.wait_for(intruder.wait_closed(), 5)
                return intruder.close_code, intruder.close_reason

        code, _ = asyncio.run(intrude())
        assert code == 1008
        assert len(stack.elevenlabs.conversations) == conversations  # no agent for the intruder
        result = running.result(timeout=180)
    assert_end_state(result, Outcome.ANSWERED)
    assert result.session.results["conversation_id"] == result.session.conversation_id


def test_a_genuine_post_call_delivery_sent_again_is_not_acted_on(
    stack: LocalStack, tmp_path: Path
) -> None:
    """A delivery ElevenLabs signed, re-sent within its window: acknowledged as a duplicate,
    and the session keeps one set of results and one writeback."""
    result = call(stack, tmp_path, lambda: [net.answer(1)])
    assert_end_state(result, Outcome.ANSWERED)
    session = result.session
    (delivery,) = [
        d for d in stack.elevenlabs.webhooks if d.conversation_id == session.conversation_id
    ]
    again = httpx.post(
        delivery.url,
        content=delivery.body,
        headers={"content-type": "application/json", SIGNATURE_HEADER: delivery.signature},
        timeout=10,
    )
    assert (again.status_code, again.json()) == (200, {"result": "duplicate delivery"})
    after = stack.session(session.session_id)
    assert [e.event for e in after.timeline].count("results collected") == 1
    assert len([n for n in stack.zoho.notes if n["Parent_Id"]["id"] == session.record_id]) == 1
