"""Infobip events applied to sessions: one conditional write on the usual path, harmless repeats."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto import mock_aws
from pydantic import SecretStr

from callflow.config import Settings
from callflow.lifecycle.call_events import handle
from callflow.models import Outcome, Session, SessionStatus
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


def dialog_answers(*statuses: int) -> tuple[InfobipClient, list[httpx.Request]]:
    """An Infobip client whose dialog creations are answered with ``statuses`` in turn."""
    seen: list[httpx.Request] = []
    answers = iter(statuses)

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = next(answers)
        if status == 201:
            return httpx.Response(201, json={"id": f"dialog-{len(seen)}", "state": "CREATED"})
        return httpx.Response(status, json={"errorCode": "SERVICE_UNAVAILABLE"})

    settings = Settings(
        infobip_base_url="https://xyz.api.infobip.com",
        infobip_api_key=SecretStr("key"),
        infobip_media_stream_config_id="media-1",
    )
    client = InfobipClient(settings, httpx.Client(transport=httpx.MockTransport(answer)))
    return client, seen


def test_a_redelivered_answer_creates_the_dialog_the_first_delivery_could_not(
    services: Services,
) -> None:
    """Infobip refuses the first dialog with a 503 (the API answers 503 too): the person is on
    the line, so the redelivered CALL_ESTABLISHED must connect them."""
    client, seen = dialog_answers(503, 201)
    services.__dict__["infobip"] = client
    with pytest.raises(RetryableProviderError):
        handle(services, ours("established"))

    assert handle(services, ours("established")) == "dialog created"

    assert len(seen) == 2
    session = services.store.require("s1")
    assert (session.status, session.dialog_id) == (SessionStatus.IN_CALL, "dialog-2")


def test_an_answer_delivered_again_after_the_dialog_was_created_creates_no_second(
    services: Services,
) -> None:
    client, seen = dialog_answers(201)
    services.__dict__["infobip"] = client
    assert handle(services, ours("established")) == "dialog created"
    assert handle(services, ours("established")) == "duplicate"
    assert len(seen) == 1
