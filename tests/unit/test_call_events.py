"""Infobip events applied to sessions: one conditional write on the usual path, harmless repeats."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto import mock_aws
from pydantic import SecretStr

from callflow.config import Settings
from callflow.lifecycle import call_events
from callflow.lifecycle.call_events import handle
from callflow.models import RETRYABLE_OUTCOMES, Outcome, Session, SessionStatus, hash_token
from callflow.providers.errors import RetryableProviderError
from callflow.providers.infobip.calls import InfobipClient
from callflow.providers.infobip.events import InfobipEvent, parse_event
from callflow.services import Services
from callflow_dev.local.aws import create_table
from tests.unit.aws_faults import fail_calls
from tests.unit.infobip_fixtures import example


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        create_table("events", "us-east-1")
        built = Services(Settings(table_name="events", aws_region="us-east-1"))
        built.store.create(Session(session_id="s1", module="Leads", record_id="42"))
        built.store.advance("s1", SessionStatus.DIALING, attempt=2)
        yield built


def ringing(session_id: str = "s1", attempt: str = "2") -> Any:
    return parse_event(
        {
            "type": "CALL_RINGING",
            "callId": "call-1",
            "timestamp": "2026-11-29T10:00:00.000+0000",
            "properties": {
                "call": {
                    "id": "call-1",
                    "state": "RINGING",
                    "customData": {"session_id": session_id, "attempt": attempt},
                }
            },
        }
    )


def dynamodb_operations(services: Services) -> list[str]:
    """Record the name of every DynamoDB call the store's client makes from now on."""
    seen: list[str] = []
    client = services.store.table.meta.client
    client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: seen.append(model.name)
    )
    return seen


def test_ringing_moves_the_session_with_a_single_conditional_write(services: Services) -> None:
    calls = dynamodb_operations(services)
    assert handle(services, ringing()) == "ringing"
    assert calls == ["UpdateItem"]
    assert services.store.require("s1").status is SessionStatus.RINGING


def test_a_repeated_event_is_a_duplicate_and_changes_nothing(services: Services) -> None:
    handle(services, ringing())
    before = services.store.require("s1")
    assert handle(services, ringing()) == "duplicate"
    assert services.store.require("s1").updated_at == before.updated_at


def test_an_event_of_another_attempt_is_ignored(services: Services) -> None:
    assert handle(services, ringing(attempt="1")) == "ignored: event of another attempt"
    assert handle(services, ringing(attempt="3")) == "ignored: event of another attempt"
    session = services.store.require("s1")
    assert (session.status, session.attempt) == (SessionStatus.DIALING, 2)


def test_an_event_for_an_unknown_session_creates_nothing(services: Services) -> None:
    assert handle(services, ringing(session_id="nope")) == "ignored: unknown session"
    assert services.store.get("nope") is None


def ours(name: str, session_id: str = "s1", attempt: str = "2") -> InfobipEvent:
    """An example event of the Infobip tests, carrying this test's session and attempt."""
    body = example(name)
    holder = body["properties"].get("callLog") or body["properties"]["call"]
    holder["customData"] = {"session_id": session_id, "attempt": attempt}
    return parse_event(body)


def task_successes(services: Services) -> list[dict[str, Any]]:
    """Record every SendTaskSuccess the services' Step Functions client sends from now on, and
    answer it as Step Functions answers a token of a waiting task (there is no execution here, and
    whether moto would accept the token depends on the mode an earlier test left it in)."""
    sent: list[dict[str, Any]] = []

    def accept(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        sent.append(json.loads(params["body"]))
        return AWSResponse(params["url"], 200, {}, None), {"ResponseMetadata": {}}

    services.sfn.meta.events.register("before-call.sfn.SendTaskSuccess", accept)
    return sent


def test_a_redelivered_call_end_resumes_the_task_the_first_delivery_could_not(
    services: Services,
) -> None:
    """The first delivery stores the outcome, then Step Functions throttles it (the API answers
    503); Infobip's redelivery must still resume the workflow, or it waits out its timeout."""
    services.store.set_fields("s1", {"task_token": "token-2"})
    sent = task_successes(services)
    fail_calls(services.sfn, "SendTaskSuccess", "ThrottlingException", times=1)
    with pytest.raises(ClientError, match="ThrottlingException"):
        handle(services, ours("busy"))
    assert services.store.require("s1").status is SessionStatus.CALL_ENDED
    assert sent == []

    assert handle(services, ours("busy")) == "call ended: busy"

    [resumed] = sent
    assert resumed["taskToken"] == "token-2"
    assert json.loads(resumed["output"]) == {"outcome": "busy", "attempt": 2, "duration": 0}


def test_a_call_end_delivered_again_after_the_task_resumed_is_a_duplicate(
    services: Services,
) -> None:
    services.store.set_fields("s1", {"task_token": "token-2"})
    sent = task_successes(services)
    assert handle(services, ours("busy")) == "call ended: busy"
    fail_calls(services.sfn, "SendTaskSuccess", "TaskDoesNotExist")
    assert handle(services, ours("busy")) == "duplicate"
    assert len(sent) == 1
    assert services.store.require("s1").outcome is Outcome.BUSY


def test_a_call_end_of_an_earlier_attempt_resumes_nothing(services: Services) -> None:
    services.store.set_fields("s1", {"task_token": "token-2"})
    sent = task_successes(services)
    assert handle(services, ours("busy", attempt="1")) == "ignored: event of another attempt"
    assert sent == []


@dataclass
class FakeCallsApi:
    """Infobip's Calls API routes the handlers use, in memory: ``GET /calls/1/dialogs`` lists the
    dialogs made (filtered by ``parentCallId``, as the spec names it), ``POST`` makes one,
    hangups are recorded with their body, ``GET`` a call answers ``calls``.

    ``creations`` scripts the dialog creations in turn: 201 makes one and answers it; another
    status answers that status without making one; ``"lost"`` makes one and answers 500, as when
    Infobip did the work and the answer never came back.
    """

    creations: list[int | str] = field(default_factory=list)
    dialogs: list[dict[str, Any]] = field(default_factory=list)
    hangups: list[tuple[str, Any]] = field(default_factory=list)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[httpx.Request] = field(default_factory=list)

    def client(self) -> InfobipClient:
        settings = Settings(
            infobip_base_url="https://xyz.api.infobip.com",
            infobip_api_key=SecretStr("key"),
            infobip_media_stream_config_id="media-1",
        )
        return InfobipClient(settings, httpx.Client(transport=httpx.MockTransport(self.answer)))

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path
        body: Any = json.loads(request.content) if request.content else {}
        if request.method == "GET" and path == "/calls/1/dialogs":
            parent = request.url.params.get("parentCallId")
            found = [d for d in self.dialogs if parent in (None, d["parentCall"]["id"])]
            return httpx.Response(200, json={"results": found, "paging": {"totalPages": 1}})
        if request.method == "POST" and path == "/calls/1/dialogs":
            status = self.creations.pop(0) if self.creations else 201
            if status in (201, "lost"):
                dialog = {
                    "id": f"dialog-{len(self.dialogs) + 1}",
                    "state": "CREATED",
                    "parentCall": {"id": body["parentCallId"]},
                    "childCall": {
                        "id": "child-1",
                        "customData": body["childCallRequest"]["customData"],
                    },
                }
                self.dialogs.append(dialog)
                if status == 201:
                    return httpx.Response(201, json=dialog)
                status = 500
            error = {"requestError": {"serviceException": {"messageId": "E", "text": "down"}}}
            return httpx.Response(int(status), json=error)
        if request.method == "POST" and path.endswith("/hangup"):
            self.hangups.append((path.split("/")[4], body))
            return httpx.Response(200, json={"id": path.split("/")[4], "state": "FINISHED"})
        if request.method == "GET" and path.startswith("/calls/1/calls/"):
            call = self.calls.get(path.rsplit("/", 1)[1])
            if call is None:
                return httpx.Response(404, json={"requestError": {}})
            return httpx.Response(200, json=call)
        raise AssertionError(f"unexpected {request.method} {path}")

    def creation_requests(self) -> int:
        return sum(1 for r in self.seen if r.method == "POST" and r.url.path == "/calls/1/dialogs")


@pytest.fixture
def infobip(services: Services, monkeypatch: pytest.MonkeyPatch) -> FakeCallsApi:
    api = FakeCallsApi()
    services.__dict__["infobip"] = api.client()
    services.store.set_fields("s1", {"call_id": PHONE})
    pauses: list[float] = []
    monkeypatch.setattr(call_events, "_sleep", pauses.append)
    return api


PHONE = "call-1"


def event(kind: str, **changes: Any) -> InfobipEvent:
    """An example event of the Infobip tests on this test's session (s1, attempt 2) and phone
    call, with ``changes`` applied to the parsed event."""
    body = example(kind)
    body["callId"] = PHONE
    props = body["properties"]
    for holder in (props.get("callLog"), props.get("call"), props):
        if isinstance(holder, dict) and "customData" in holder:
            holder["customData"] = {"session_id": "s1", "attempt": "2"}
            break
    if "dialog" in props:
        props["dialog"]["parentCall"]["customData"] = {"session_id": "s1", "attempt": "2"}
    return dataclasses.replace(parse_event(body), **changes)


def with_detection(services: Services, **more: Any) -> None:
    services.settings = services.settings.model_copy(
        update={"infobip_machine_detection": True, **more}
    )


def test_a_retryable_dialog_failure_is_tried_again_within_the_delivery(
    services: Services, infobip: FakeCallsApi
) -> None:
    """A 503 and a 429 from Infobip must not leave the person in silence waiting for a
    redelivery nobody promised: the same delivery tries again and connects them."""
    infobip.creations = [503, 429, 201]

    assert handle(services, event("established")) == "dialog created"

    assert infobip.creation_requests() == 3
    assert services.store.require("s1").dialog_id == "dialog-1"


def test_a_dialog_whose_creation_answer_was_lost_is_found_not_made_twice(
    services: Services, infobip: FakeCallsApi
) -> None:
    infobip.creations = ["lost"]

    assert handle(services, event("established")) == "dialog found"

    [dialog] = infobip.dialogs
    session = services.store.require("s1")
    assert session.dialog_id == dialog["id"]
    # The bridge admits the token sent with the dialog Infobip actually made.
    token = dialog["childCall"]["customData"]["bridge_token"]
    assert session.bridge_token_hash == hash_token(token)


def test_dialog_failures_past_the_tries_release_the_claim_for_a_redelivery(
    services: Services, infobip: FakeCallsApi
) -> None:
    infobip.creations = [503, 503, 503]
    with pytest.raises(RetryableProviderError):
        handle(services, event("established"))
    assert not services.store.require("s1").dialog_requested

    assert handle(services, event("established")) == "dialog created"
    assert len(infobip.dialogs) == 1


def test_an_answer_delivered_again_after_the_dialog_was_created_creates_no_second(
    services: Services, infobip: FakeCallsApi
) -> None:
    assert handle(services, event("established")) == "dialog created"
    assert handle(services, event("established")) == "duplicate"
    assert infobip.creation_requests() == 1


@pytest.mark.parametrize("first", ["established", "human detected"])
def test_the_dialog_is_created_once_both_facts_are_known_in_either_order(
    services: Services, infobip: FakeCallsApi, first: str
) -> None:
    with_detection(services)
    second = "human detected" if first == "established" else "established"

    assert not handle(services, event(first)).startswith("dialog")
    assert handle(services, event(second)) == "dialog created"
    for again in (first, second):
        handle(services, event(again))

    assert len(infobip.dialogs) == 1
    assert infobip.hangups == []


def test_a_machine_is_hung_up_with_the_machine_detected_cause(
    services: Services, infobip: FakeCallsApi
) -> None:
    with_detection(services)
    handle(services, event("established"))

    assert handle(services, event("machine detected")) == "machine: hung up"

    assert infobip.hangups == [(PHONE, {"errorCode": "MACHINE_DETECTED"})]
    assert infobip.dialogs == []


def test_a_machine_detected_before_the_answer_event_is_never_connected(
    services: Services, infobip: FakeCallsApi
) -> None:
    with_detection(services)
    handle(services, event("machine detected"))

    assert handle(services, event("established")) == "answered: hung up after machine detection"
    assert infobip.dialogs == []
    assert handle(services, event("machine hung up")) == "call ended: machine"


def test_failed_detection_connects_the_call_by_default(
    services: Services, infobip: FakeCallsApi
) -> None:
    """Before, MACHINE_DETECTION_FAILED was ignored: the person heard silence until the max
    duration and the record said reached."""
    with_detection(services)
    handle(services, event("established"))

    assert handle(services, event("machine detection failed")) == "dialog created"
    assert infobip.hangups == []


def test_failed_detection_hangs_up_as_failed_when_the_policy_says_hangup(
    services: Services, infobip: FakeCallsApi
) -> None:
    with_detection(services, machine_detection_failed="hangup")
    handle(services, event("established"))

    assert handle(services, event("machine detection failed")) == (
        "machine detection failed: hung up"
    )
    assert infobip.hangups == [(PHONE, {})]
    assert handle(services, event("finished after a conversation")) == "call ended: failed"
    session = services.store.require("s1")
    assert "TIMEOUT" in session.outcome_detail
    assert infobip.dialogs == []


def test_only_the_phone_leg_decides_the_outcome_and_duration(
    services: Services, infobip: FakeCallsApi
) -> None:
    handle(services, event("established"))
    websocket_leg = parse_event(example("websocket leg finished"))
    websocket_leg = dataclasses.replace(
        websocket_leg, custom_data={"session_id": "s1", "attempt": "2"}, parent_call_id=PHONE
    )
    assert handle(services, websocket_leg) == "ignored: CALL_FINISHED of the WebSocket leg"
    assert services.store.require("s1").status is SessionStatus.IN_CALL

    assert handle(services, event("finished after a conversation")) == "call ended: answered"
    assert services.store.require("s1").call_duration == 25


def test_an_end_event_of_another_call_id_is_not_the_phone_legs(
    services: Services, infobip: FakeCallsApi
) -> None:
    """A WebSocket leg's end that does not name its parent is still told apart by its id."""
    handle(services, event("established"))
    other = event("finished after a conversation", call_id="child-1", duration=3)

    assert handle(services, other) == "ignored: CALL_FINISHED of another leg"
    assert services.store.require("s1").status is SessionStatus.IN_CALL


def test_a_call_seen_established_is_answered_though_its_end_shows_no_talk_time(
    services: Services, infobip: FakeCallsApi
) -> None:
    handle(services, event("established"))
    end = event("finished after a conversation", answer_time="", duration=0)

    assert handle(services, end) == "call ended: answered"


@pytest.mark.parametrize("kind", ["dialog failed", "media stream failed"])
def test_a_failed_dialog_hangs_up_and_the_call_ends_unreached_with_the_reason(
    services: Services, infobip: FakeCallsApi, kind: str
) -> None:
    handle(services, event("established"))
    infobip.calls[PHONE] = {"id": PHONE, "customData": {"session_id": "s1", "attempt": "2"}}

    assert handle(services, event(kind)).endswith(": hung up")
    assert infobip.hangups == [(PHONE, {})]

    assert handle(services, event("finished after a conversation")) == (
        "call ended: agent_unavailable"
    )
    session = services.store.require("s1")
    assert session.outcome is Outcome.AGENT_UNAVAILABLE
    assert kind.replace(" ", "_").upper() in session.outcome_detail
    assert Outcome.AGENT_UNAVAILABLE in RETRYABLE_OUTCOMES


def test_an_error_without_custom_data_finds_its_session_through_the_call(
    services: Services, infobip: FakeCallsApi
) -> None:
    handle(services, event("established"))
    infobip.calls[PHONE] = {"id": PHONE, "customData": {"session_id": "s1", "attempt": "2"}}

    assert handle(services, event("error")) == "ERROR: hung up"
    assert services.store.require("s1").dialog_failure == "ERROR: MEDIA_ERROR: Media failed."


def test_an_error_of_a_call_infobip_no_longer_knows_is_ignored(
    services: Services, infobip: FakeCallsApi
) -> None:
    assert handle(services, event("error")) == "ignored: not a callflow call"


def test_without_detection_the_answer_and_the_dialog_claim_are_one_write(
    services: Services, infobip: FakeCallsApi
) -> None:
    calls = dynamodb_operations(services)
    assert handle(services, event("established")) == "dialog created"
    made = list(calls)
    session = services.store.require("s1")
    events = [entry.event for entry in session.timeline]
    assert events[-3:] == ["answered", "connecting agent", "dialog created"]
    assert session.dialog_requested
    # The answer with the claim, the dialog rate's turn, the bridge token, the dialog id.
    assert made == ["UpdateItem"] * 4
    assert infobip.creation_requests() == 1
