"""The demo's scenarios, end to end on the embedded default.

Every part runs for real on loopback: moto executes the project's ASL with the real handlers, the
API takes the provider webhooks, the bridge relays real audio between the Infobip stand-in's
simulated person and the scripted ElevenLabs agent. Clips are shortened (``brief_clips_ms``) so
each call takes seconds, not the demo's half minute.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from callflow.models import Outcome, SessionStatus
from callflow_dev.local.demo import (
    OPTOUT_FIELD,
    DemoResult,
    Printer,
    _scenarios,
    callback_options,
    callback_problems,
    optout_options,
    optout_problems,
    recording_problems,
    run_scenario,
)
from callflow_dev.local.stack import LocalStack, StackOptions
from callflow_dev.sandbox.clips import load_clip
from tests.e2e.audio_match import best_match, loudest_window, without_silence_frames

pytestmark = pytest.mark.slow
BRIEF_MS = 900


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    options = StackOptions(brief_clips_ms=BRIEF_MS, retry_delay_seconds=1, recording=True)
    with LocalStack(options) as running:
        yield running


@pytest.fixture(scope="module")
def detecting_stack() -> Iterator[LocalStack]:
    options = StackOptions(brief_clips_ms=BRIEF_MS, machine_detection=True)
    with LocalStack(options) as running:
        yield running


@pytest.fixture(scope="module")
def optout_stack() -> Iterator[LocalStack]:
    with LocalStack(optout_options(brief_clips_ms=BRIEF_MS)) as running:
        yield running


@pytest.fixture(scope="module")
def callback_stack() -> Iterator[LocalStack]:
    with LocalStack(callback_options(brief_clips_ms=BRIEF_MS)) as running:
        yield running


_numbers = itertools.count(2600)


def run(stack: LocalStack, name: str, tmp_path: Path) -> DemoResult:
    """Run a demo scenario with a number of its own (the phone network counts attempts per
    number); the invalid scenario keeps its invalid number."""
    phone = None if name == "invalid" else f"(415) 555-{next(_numbers)}"
    return run_scenario(stack, _scenarios()[name], tmp_path, Printer(quiet=True), phone=phone)


@pytest.fixture(scope="module")
def answered(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    """One answered call, shared by the tests that each check a side of it (a call takes
    seconds; three of them told nothing the one does not)."""
    return run(stack, "answered", tmp_path_factory.mktemp("answered"))


def zoho_writes(stack: LocalStack, record_id: str) -> list[dict]:  # type: ignore[type-arg]
    return [
        r.json
        for r in stack.zoho.requests
        if r.method == "PUT" and r.path.endswith(f"/Leads/{record_id}")
    ]


def test_answered_call_collects_and_writes_back(stack: LocalStack, answered: DemoResult) -> None:
    result = answered
    session = result.session
    assert session.status is SessionStatus.COMPLETED
    assert session.outcome is Outcome.ANSWERED
    assert result.execution_status == "SUCCEEDED"
    after = result.record_after
    assert after["Interested"] is True
    assert after["Monthly_Bill"] == 150
    assert after["Lead_Status"] == "Qualified"
    assert after["Site_Visit_Date"] == session.results["data_collection"]["visit_date"]
    [write] = zoho_writes(stack, session.record_id)
    assert write["trigger"] == []  # our own workflow rule must not fire again
    [note] = result.notes
    assert note["Note_Title"] == "AI call: Reached" and "monthly_bill: 150" in note["Note_Content"]
    [call] = result.calls
    assert call["Call_Type"] == "Outbound" and call["Call_Duration"] != "00:00"
    assert session.conversation_id and session.results["status"] == "done"
    assert session.variables["first_name"] == "Maria"
    assert result.conversation.dynamic_variables["first_name"] == "Maria"
    assert result.wav is not None and result.wav.stat().st_size > 44
    # Every turn the agent answered has a latency: the end of the speech to the agent heard.
    replies = [turn for turn in result.media.turns if not turn.talked_over]
    assert len(replies) >= 2
    assert all(t.latency_s is not None and 0 < t.latency_s < 2.0 for t in replies), replies
    # The silence after the answer: the dialog, the bridge, the agent's greeting (its clip).
    assert result.first_words_ms is not None and 0 < result.first_words_ms < 3000


def test_a_recorded_call_is_attached_to_the_record_once(answered: DemoResult) -> None:
    import io
    import wave

    result = answered
    assert recording_problems(result) == []
    [attachment] = [a for a in result.attachments if a["File_Name"].endswith(".wav")]
    assert attachment["content_type"] == "audio/wav"
    with wave.open(io.BytesIO(attachment["content"]), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 16000)
        seconds = wav.getnframes() / 16000
    assert seconds == pytest.approx(result.session.recording["seconds"], abs=0.05)
    assert result.session.call_duration - 2 <= seconds <= result.session.call_duration + 2
    key = f"recordings/{result.session.session_id}.wav"
    assert result.session.recording["key"] == key  # the session id, never the number


def test_each_side_hears_what_the_other_sent(answered: DemoResult) -> None:
    result = answered
    media, agent = result.media, result.conversation.live
    assert not media.protocol_errors and not agent.violations
    # The agent's greeting reached the phone intact...
    greeting = agent.sent_turns[0]
    template = loudest_window(greeting.audio, 16000)
    assert best_match(template, without_silence_frames(media.played)) > 0.95
    # ...and the person's answer reached the agent intact.
    spoken = loudest_window(load_clip("person_confirm")[: BRIEF_MS * 32], 16000)
    assert best_match(spoken, agent.received_audio) > 0.95
    # Not silence: both recordings carry speech energy.
    assert max(abs(b) for b in memoryview(media.played).cast("h")) > 1000


def test_no_answer_then_answered_on_retry(stack: LocalStack, tmp_path: Path) -> None:
    result = run(stack, "retry", tmp_path)
    session = result.session
    assert session.status is SessionStatus.COMPLETED
    assert session.outcome is Outcome.ANSWERED and session.attempt == 2
    events = [e.event for e in session.timeline]
    assert events.count("dialing") == 2 and "retry scheduled" in events
    assert result.record_after["Lead_Status"] == "Qualified"


def test_busy_until_attempts_run_out(stack: LocalStack, tmp_path: Path) -> None:
    result = run(stack, "busy", tmp_path)
    session = result.session
    assert session.status is SessionStatus.COMPLETED
    assert session.outcome is Outcome.BUSY and session.attempt == 3
    assert "busy on all 3 attempts" in session.outcome_detail
    [note] = result.notes
    assert note["Note_Title"] == "AI call: Busy"
    assert result.calls == []  # no conversation: Zoho refuses zero-length outbound calls
    assert zoho_writes(stack, session.record_id) == []


def test_invalid_number_is_never_dialled_and_the_reason_written_back(
    stack: LocalStack, tmp_path: Path
) -> None:
    placed_before = len(stack.infobip.calls)
    result = run(stack, "invalid", tmp_path)
    assert result.session.outcome is Outcome.INVALID_PHONE
    assert len(stack.infobip.calls) == placed_before
    [note] = result.notes
    assert "not a valid number" in note["Note_Content"]


def test_caller_interrupts_the_agent(stack: LocalStack, tmp_path: Path) -> None:
    result = run(stack, "interrupt", tmp_path)
    assert result.session.status is SessionStatus.COMPLETED
    agent = result.conversation.live
    assert agent.interruptions == 1
    assert result.media.clears >= 1
    assert any(turn.interrupted for turn in agent.sent_turns)
    assert result.record_after["Lead_Status"] == "Qualified"


def test_voicemail_is_hung_up_and_written_back(detecting_stack: LocalStack, tmp_path: Path) -> None:
    result = run(detecting_stack, "voicemail", tmp_path)
    session = result.session
    assert session.outcome is Outcome.MACHINE
    assert not session.conversation_id  # the agent never spoke to a machine
    assert [n["Note_Title"] for n in result.notes] == ["AI call: Reached voicemail"]


def test_human_answer_with_machine_detection_waits_for_the_verdict(
    detecting_stack: LocalStack, tmp_path: Path
) -> None:
    result = run(detecting_stack, "answered", tmp_path)
    assert result.session.outcome is Outcome.ANSWERED
    events = [e.event for e in result.session.timeline]
    assert events.index("answered") < events.index("connecting agent")
    assert result.record_after["Interested"] is True


def test_an_opt_out_is_honoured_on_the_next_trigger(
    optout_stack: LocalStack, tmp_path: Path
) -> None:
    result = run(optout_stack, "optout", tmp_path)
    assert optout_problems(optout_stack, result) == []
    assert result.session.results["data_collection"]["opt_out"] is True
    assert result.record_after[OPTOUT_FIELD] is True
    first, second = result.notes
    assert "Person: " in first["Note_Content"] and "Agent: " in first["Note_Content"]
    assert "Opt-out: the person asked not to be called again" in first["Note_Content"]
    assert second["Note_Title"] == "AI call: Not called: opted out"
    again = result.again
    assert again is not None and again.outcome is Outcome.SUPPRESSED
    assert result.again_dials == 0 and len(result.calls) == 1  # one call logged: the first


def test_a_callback_is_placed_at_its_time_and_both_calls_are_on_the_record(
    callback_stack: LocalStack, tmp_path: Path
) -> None:
    result = run(callback_stack, "callback", tmp_path)
    assert callback_problems(result) == []
    callback = result.again
    assert callback is not None and callback.callback_of == result.session.session_id
    assert callback.not_before <= callback.call_answered_at
    # The stand-in agent asks for a callback on every call: the third is refused by the cap.
    capped = [
        n for n in result.notes if n["Note_Title"] == "AI call: Not called: call limit reached"
    ]
    assert len(capped) == 1 and len(result.calls) == 2
