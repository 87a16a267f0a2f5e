"""Infobip events applied to sessions: one conditional write on the usual path, harmless repeats."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from callflow.config import Settings
from callflow.lifecycle.call_events import handle
from callflow.models import Session, SessionStatus
from callflow.providers.infobip.events import parse_event
from callflow.services import Services
from callflow_dev.local.aws import create_table


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
