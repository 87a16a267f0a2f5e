"""Parsing Infobip call events: where customData lives per type, outcomes, malformed bodies."""

from __future__ import annotations

import re
from typing import Any

import pytest

from callflow.models import Outcome
from callflow.providers.infobip.events import InvalidEvent, parse_event
from tests.unit.infobip_fixtures import (
    CHILD_CALL_ID,
    DIALOG_ID,
    EXAMPLE_EVENTS,
    PHONE_CALL_ID,
    ExampleEvent,
    example,
)


@pytest.mark.parametrize("item", EXAMPLE_EVENTS, ids=lambda item: item.name)
def test_every_example_event_parses_with_its_custom_data_and_outcome(item: ExampleEvent) -> None:
    event = parse_event(item.body)

    assert event.type == item.body["type"]
    assert event.call_id == item.body["callId"]
    assert event.custom_data == item.custom_data
    assert event.session_id == ("s-1" if item.custom_data else "")
    assert event.attempt == (2 if item.custom_data else None)
    assert event.outcome() == item.outcome


def test_call_finished_carries_duration_state_error_and_hangup_source() -> None:
    event = parse_event(example("finished after a conversation"))

    assert event.duration == 25
    assert event.state == "FINISHED"
    assert event.error_name == "NORMAL_HANGUP"
    assert event.error_description.startswith("The call has ended")
    assert event.hangup_source == "ENDPOINT"
    assert event.answer_time == "2026-01-15T11:59:35.000+0000"


def test_machine_detection_result_is_read_from_the_event_properties() -> None:
    assert parse_event(example("machine detected")).detection_result == "MACHINE"
    assert parse_event(example("human detected")).detection_result == "HUMAN"


def test_custom_data_is_taken_from_the_place_the_event_type_defines() -> None:
    body = example("finished after a conversation")
    body["properties"]["call"] = {
        "endpoint": {"type": "PHONE", "phoneNumber": "1"},
        "customData": {"session_id": "wrong", "attempt": "9"},
    }

    assert parse_event(body).session_id == "s-1"


def test_custom_data_in_an_unexpected_place_is_still_found() -> None:
    body = example("established")
    body["properties"]["customData"] = body["properties"]["call"].pop("customData")

    assert parse_event(body).session_id == "s-1"


def test_an_established_call_with_a_short_talk_is_answered_even_with_zero_duration() -> None:
    body = example("finished after a conversation")
    body["properties"]["callLog"]["duration"] = 0

    assert parse_event(body).outcome() is Outcome.ANSWERED


def test_unanswered_call_without_error_name_falls_back_to_the_call_state() -> None:
    body = example("no answer")
    del body["properties"]["callLog"]["errorCode"]

    assert parse_event(body).outcome() is Outcome.NO_ANSWER


def test_unknown_event_types_parse_even_without_a_call_id() -> None:
    event = parse_event({"type": "CONFERENCE_CREATED", "conferenceId": "c-1", "properties": {}})

    assert event.type == "CONFERENCE_CREATED"
    assert event.call_id == ""
    assert event.session_id == ""
    assert event.attempt is None
    assert event.outcome() is None


def test_dialog_id_comes_from_the_envelope() -> None:
    body = example("established")
    body["dialogId"] = "dlg-7"

    assert parse_event(body).dialog_id == "dlg-7"


def test_a_non_numeric_attempt_is_no_attempt() -> None:
    body = example("ringing")
    body["properties"]["call"]["customData"]["attempt"] = "two"

    assert parse_event(body).attempt is None


def _set(path: str, value: Any) -> dict[str, Any]:
    body = example("finished after a conversation")
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node[part]
    node[last] = value
    return body


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([1, 2], "not a JSON object"),
        ("CALL_FINISHED", "not a JSON object"),
        ({"callId": "c-1"}, "'type'"),
        ({"type": 7, "callId": "c-1"}, "'type'"),
        ({"type": "CALL_RINGING", "properties": {}}, "'callId'"),
        ({"type": "CALL_RINGING", "callId": 12}, "'callId'"),
        ({"type": "CALL_RINGING", "callId": "c-1", "properties": []}, "'properties'"),
        (_set("properties.callLog", "x"), "'properties.callLog'"),
        (_set("properties.callLog.customData", ["a"]), "customData"),
        (_set("properties.callLog.customData", {"attempt": 2}), "customData.attempt"),
        (_set("properties.callLog.duration", "25"), "duration"),
        (_set("properties.callLog.duration", True), "duration"),
        (_set("properties.callLog.errorCode", "NORMAL_HANGUP"), "errorCode"),
        (_set("properties.callLog.state", 3), "state"),
    ],
)
def test_malformed_events_raise_invalid_event_naming_the_problem(body: Any, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body)

    assert reason in caught.value.reason


@pytest.mark.parametrize("attempt", ["²", "\u0661", "1" * 40, "0", "1001", "-1", "+1", " 1", ""])
def test_an_attempt_that_callflow_cannot_have_sent_makes_the_event_not_ours(attempt: str) -> None:
    """``"²".isdigit()`` holds and ``int("²")`` raises: only ASCII digits from 1 to 1000 count."""
    body = example("ringing")
    body["properties"]["call"]["customData"]["attempt"] = attempt

    event = parse_event(body)

    assert event.attempt is None


@pytest.mark.parametrize("attempt", ["1", "2", "1000"])
def test_attempts_callflow_sends_are_read(attempt: str) -> None:
    body = example("ringing")
    body["properties"]["call"]["customData"]["attempt"] = attempt

    assert parse_event(body).attempt == int(attempt)


@pytest.mark.parametrize("session_id", ["s 1", "s#1", "x" * 65, "ß1", "a/b"])
def test_a_session_id_callflow_cannot_have_sent_makes_the_event_not_ours(session_id: str) -> None:
    body = example("ringing")
    body["properties"]["call"]["customData"]["session_id"] = session_id

    assert parse_event(body).session_id == ""


@pytest.mark.parametrize(
    ("duration", "reason"),
    [
        (10**40, "out of range (0 to 86400)"),
        (-1, "out of range (0 to 86400)"),
        (86401, "out of range (0 to 86400)"),
        (12.5, "not an integer"),
        (True, "not an integer"),
    ],
)
def test_a_duration_no_call_can_have_is_an_invalid_event(duration: Any, reason: str) -> None:
    body = example("finished after a conversation")
    body["properties"]["callLog"]["duration"] = duration

    with pytest.raises(InvalidEvent, match=re.escape(f"'callLog.duration' is {reason}")):
        parse_event(body)


@pytest.mark.parametrize("duration", [0, 86400])
def test_durations_within_a_day_are_read(duration: int) -> None:
    body = example("finished after a conversation")
    body["properties"]["callLog"]["duration"] = duration

    assert parse_event(body).duration == duration


def test_the_websocket_legs_end_names_its_parent_call() -> None:
    event = parse_event(example("websocket leg finished"))

    assert event.websocket_leg
    assert (event.call_id, event.parent_call_id) == (CHILD_CALL_ID, PHONE_CALL_ID)
    assert not parse_event(example("finished after a conversation")).websocket_leg


def test_a_dialog_failure_names_the_phone_call_its_session_and_why() -> None:
    event = parse_event(example("dialog failed"))

    assert (event.call_id, event.dialog_id) == (PHONE_CALL_ID, DIALOG_ID)
    assert event.session_id == "s-1"
    assert event.reason.startswith("DESTINATION_UNAVAILABLE: ")


def test_error_and_media_stream_failures_say_why() -> None:
    assert parse_event(example("error")).reason == "MEDIA_ERROR: Media failed."
    failed = parse_event(example("media stream failed"))
    assert failed.reason == "Connection to the endpoint was refused."
    assert parse_event(example("machine detection failed")).reason == "TIMEOUT"


def test_an_end_event_without_answer_time_or_talk_time_is_answered_once_established() -> None:
    body = example("finished after a conversation")
    del body["properties"]["callLog"]["answerTime"]
    body["properties"]["callLog"]["duration"] = 0
    event = parse_event(body)

    assert event.outcome() is Outcome.FAILED
    assert event.outcome(established=True) is Outcome.ANSWERED
